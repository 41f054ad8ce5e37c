//! Helpers shared by the `preprocess` integration tests: images made in the test, the node
//! built the way the flow runner builds it, and byte-level image surgery.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use loupe_preprocess::Preprocess;
use loupe_sdk::{BuildContext, FlowFile, Invoker, Node, Output, factory::factory};

/// Builds a node from settings JSON through its factory, as `loupe run` and `loupe serve` do.
pub async fn node(settings: serde_json::Value) -> Node {
    let ctx = BuildContext {
        node_id: "preprocess-test".to_string(),
        base_dir: std::env::temp_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let node = factory::<Preprocess>()
        .build(&settings, &ctx)
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    node.processor.start().await.expect("start");
    node
}

/// The SDK's invoker around a node, as both hostings use it.
pub fn invoker(node: &Node, max_message_bytes: usize) -> Invoker {
    Invoker::new(node.processor.clone(), "preprocess-test", max_message_bytes)
}

/// A FlowFile named `filename` holding `content`.
pub fn flow_file(content: Vec<u8>, filename: &str) -> FlowFile {
    FlowFile::create(
        content,
        HashMap::from([("filename".to_string(), filename.to_string())]),
    )
}

/// Processes one FlowFile and returns its single output.
pub async fn one(node: &Node, ff: FlowFile) -> Output {
    let mut outputs = node
        .processor
        .process(ff)
        .await
        .unwrap_or_else(|e| panic!("processing failed: {e}"));
    assert_eq!(outputs.len(), 1, "one output per FlowFile");
    outputs.remove(0)
}

/// Encodes an image in `format` with the `image` crate.
pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encode {format:?} {:?}: {e}", image.color()));
    out.into_inner()
}

/// An RGB test card: red increases to the right, green downwards.
pub fn rgb8(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(2).saturating_sub(1)) as u8,
            (y * 255 / height.max(2).saturating_sub(1)) as u8,
            64,
        ])
    }))
}

/// 16-bit RGB with values that do not survive an 8-bit round trip.
pub fn rgb16(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb16(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x * 1000 + 7) as u16, (y * 1000 + 3) as u16, 40_000])
    }))
}

/// 16-bit grey.
pub fn gray16(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLuma16(ImageBuffer::from_fn(width, height, |x, y| {
        Luma([((x + y) * 500) as u16])
    }))
}

/// 8-bit grey.
pub fn gray8(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, _| Luma([x as u8])))
}

/// 8-bit grey with alpha.
pub fn gray_alpha8(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLumaA8(ImageBuffer::from_fn(width, height, |x, y| {
        LumaA([x as u8, y as u8])
    }))
}

/// 8-bit RGBA, half transparent.
pub fn rgba8(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([x as u8, y as u8, 200, 128])
    }))
}

/// 16-bit RGBA.
pub fn rgba16(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgba16(ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([(x * 300) as u16, (y * 300) as u16, 1, 30_000])
    }))
}

/// Deterministic pseudo-random bytes (xorshift64).
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// CRC-32 (IEEE), as PNG chunks use.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk with a correct CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    chunk
}

/// The PNG signature.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// IHDR data: 8-bit RGB of the given size.
pub fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[8, 2, 0, 0, 0]);
    data
}

/// A PNG that claims `width` x `height` in a valid header, with a tiny (wrong) IDAT: a
/// decompression bomb as far as the header is concerned.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = PNG_SIGNATURE.to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr(width, height)));
    // zlib stream of a few zero bytes.
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// Decodes output content to check it (plain `image`, independent of the node).
pub fn decode_output(content: &[u8]) -> DynamicImage {
    image::load_from_memory(content).expect("the output is a valid image")
}
