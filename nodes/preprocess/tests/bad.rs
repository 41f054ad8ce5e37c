//! A corpus of bad images, generated here (nothing downloaded): every one must fail with
//! `invalid_input` or `too_large` and a message naming the problem, both from the processor
//! itself and through the SDK's `Invoker` (a `failure` output with `error.kind`,
//! `error.message` and the content untouched), and the node must keep serving afterwards.

mod common;

use common::*;
use image::ImageFormat;
use loupe_sdk::{ErrorKind, FlowFile, attr};
use serde_json::json;

/// One bad input: what it is, the bytes, settings for the node (`{}` for the defaults), the
/// expected error kind, and words the message must contain.
struct Case {
    name: String,
    content: Vec<u8>,
    settings: serde_json::Value,
    attributes: Vec<(&'static str, &'static str)>,
    kind: ErrorKind,
    message: Vec<&'static str>,
}

fn case(
    name: impl Into<String>,
    content: Vec<u8>,
    kind: ErrorKind,
    message: &[&'static str],
) -> Case {
    Case {
        name: name.into(),
        content,
        settings: json!({}),
        attributes: Vec::new(),
        kind,
        message: message.to_vec(),
    }
}

impl Case {
    fn settings(mut self, settings: serde_json::Value) -> Self {
        self.settings = settings;
        self
    }

    fn attr(mut self, key: &'static str, value: &'static str) -> Self {
        self.attributes.push((key, value));
        self
    }

    fn flow_file(&self) -> FlowFile {
        let mut ff = flow_file(self.content.clone(), "camera-7.img");
        for (k, v) in &self.attributes {
            ff = ff.with_attr(*k, *v);
        }
        ff
    }
}

use ErrorKind::{InvalidInput, TooLarge};

fn corpus() -> Vec<Case> {
    let png = encode(&rgb8(64, 48), ImageFormat::Png);
    let jpeg = encode(&rgb8(64, 48), ImageFormat::Jpeg);
    let bmp = encode(&rgb8(64, 48), ImageFormat::Bmp);
    let tiff = encode(&rgb8(64, 48), ImageFormat::Tiff);
    let mut cases = vec![
        case("empty", Vec::new(), InvalidInput, &["empty content"]),
        case(
            "one byte",
            vec![0xFF],
            InvalidInput,
            &["unsupported image format", "ff"],
        ),
        case(
            "random bytes",
            noise(4096, 7),
            InvalidInput,
            &["unsupported image format", "unrecognised data"],
        ),
        case(
            "plain text",
            b"inspection ok\nnext part\n".to_vec(),
            InvalidInput,
            &["unsupported image format: plain text"],
        ),
        case(
            "HTML error page",
            b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>".to_vec(),
            InvalidInput,
            &["unsupported image format: HTML document"],
        ),
        case(
            "JSON",
            br#"{"error": "camera offline"}"#.to_vec(),
            InvalidInput,
            &["JSON"],
        ),
        case(
            "PDF",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(),
            InvalidInput,
            &["PDF document"],
        ),
        case(
            "GIF",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04".to_vec(),
            InvalidInput,
            &["unsupported image format: GIF"],
        ),
        case(
            "WebP",
            b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00".to_vec(),
            InvalidInput,
            &["unsupported image format: WebP"],
        ),
        case(
            "ZIP archive",
            zip(),
            InvalidInput,
            &["unsupported image format: ZIP archive"],
        ),
        case(
            "damaged PNG signature",
            {
                let mut p = png.clone();
                p[5] = b'X';
                p
            },
            InvalidInput,
            &["damaged PNG signature"],
        ),
        // PNG
        case(
            "PNG with bad IHDR CRC",
            {
                let mut p = png.clone();
                p[29] ^= 0xFF; // last CRC byte of IHDR (8 + 4 + 4 + 13 = 29..33)
                p
            },
            InvalidInput,
            &["corrupt PNG image", "CRC"],
        ),
        case(
            "PNG with wrong IHDR length",
            {
                let mut p = png.clone();
                p[11] = 12; // IHDR length 13 -> 12
                p
            },
            InvalidInput,
            &["PNG image"],
        ),
        case(
            "PNG claiming 100000x100000 (bomb)",
            png_claiming(100_000, 100_000),
            TooLarge,
            &["100000x100000", "exceeds"],
        ),
        case(
            "PNG claiming 20000x20000 (over max_pixels)",
            png_claiming(20_000, 20_000),
            TooLarge,
            &["400000000 pixels", "limit of 50000000"],
        ),
        case(
            "PNG claiming 0x10",
            png_claiming(0, 10),
            InvalidInput,
            &["PNG image"],
        ),
        case(
            "PNG with garbage IDAT",
            {
                let mut p = PNG_SIGNATURE.to_vec();
                p.extend(png_chunk(b"IHDR", &ihdr(16, 16)));
                p.extend(png_chunk(b"IDAT", &noise(200, 3)));
                p.extend(png_chunk(b"IEND", &[]));
                p
            },
            InvalidInput,
            &["corrupt PNG image"],
        ),
        // JPEG
        case(
            "JPEG with only SOI",
            vec![0xFF, 0xD8],
            InvalidInput,
            &["truncated JPEG image"],
        ),
        case(
            "JPEG with SOI and junk",
            vec![0xFF, 0xD8, 0x00, 0x01, 0x02, 0x03],
            InvalidInput,
            &["corrupt JPEG image"],
        ),
        case(
            "JPEG claiming PNG in its attributes",
            jpeg[..jpeg.len() / 2].to_vec(),
            InvalidInput,
            &["truncated JPEG image"],
        )
        .attr("mime.type", "image/png")
        .attr("filename", "part.png"),
        case(
            "JPEG with a zero-size frame",
            jpeg_with_zero_width(&jpeg),
            InvalidInput,
            &["JPEG image"],
        ),
        case(
            "BMP with absurd dimensions",
            bmp_with_size(&bmp, 2_000_000, 2_000_000),
            TooLarge,
            &["2000000x2000000", "exceeds"],
        ),
        case(
            "BMP claiming 70000x10",
            bmp_with_size(&bmp, 70_000, 10),
            TooLarge,
            &[
                "70000x10",
                "exceeds the largest accepted size of 65535x65535",
            ],
        ),
        // Its strips no longer match its size: the decoder calls that inconsistent.
        case(
            "TIFF claiming 100000x100000",
            tiff_with_size(&tiff, 100_000, 100_000),
            InvalidInput,
            &["corrupt TIFF image"],
        ),
        case(
            "BMP with negative width",
            bmp_with_size(&bmp, -64, 48),
            InvalidInput,
            &["BMP image"],
        ),
        case(
            "BMP with zero width",
            bmp_with_size(&bmp, 0, 48),
            InvalidInput,
            &["corrupt BMP image", "0x48"],
        ),
        case(
            "TIFF with bad IFD offset",
            {
                let mut t = tiff.clone();
                t[4..8].copy_from_slice(&0x7FFF_0000u32.to_le_bytes());
                t
            },
            InvalidInput,
            &[
                "corrupt TIFF image",
                "directory offset 2147418112 lies beyond the end",
            ],
        ),
        case(
            "TIFF with IFD offset into the header",
            {
                let mut t = tiff.clone();
                t[4..8].copy_from_slice(&2u32.to_le_bytes());
                t
            },
            InvalidInput,
            &["corrupt TIFF image", "points into the header"],
        ),
        case(
            "TIFF header only",
            b"II*\0".to_vec(),
            InvalidInput,
            &["truncated TIFF image"],
        ),
        case(
            "big-endian TIFF with garbage IFD",
            {
                let mut t = b"MM\0*\0\0\0\x08".to_vec();
                t.extend(noise(64, 11));
                t
            },
            InvalidInput,
            &["TIFF image"],
        ),
        case(
            "JPEG truncated inside its scan data",
            {
                let big = encode(
                    &image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(256, 256, |x, y| {
                        image::Rgb([
                            (x * 7 % 256) as u8,
                            (y * 13 % 256) as u8,
                            ((x ^ y) % 256) as u8,
                        ])
                    })),
                    ImageFormat::Jpeg,
                );
                big[..big.len() * 3 / 4].to_vec()
            },
            InvalidInput,
            &["truncated JPEG image", "no end-of-image marker"],
        ),
        // Limits of the node's settings.
        case(
            "valid PNG over max_pixels",
            png.clone(),
            TooLarge,
            &["64x48 = 3072 pixels", "limit of 3000 pixels"],
        )
        .settings(json!({"max_pixels": 3000})),
        case(
            "valid PNG over max_bytes",
            png.clone(),
            TooLarge,
            &["exceeds the limit of 100 bytes"],
        )
        .settings(json!({"max_bytes": 100})),
        case(
            "ROI outside the image",
            png.clone(),
            InvalidInput,
            &["roi 10x10 at (60, 0) does not fit inside the 64x48 image"],
        )
        .settings(json!({"roi": {"x": 60, "y": 0, "width": 10, "height": 10}})),
    ];
    // Truncations at several points of each format.
    for (name, bytes, points) in [
        (
            "PNG",
            &png,
            vec![8, 20, 33, 60, png.len() / 2, png.len() - 20],
        ),
        (
            "JPEG",
            &jpeg,
            vec![3, 20, 200, jpeg.len() / 2, jpeg.len() - 2],
        ),
        (
            "BMP",
            &bmp,
            vec![2, 14, 30, 54, bmp.len() / 2, bmp.len() - 1],
        ),
        ("TIFF", &tiff, vec![8, 100, tiff.len() / 2, tiff.len() - 10]),
    ] {
        for at in points {
            cases.push(case(
                format!("{name} truncated at {at} of {}", bytes.len()),
                bytes[..at].to_vec(),
                InvalidInput,
                &[name],
            ));
        }
    }
    cases
}

/// A minimal ZIP archive holding one stored file.
fn zip() -> Vec<u8> {
    let mut z = b"PK\x03\x04\x0a\x00\x00\x00\x00\x00".to_vec();
    z.extend_from_slice(&[0; 16]);
    z.extend_from_slice(&[5, 0, 0, 0]); // name length, extra length
    z.extend_from_slice(b"a.png");
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0; 18]);
    z
}

/// A BMP with its info header's width and height replaced.
fn bmp_with_size(bmp: &[u8], width: i32, height: i32) -> Vec<u8> {
    let mut b = bmp.to_vec();
    b[18..22].copy_from_slice(&width.to_le_bytes());
    b[22..26].copy_from_slice(&height.to_le_bytes());
    b
}

/// An uncompressed TIFF (as the `image` crate writes it) with new ImageWidth/ImageLength.
fn tiff_with_size(tiff: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut t = tiff.to_vec();
    assert_eq!(&t[..4], b"II*\0", "little-endian TIFF");
    let ifd = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(t[ifd..ifd + 2].try_into().unwrap()) as usize;
    for i in 0..count {
        let entry = ifd + 2 + i * 12;
        let tag = u16::from_le_bytes(t[entry..entry + 2].try_into().unwrap());
        let value = match tag {
            256 => width,
            257 => height,
            _ => continue,
        };
        // Make it a LONG so any value fits.
        t[entry + 2..entry + 4].copy_from_slice(&4u16.to_le_bytes());
        t[entry + 8..entry + 12].copy_from_slice(&value.to_le_bytes());
    }
    t
}

/// A JPEG whose start-of-frame gives a width of 0.
fn jpeg_with_zero_width(jpeg: &[u8]) -> Vec<u8> {
    let mut j = jpeg.to_vec();
    let sof = j
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    // FF C0, length (2), precision (1), height (2), width (2).
    j[sof + 7] = 0;
    j[sof + 8] = 0;
    j
}

#[tokio::test]
async fn every_bad_image_fails_with_a_named_problem() {
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let good = encode(&rgb8(32, 32), ImageFormat::Png);
    let mut problems = Vec::new();
    for case in &cases {
        let node = node(case.settings.clone()).await;

        // The processor as the factory builds it.
        match node.processor.process(case.flow_file()).await {
            Ok(outputs) => problems.push(format!("{}: succeeded: {outputs:?}", case.name)),
            Err(e) => {
                eprintln!("{:<42} {:<13} {}", case.name, e.kind, e.message);
                if e.kind != case.kind {
                    problems.push(format!(
                        "{}: kind {} (want {}): {}",
                        case.name, e.kind, case.kind, e.message
                    ));
                }
                for words in &case.message {
                    if !e.message.contains(words) {
                        problems.push(format!(
                            "{}: message `{}` lacks `{words}`",
                            case.name, e.message
                        ));
                    }
                }
            }
        }

        // Through the SDK's invoker: a `failure` output, content untouched.
        let invoker = invoker(&node, loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES);
        let input = case.flow_file();
        let outputs = invoker
            .invoke(input.clone(), None)
            .await
            .expect("not retryable");
        assert_eq!(outputs.len(), 1, "{}", case.name);
        let out = &outputs[0];
        let ff = out.flow_file().unwrap();
        if out.relationship != "failure" {
            problems.push(format!("{}: routed to {}", case.name, out.relationship));
        }
        if ff.attr(attr::ERROR_KIND) != Some(case.kind.as_str()) {
            problems.push(format!(
                "{}: error.kind {:?}",
                case.name,
                ff.attr(attr::ERROR_KIND)
            ));
        }
        match ff.attr(attr::ERROR_MESSAGE) {
            Some(m) if case.message.iter().all(|w| m.contains(w)) => {}
            other => problems.push(format!("{}: error.message {other:?}", case.name)),
        }
        if ff.content != input.content || ff.uuid != input.uuid {
            problems.push(format!("{}: content or uuid changed", case.name));
        }
        for (k, v) in &case.attributes {
            assert_eq!(ff.attr(k), Some(*v), "{}: attributes kept", case.name);
        }
        assert!(
            ff.attr("image.width").is_none(),
            "{}: no success attributes",
            case.name
        );

        // The same node keeps serving good images (unless its settings refuse them).
        if case.settings == json!({}) {
            let out = invoker
                .invoke(flow_file(good.clone(), "good.png"), None)
                .await
                .unwrap();
            assert_eq!(
                out[0].relationship, "success",
                "{}: node still serves",
                case.name
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test]
async fn the_invoker_size_limit_applies_first() {
    let node = node(json!({})).await;
    let invoker = invoker(&node, 1000);
    let content = encode(&rgb8(64, 64), ImageFormat::Bmp);
    assert!(content.len() > 1000);
    let out = invoker
        .invoke(flow_file(content.clone(), "big.png"), None)
        .await
        .unwrap();
    let ff = out[0].flow_file().unwrap();
    assert_eq!(out[0].relationship, "failure");
    assert_eq!(ff.attr(attr::ERROR_KIND), Some("too_large"));
    assert_eq!(ff.content, content);
}

#[tokio::test]
async fn one_node_serves_a_stream_of_bad_and_good_images_concurrently() {
    let node = node(json!({"resize": {"width": 16, "height": 16}})).await;
    let invoker = invoker(&node, loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES);
    let good = encode(&rgb8(40, 30), ImageFormat::Jpeg);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in corpus().into_iter().enumerate() {
        if case.settings != json!({}) {
            continue;
        }
        let invoker = invoker.clone();
        let good = good.clone();
        tasks.spawn(async move {
            let bad = invoker.invoke(case.flow_file(), None).await.unwrap();
            let ok = invoker
                .invoke(flow_file(good, &format!("{i}.jpg")), None)
                .await
                .unwrap();
            (
                case.name,
                bad[0].relationship.clone(),
                ok[0].relationship.clone(),
            )
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (name, bad, ok) = joined.expect("no task panicked");
        assert_eq!(bad, "failure", "{name}");
        assert_eq!(ok, "success", "after {name}");
    }
}
