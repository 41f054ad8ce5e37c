//! Good inputs: every supported format and pixel layout, EXIF orientation, region of interest,
//! the resize modes and the colour conversions, through the node as the runner builds it.

mod common;

use common::*;
use image::{ColorType, DynamicImage, ImageBuffer, ImageFormat, Rgb};
use loupe_preprocess::{Preprocess, attr};
use loupe_sdk::factory::factory;
use loupe_sdk::imaging::testing::with_exif_orientation;
use serde_json::json;

fn attr_of<'a>(out: &'a loupe_sdk::Output, key: &str) -> &'a str {
    out.flow_file()
        .and_then(|ff| ff.attr(key))
        .unwrap_or_else(|| panic!("attribute {key} missing"))
}

#[tokio::test]
async fn every_format_and_layout_decodes() {
    let node = node(json!({})).await;
    let cases: Vec<(&str, DynamicImage, ImageFormat, &str, bool)> = vec![
        // (name, image, encoded as, original.format, lossless)
        ("jpeg rgb8", rgb8(64, 48), ImageFormat::Jpeg, "jpeg", false),
        (
            "jpeg gray8",
            gray8(64, 48),
            ImageFormat::Jpeg,
            "jpeg",
            false,
        ),
        ("png rgb8", rgb8(33, 17), ImageFormat::Png, "png", true),
        ("png rgb16", rgb16(33, 17), ImageFormat::Png, "png", true),
        ("png gray8", gray8(33, 17), ImageFormat::Png, "png", true),
        ("png gray16", gray16(33, 17), ImageFormat::Png, "png", true),
        (
            "png gray+alpha8",
            gray_alpha8(33, 17),
            ImageFormat::Png,
            "png",
            true,
        ),
        ("png rgba8", rgba8(33, 17), ImageFormat::Png, "png", true),
        ("png rgba16", rgba16(33, 17), ImageFormat::Png, "png", true),
        ("bmp rgb8", rgb8(31, 9), ImageFormat::Bmp, "bmp", true),
        ("bmp rgba8", rgba8(31, 9), ImageFormat::Bmp, "bmp", true),
        ("bmp gray8", gray8(31, 9), ImageFormat::Bmp, "bmp", false),
        ("tiff rgb8", rgb8(29, 11), ImageFormat::Tiff, "tiff", true),
        ("tiff rgb16", rgb16(29, 11), ImageFormat::Tiff, "tiff", true),
        ("tiff gray8", gray8(29, 11), ImageFormat::Tiff, "tiff", true),
        (
            "tiff gray16",
            gray16(29, 11),
            ImageFormat::Tiff,
            "tiff",
            true,
        ),
        ("tiff rgba8", rgba8(29, 11), ImageFormat::Tiff, "tiff", true),
        (
            "tiff rgba16",
            rgba16(29, 11),
            ImageFormat::Tiff,
            "tiff",
            true,
        ),
    ];
    for (name, image, format, format_attr, lossless) in cases {
        let content = encode(&image, format);
        let input = flow_file(content, "part.bin");
        let uuid = input.uuid.clone();
        let out = one(&node, input).await;
        assert_eq!(out.relationship, "success", "{name}: {out:?}");
        let (w, h) = (image.width().to_string(), image.height().to_string());
        assert_eq!(attr_of(&out, attr::WIDTH), w, "{name}");
        assert_eq!(attr_of(&out, attr::HEIGHT), h, "{name}");
        assert_eq!(attr_of(&out, attr::ORIGINAL_WIDTH), w, "{name}");
        assert_eq!(attr_of(&out, attr::ORIGINAL_HEIGHT), h, "{name}");
        assert_eq!(attr_of(&out, attr::ORIGINAL_FORMAT), format_attr, "{name}");
        assert_eq!(attr_of(&out, attr::ORIGINAL_ORIENTATION), "1", "{name}");
        assert_eq!(attr_of(&out, "mime.type"), "image/png", "{name}");
        assert_eq!(
            attr_of(&out, "filename"),
            "part.bin",
            "{name}: attributes kept"
        );
        let ff = out.flow_file().unwrap();
        assert_eq!(ff.uuid, uuid, "{name}: same FlowFile");
        let decoded = decode_output(&ff.content);
        assert_eq!(
            decoded.dimensions_tuple(),
            (image.width(), image.height()),
            "{name}"
        );
        if lossless {
            // `keep` + PNG: the exact pixels in the exact layout (BMP stores RGBA as is).
            assert_eq!(decoded.color(), image.color(), "{name}: layout kept");
            assert_eq!(decoded.as_bytes(), image.as_bytes(), "{name}: pixels kept");
        }
    }
}

trait Dimensions {
    fn dimensions_tuple(&self) -> (u32, u32);
}

impl Dimensions for DynamicImage {
    fn dimensions_tuple(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

/// 40x20: left half red, right half blue.
fn halves() -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(40, 20, |x, _| {
        if x < 20 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }))
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 200 && p[2] < 60
}

fn is_blue(p: [u8; 3]) -> bool {
    p[2] > 200 && p[0] < 60
}

#[tokio::test]
async fn exif_orientation_is_applied() {
    let node = node(json!({})).await;
    let jpeg = encode(&halves(), ImageFormat::Jpeg);

    // Orientation 6: rotate 90 degrees clockwise: 40x20 becomes 20x40, and the left (red)
    // half becomes the top.
    let out = one(&node, flow_file(with_exif_orientation(&jpeg, 6), "a.jpg")).await;
    assert_eq!(out.relationship, "success");
    assert_eq!(attr_of(&out, attr::WIDTH), "20");
    assert_eq!(attr_of(&out, attr::HEIGHT), "40");
    assert_eq!(attr_of(&out, attr::ORIGINAL_WIDTH), "20");
    assert_eq!(attr_of(&out, attr::ORIGINAL_HEIGHT), "40");
    assert_eq!(attr_of(&out, attr::ORIGINAL_ORIENTATION), "6");
    let image = decode_output(&out.flow_file().unwrap().content).into_rgb8();
    assert_eq!(image.dimensions(), (20, 40));
    assert!(is_red(image.get_pixel(10, 5).0), "top is the old left");
    assert!(
        is_blue(image.get_pixel(10, 34).0),
        "bottom is the old right"
    );

    // Orientation 8 (270 degrees clockwise): also swaps, the left half goes to the bottom.
    let out = one(&node, flow_file(with_exif_orientation(&jpeg, 8), "a.jpg")).await;
    let image = decode_output(&out.flow_file().unwrap().content).into_rgb8();
    assert_eq!(image.dimensions(), (20, 40));
    assert!(is_blue(image.get_pixel(10, 5).0));
    assert!(is_red(image.get_pixel(10, 34).0));

    // Orientation 3 (180 degrees): same size, halves swapped.
    let out = one(&node, flow_file(with_exif_orientation(&jpeg, 3), "a.jpg")).await;
    let image = decode_output(&out.flow_file().unwrap().content).into_rgb8();
    assert_eq!(image.dimensions(), (40, 20));
    assert!(is_blue(image.get_pixel(5, 10).0));
    assert!(is_red(image.get_pixel(34, 10).0));

    // Orientation 1 and an invalid value (0) leave the image alone.
    for value in [1, 0] {
        let out = one(
            &node,
            flow_file(with_exif_orientation(&jpeg, value), "a.jpg"),
        )
        .await;
        assert_eq!(out.relationship, "success");
        assert_eq!(attr_of(&out, attr::WIDTH), "40", "orientation {value}");
        assert_eq!(attr_of(&out, attr::ORIGINAL_ORIENTATION), "1");
    }

    // The region of interest refers to the upright image: a 20x40 ROI fits only after the
    // rotation.
    let node = common::node(json!({"roi": {"x": 0, "y": 0, "width": 20, "height": 40}})).await;
    let out = one(&node, flow_file(with_exif_orientation(&jpeg, 6), "a.jpg")).await;
    assert_eq!(out.relationship, "success");
    assert_eq!(attr_of(&out, attr::HEIGHT), "40");
}

async fn sizes(settings: serde_json::Value, input: &DynamicImage) -> (u32, u32, DynamicImage) {
    let node = node(settings.clone()).await;
    let out = one(&node, flow_file(encode(input, ImageFormat::Png), "a.png")).await;
    assert_eq!(out.relationship, "success", "{settings}: {out:?}");
    let w: u32 = attr_of(&out, attr::WIDTH).parse().unwrap();
    let h: u32 = attr_of(&out, attr::HEIGHT).parse().unwrap();
    assert_eq!(
        attr_of(&out, attr::ORIGINAL_WIDTH),
        input.width().to_string()
    );
    assert_eq!(
        attr_of(&out, attr::ORIGINAL_HEIGHT),
        input.height().to_string()
    );
    let image = decode_output(&out.flow_file().unwrap().content);
    assert_eq!(
        (image.width(), image.height()),
        (w, h),
        "attributes match the content"
    );
    (w, h, image)
}

#[tokio::test]
async fn roi_and_resize_modes_give_the_expected_sizes() {
    let input = rgb8(200, 100);
    let roi = json!({"x": 10, "y": 20, "width": 100, "height": 50});

    let (w, h, image) = sizes(json!({"roi": roi}), &input).await;
    assert_eq!((w, h), (100, 50));
    // The crop is exact: the output's (0, 0) is the input's (10, 20).
    assert_eq!(
        image.to_rgb8().get_pixel(0, 0),
        input.to_rgb8().get_pixel(10, 20)
    );
    assert_eq!(
        image.to_rgb8().get_pixel(99, 49),
        input.to_rgb8().get_pixel(109, 69)
    );

    for filter in ["nearest", "bilinear", "catmull-rom", "lanczos3"] {
        let (w, h, _) = sizes(
            json!({"resize": {"width": 64, "height": 48, "filter": filter}}),
            &input,
        )
        .await;
        assert_eq!((w, h), (64, 48), "{filter}");
    }
    let (w, h, _) = sizes(
        json!({"roi": roi, "resize": {"width": 30, "height": 60}}),
        &input,
    )
    .await;
    assert_eq!((w, h), (30, 60), "exact stretches");

    // fit: 200x100 into 64x64 -> 64x32 centred, 16 rows of padding above and below.
    let (w, h, image) = sizes(
        json!({"resize": {"width": 64, "height": 64, "mode": "fit", "pad": 200}}),
        &input,
    )
    .await;
    assert_eq!((w, h), (64, 64));
    let rgb = image.to_rgb8();
    assert_eq!(rgb.get_pixel(32, 3).0, [200, 200, 200], "padding");
    assert_eq!(rgb.get_pixel(32, 60).0, [200, 200, 200], "padding");
    assert_eq!(rgb.get_pixel(32, 32).0[2], 64, "image inside");

    // fill: 200x100 to 64x64 takes the centre 100x100; no padding.
    let (w, h, image) = sizes(
        json!({"resize": {"width": 64, "height": 64, "mode": "fill", "filter": "nearest"}}),
        &input,
    )
    .await;
    assert_eq!((w, h), (64, 64));
    let red_left = image.to_rgb8().get_pixel(0, 32).0[0];
    let red_right = image.to_rgb8().get_pixel(63, 32).0[0];
    assert!(
        (55..=75).contains(&red_left) && (180..=200).contains(&red_right),
        "the centre columns 50..150 of 200: red from ~64 to ~191, got {red_left}..{red_right}"
    );

    // ROI + fill and ROI + fit.
    let (w, h, _) = sizes(
        json!({"roi": roi, "resize": {"width": 10, "height": 40, "mode": "fill"}}),
        &input,
    )
    .await;
    assert_eq!((w, h), (10, 40));
    let (w, h, _) = sizes(
        json!({"roi": roi, "resize": {"width": 10, "height": 40, "mode": "fit"}}),
        &input,
    )
    .await;
    assert_eq!((w, h), (10, 40));

    // 16-bit stays 16-bit through resizing with `keep`.
    let (_, _, image) = sizes(json!({"resize": {"width": 8, "height": 8}}), &rgb16(40, 40)).await;
    assert_eq!(image.color(), ColorType::Rgb16);
}

#[tokio::test]
async fn color_conversions() {
    let input = rgba16(20, 10);
    let (_, _, image) = sizes(json!({"color": "rgb"}), &input).await;
    assert_eq!(image.color(), ColorType::Rgb8, "rgb: alpha dropped, 8-bit");
    let (_, _, image) = sizes(json!({"color": "gray"}), &input).await;
    assert_eq!(image.color(), ColorType::L8, "gray: 8-bit luma");
    let (_, _, image) = sizes(json!({"color": "keep"}), &input).await;
    assert_eq!(image.color(), ColorType::Rgba16, "keep");
    let (_, _, image) = sizes(json!({"color": "rgb"}), &gray16(20, 10)).await;
    assert_eq!(image.color(), ColorType::Rgb8, "grey to rgb");
    let px = image.to_rgb8().get_pixel(3, 4).0;
    assert!(px[0] == px[1] && px[1] == px[2], "grey stays grey: {px:?}");

    // A pure colour converts to its BT.709 luma.
    let red = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(4, 4, Rgb([255, 0, 0])));
    let (_, _, image) = sizes(json!({"color": "gray"}), &red).await;
    assert_eq!(image.to_luma8().get_pixel(0, 0).0, [54], "0.2126 * 255");

    // JPEG output: `keep` becomes 8-bit RGB (or grey), quality applies.
    for (input, expected) in [
        (rgba16(64, 64), ColorType::Rgb8),
        (gray16(64, 64), ColorType::L8),
    ] {
        let mut sizes_by_quality = Vec::new();
        for quality in [20, 95] {
            let node = node(json!({"output": {"format": "jpeg", "quality": quality}})).await;
            let out = one(&node, flow_file(encode(&input, ImageFormat::Png), "a.png")).await;
            assert_eq!(out.relationship, "success");
            assert_eq!(attr_of(&out, "mime.type"), "image/jpeg");
            let content = &out.flow_file().unwrap().content;
            assert_eq!(&content[..2], &[0xFF, 0xD8], "a JPEG");
            assert_eq!(decode_output(content).color(), expected);
            sizes_by_quality.push(content.len());
        }
        assert!(
            sizes_by_quality[0] < sizes_by_quality[1],
            "quality matters: {sizes_by_quality:?}"
        );
    }
}

#[tokio::test]
async fn format_comes_from_the_content_not_the_name() {
    let node = node(json!({})).await;
    let jpeg = encode(&rgb8(16, 16), ImageFormat::Jpeg);
    let ff = flow_file(jpeg, "looks-like.png").with_attr("mime.type", "image/png");
    let out = one(&node, ff).await;
    assert_eq!(out.relationship, "success");
    assert_eq!(attr_of(&out, attr::ORIGINAL_FORMAT), "jpeg");
    assert_eq!(
        attr_of(&out, "mime.type"),
        "image/png",
        "the output is a PNG"
    );
}

#[tokio::test]
async fn node_describes_itself_and_checks_settings() {
    let node = node(json!({})).await;
    let d = node.processor.describe();
    assert_eq!(d.node_type, "preprocess");
    let names: Vec<_> = d.relationships.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["success", "failure"]);
    assert!(d.settings_schema.contains("max_pixels"));

    let f = factory::<Preprocess>();
    assert!(
        f.check(&json!({"resize": {"width": 224, "height": 224}}))
            .is_ok()
    );
    let errors = f.check(&json!({"resise": {}})).unwrap_err();
    assert_eq!(errors[0].path, "resise");
    let errors = f
        .check(&json!({"resize": {"width": 224, "height": 224, "mode": "stretch"}}))
        .unwrap_err();
    assert_eq!(errors[0].path, "resize.mode");
    let errors = f
        .check(&json!({"roi": {"x": 0, "y": 0, "width": 0, "height": 1}}))
        .unwrap_err();
    assert_eq!(errors[0].path, "roi");
}
