//! dev: grid of images with the camera region overlay.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out_path = &args[1];
    let files = &args[2..];
    let cell = 256u32;
    let cols = 4u32;
    let rows = (files.len() as u32 * 2).div_ceil(cols);
    let mut grid = image::RgbImage::new(cell * cols, cell * rows);
    for (k, f) in files.iter().enumerate() {
        let img = image::open(f).unwrap().to_rgb8();
        let img = image::imageops::resize(&img, cell, cell, image::imageops::FilterType::Triangle);
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (r, region, _) = loupe_synth::camera::inspect_debug(img.as_raw(), w, h);
        println!("{f}: {r:?}");
        let mut ov = img.clone();
        for (i, p) in ov.pixels_mut().enumerate() {
            if region[i] {
                p.0[2] = 255;
            }
        }
        for (j, im) in [img, ov].iter().enumerate() {
            let idx = k as u32 * 2 + j as u32;
            image::imageops::replace(&mut grid, im, ((idx % cols) * cell) as i64, ((idx / cols) * cell) as i64);
        }
    }
    grid.save(out_path).unwrap();
}
