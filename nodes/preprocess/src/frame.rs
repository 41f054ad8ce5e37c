//! The usable-frame check: is this frame worth judging at all? A failed camera (a black,
//! white, grey or noise frame), a frame far out of focus, another product or a coil far too
//! small in the frame must never be judged "ok" — the node marks it unusable with its reason
//! and the flow's product policy sends its product to a person.
//!
//! Cheap by design (well under a millisecond for a 256 px photo): everything is measured on a
//! 96 x 96 luma thumbnail made by area averaging.
//!
//! - `brightness`: mean luma (0-255);
//! - `contrast`: standard deviation of luma;
//! - `correlation`: correlation of horizontally adjacent thumbnail pixels — about 1 for a
//!   photo, about 0 for a noise frame;
//! - `sharpness`: root mean square difference of adjacent thumbnail pixels divided by
//!   `contrast` — falls when the frame is out of focus (blur spreads an edge's difference
//!   over more pixels: its square sum falls);
//! - `coverage` and `offset` (with `object`): the object is the connected region of thumbnail
//!   pixels differing from the frame's border colour (its median) by more than
//!   `foreground_level` in some channel that has the most pixels near the frame's centre;
//!   `coverage` is its share of the frame, `offset` the distance of its centre from the
//!   frame's centre as a share of the half-diagonal, `ellipse` the overlap (IoU) of the
//!   object with its holes filled and the ellipse of the same second moments.

use image::DynamicImage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Side of the thumbnail the measures are taken on.
pub const THUMB: usize = 96;

/// Settings of the usable-frame check (`frame_check` of a preprocess node). The defaults
/// suit the coil photos of `loupe synth coils` and were measured to pass frames with the
/// ordinary camera faults (blur up to 1.5 px, JPEG quality 50, exposure x0.7 to x1.3,
/// noise sigma 8, tilt 7 degrees).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameCheckSettings {
    /// Lowest mean luma (0-255) of a usable frame; darker is `too dark`.
    #[serde(default = "default_min_brightness")]
    pub min_brightness: f32,
    /// Highest mean luma of a usable frame; brighter is `too bright`.
    #[serde(default = "default_max_brightness")]
    pub max_brightness: f32,
    /// Lowest luma standard deviation; below it the frame is `blank`.
    #[serde(default = "default_min_contrast")]
    pub min_contrast: f32,
    /// Lowest adjacent-pixel correlation; below it the frame is `noise`.
    #[serde(default = "default_min_correlation")]
    pub min_correlation: f32,
    /// Lowest sharpness (root mean square adjacent difference / contrast); below it the
    /// frame is `out of focus`.
    #[serde(default = "default_min_sharpness")]
    pub min_sharpness: f32,
    /// The object the camera photographs, at its expected scale and place. Absent: not
    /// checked.
    #[serde(default)]
    pub object: Option<ObjectCheck>,
}

/// Where and how large the photographed object must be.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectCheck {
    /// Difference from the border's median colour (0-255, in any channel) above which a
    /// pixel belongs to the object.
    #[serde(default = "default_foreground_level")]
    pub foreground_level: f32,
    /// Smallest share of the frame the object covers; less is `no object at the expected
    /// scale` (absent, or far too small).
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f32,
    /// Largest share of the frame the object covers; more is `not the expected object`.
    #[serde(default = "default_max_coverage")]
    pub max_coverage: f32,
    /// Largest distance of the object's centre from the frame's centre, as a share of the
    /// half-diagonal; more is `object off centre`.
    #[serde(default = "default_max_offset")]
    pub max_offset: f32,
    /// Smallest overlap (IoU) of the filled object with the ellipse of its second moments
    /// (a coil seen from above is close to an ellipse); less is `not the expected object`.
    #[serde(default = "default_min_ellipse")]
    pub min_ellipse: f32,
    /// Smallest mean difference (0-255, largest channel) between the object's pixels and the
    /// background: a coil stands out from the floor it stands on, while a textured surface (a
    /// steel sheet, another product filling the frame) only has blotches just over
    /// `foreground_level`; less is `not the expected object`. Default 36: the lowest of 6,400
    /// coil photos (seed 4401, clean and the seven ordinary faults) measured 40.1; 4 of 200
    /// steel-sheet photos (seed 3) measure above it.
    #[serde(default = "default_min_separation")]
    pub min_separation: f32,
}

fn default_min_brightness() -> f32 {
    10.0
}
fn default_max_brightness() -> f32 {
    240.0
}
fn default_min_contrast() -> f32 {
    8.0
}
fn default_min_correlation() -> f32 {
    0.3
}
fn default_min_sharpness() -> f32 {
    0.07
}
fn default_foreground_level() -> f32 {
    20.0
}
fn default_min_coverage() -> f32 {
    0.06
}
fn default_max_coverage() -> f32 {
    0.95
}
fn default_min_ellipse() -> f32 {
    0.5
}
fn default_max_offset() -> f32 {
    0.35
}
fn default_min_separation() -> f32 {
    36.0
}

impl Default for FrameCheckSettings {
    fn default() -> Self {
        FrameCheckSettings {
            min_brightness: default_min_brightness(),
            max_brightness: default_max_brightness(),
            min_contrast: default_min_contrast(),
            min_correlation: default_min_correlation(),
            min_sharpness: default_min_sharpness(),
            object: Some(ObjectCheck::default()),
        }
    }
}

impl Default for ObjectCheck {
    fn default() -> Self {
        ObjectCheck {
            foreground_level: default_foreground_level(),
            min_coverage: default_min_coverage(),
            max_coverage: default_max_coverage(),
            max_offset: default_max_offset(),
            min_ellipse: default_min_ellipse(),
            min_separation: default_min_separation(),
        }
    }
}

impl FrameCheckSettings {
    /// Every problem with these settings, as (path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut range = |path: &str, lo: f32, hi: f32, what: &str| {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                problems.push((
                    path.to_string(),
                    format!("{what}: must be finite, min < max"),
                ));
            }
        };
        range(
            "frame_check.min_brightness",
            self.min_brightness,
            self.max_brightness,
            "brightness",
        );
        if let Some(object) = &self.object {
            range(
                "frame_check.object.min_coverage",
                object.min_coverage,
                object.max_coverage,
                "coverage",
            );
        }
        problems
    }
}

/// What the check measured, and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameReport {
    /// The frame can be judged.
    pub usable: bool,
    /// Why not (when `usable` is false), e.g. `too dark (brightness 3.1 < 25)`.
    pub reason: Option<String>,
    /// Mean luma.
    pub brightness: f32,
    /// Luma standard deviation.
    pub contrast: f32,
    /// Adjacent-pixel correlation.
    pub correlation: f32,
    /// Root mean square adjacent difference / contrast.
    pub sharpness: f32,
    /// Share of the frame the object covers (0 when not checked).
    pub coverage: f32,
    /// Distance of the object's centre from the frame's centre / half-diagonal.
    pub offset: f32,
    /// Overlap (IoU) of the filled object with the ellipse of its second moments.
    pub ellipse: f32,
    /// Mean difference of the object's pixels from the background (0 when not checked).
    pub separation: f32,
}

impl FrameReport {
    /// The attributes the node writes: `frame.usable`, `frame.reason` (when unusable) and the
    /// measures as `frame.<name>`.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("frame.usable", self.usable.to_string()),
            ("frame.brightness", format!("{:.1}", self.brightness)),
            ("frame.contrast", format!("{:.1}", self.contrast)),
            ("frame.correlation", format!("{:.3}", self.correlation)),
            ("frame.sharpness", format!("{:.3}", self.sharpness)),
            ("frame.coverage", format!("{:.3}", self.coverage)),
            ("frame.offset", format!("{:.3}", self.offset)),
            ("frame.ellipse", format!("{:.3}", self.ellipse)),
            ("frame.separation", format!("{:.1}", self.separation)),
        ];
        if let Some(reason) = &self.reason {
            out.push(("frame.reason", reason.clone()));
        }
        out
    }
}

/// Checks one decoded frame.
pub fn check(image: &DynamicImage, settings: &FrameCheckSettings) -> FrameReport {
    let colour = thumbnail(image);
    let thumb: Vec<f32> = colour.iter().map(|&px| luma(px)).collect();
    let n = thumb.len() as f32;
    let brightness = thumb.iter().sum::<f32>() / n;
    let contrast = (thumb.iter().map(|v| (v - brightness).powi(2)).sum::<f32>() / n).sqrt();
    let (mut diff, mut cov, mut pairs) = (0.0f32, 0.0f32, 0.0f32);
    for row in thumb.chunks_exact(THUMB) {
        for pair in row.windows(2) {
            diff += (pair[0] - pair[1]).powi(2);
            cov += (pair[0] - brightness) * (pair[1] - brightness);
            pairs += 1.0;
        }
    }
    let variance = contrast * contrast;
    let correlation = if variance > 0.0 {
        (cov / pairs / variance).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let sharpness = if contrast > 0.0 {
        (diff / pairs).sqrt() / contrast
    } else {
        0.0
    };
    let region = match &settings.object {
        Some(object) => object_region(&colour, object.foreground_level),
        None => Region::default(),
    };
    let Region {
        coverage,
        offset,
        ellipse,
        separation,
    } = region;
    let s = settings;
    let reason = if brightness < s.min_brightness {
        Some(format!(
            "too dark (brightness {brightness:.1} < {})",
            s.min_brightness
        ))
    } else if brightness > s.max_brightness {
        Some(format!(
            "too bright (brightness {brightness:.1} > {})",
            s.max_brightness
        ))
    } else if contrast < s.min_contrast {
        Some(format!(
            "blank frame (contrast {contrast:.1} < {})",
            s.min_contrast
        ))
    } else if correlation < s.min_correlation {
        Some(format!(
            "noise, not a photo (correlation {correlation:.2} < {})",
            s.min_correlation
        ))
    } else if sharpness < s.min_sharpness {
        Some(format!(
            "out of focus (sharpness {sharpness:.3} < {})",
            s.min_sharpness
        ))
    } else {
        s.object.as_ref().and_then(|o| {
            if coverage < o.min_coverage {
                Some(format!(
                    "no object at the expected scale (coverage {coverage:.3} < {})",
                    o.min_coverage
                ))
            } else if coverage > o.max_coverage {
                Some(format!(
                    "not the expected object (coverage {coverage:.3} > {})",
                    o.max_coverage
                ))
            } else if offset > o.max_offset {
                Some(format!(
                    "object off centre (offset {offset:.2} > {})",
                    o.max_offset
                ))
            } else if ellipse < o.min_ellipse {
                Some(format!(
                    "not the expected object (shape: ellipse overlap {ellipse:.2} < {})",
                    o.min_ellipse
                ))
            } else if separation < o.min_separation {
                Some(format!(
                    "not the expected object (it barely stands out from its background: \
                     separation {separation:.1} < {})",
                    o.min_separation
                ))
            } else {
                None
            }
        })
    };
    FrameReport {
        usable: reason.is_none(),
        reason,
        brightness,
        contrast,
        correlation,
        sharpness,
        coverage,
        offset,
        ellipse,
        separation,
    }
}

/// Area-averaged RGB thumbnail, `THUMB` x `THUMB`, row-major (grey frames repeat luma).
fn thumbnail(image: &DynamicImage) -> Vec<[f32; 3]> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut sums = vec![[0.0f32; 3]; THUMB * THUMB];
    let mut counts = vec![0u32; THUMB * THUMB];
    if w == 0 || h == 0 {
        return sums;
    }
    let bins_x: Vec<usize> = (0..w).map(|x| x * THUMB / w).collect();
    let mut add = |x: usize, y: usize, rgb: [f32; 3]| {
        let i = (y * THUMB / h) * THUMB + bins_x[x];
        for (sum, v) in sums[i].iter_mut().zip(rgb) {
            *sum += v;
        }
        counts[i] += 1;
    };
    match image {
        DynamicImage::ImageLuma8(buffer) => {
            for (x, y, p) in buffer.enumerate_pixels() {
                add(x as usize, y as usize, [f32::from(p[0]); 3]);
            }
        }
        DynamicImage::ImageRgb8(buffer) => {
            for (x, y, p) in buffer.enumerate_pixels() {
                add(x as usize, y as usize, p.0.map(f32::from));
            }
        }
        other => {
            let rgb = other.to_rgb8();
            for (x, y, p) in rgb.enumerate_pixels() {
                add(x as usize, y as usize, p.0.map(f32::from));
            }
        }
    }
    // A frame smaller than the thumbnail leaves bins empty: they take their left neighbour
    // (or the one above) so the measures see no false edges.
    for i in 0..sums.len() {
        if counts[i] > 0 {
            let n = counts[i] as f32;
            sums[i] = sums[i].map(|v| v / n);
        } else if i % THUMB > 0 {
            sums[i] = sums[i - 1];
        } else if i >= THUMB {
            sums[i] = sums[i - THUMB];
        }
    }
    sums
}

fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.2126 * r + 0.7152 * g + 0.0722 * b
}

/// What the object region measured.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Region {
    coverage: f32,
    offset: f32,
    ellipse: f32,
    /// Mean difference of the object's pixels from the background colour (largest channel).
    separation: f32,
}

impl Default for Region {
    fn default() -> Self {
        Region {
            coverage: 0.0,
            offset: 1.0,
            ellipse: 0.0,
            separation: 0.0,
        }
    }
}

/// Coverage, centre offset and shape of the object: of the 4-connected regions of pixels whose
/// colour differs from the border's median colour by more than `level` in some channel, the
/// one with the most pixels near the frame's centre (clutter at the edges is not the object).
fn object_region(thumb: &[[f32; 3]], level: f32) -> Region {
    let border: Vec<usize> = (0..THUMB)
        .flat_map(|i| [i, (THUMB - 1) * THUMB + i, i * THUMB, i * THUMB + THUMB - 1])
        .collect();
    let background: [f32; 3] = std::array::from_fn(|c| {
        let mut values: Vec<f32> = border.iter().map(|&i| thumb[i][c]).collect();
        values.sort_by(f32::total_cmp);
        values[values.len() / 2]
    });
    // Each pixel's difference from the background, in its most different channel.
    let difference: Vec<f32> = thumb
        .iter()
        .map(|px| {
            (0..3)
                .map(|c| (px[c] - background[c]).abs())
                .fold(0.0, f32::max)
        })
        .collect();
    let foreground: Vec<bool> = difference.iter().map(|&d| d > level).collect();
    let centre = (THUMB as f32 - 1.0) / 2.0;
    let near_centre = |x: usize, y: usize| {
        let r = THUMB as f32 * 0.3;
        (x as f32 - centre).powi(2) + (y as f32 - centre).powi(2) <= r * r
    };
    let mut label = vec![0u32; foreground.len()];
    // (pixels near the centre, area, centroid x, centroid y, label, summed difference)
    let mut best = (0usize, 0usize, 0.0f32, 0.0f32, 0u32, 0.0f32);
    let mut stack = Vec::new();
    let mut next = 0u32;
    for start in 0..foreground.len() {
        if !foreground[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let (mut area, mut central, mut sx, mut sy) = (0usize, 0usize, 0.0f32, 0.0f32);
        let mut sdiff = 0.0f32;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % THUMB, i / THUMB);
            area += 1;
            sdiff += difference[i];
            central += usize::from(near_centre(x, y));
            sx += x as f32;
            sy += y as f32;
            for j in neighbours(i) {
                if foreground[j] && label[j] == 0 {
                    label[j] = next;
                    stack.push(j);
                }
            }
        }
        if (central, area) > (best.0, best.1) {
            best = (
                central,
                area,
                sx / area as f32,
                sy / area as f32,
                next,
                sdiff,
            );
        }
    }
    let (_, area, cx, cy, object, sdiff) = best;
    if area == 0 {
        return Region::default();
    }
    // Outside: pixels not of the object that reach the frame's border without crossing it
    // (the rest is the object with its holes filled).
    let mut outside = vec![false; thumb.len()];
    for &i in &border {
        if label[i] != object && !outside[i] {
            outside[i] = true;
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        for j in neighbours(i) {
            if label[j] != object && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    // How elliptical the filled object is: its overlap (IoU) with the ellipse of the same
    // second moments.
    let filled: Vec<usize> = (0..thumb.len()).filter(|&i| !outside[i]).collect();
    let n = filled.len() as f32;
    let (mx, my) = filled.iter().fold((0.0, 0.0), |(a, b), &i| {
        (a + (i % THUMB) as f32 / n, b + (i / THUMB) as f32 / n)
    });
    let (mut sxx, mut syy, mut sxy) = (0.0f32, 0.0f32, 0.0f32);
    for &i in &filled {
        let (dx, dy) = ((i % THUMB) as f32 - mx, (i / THUMB) as f32 - my);
        sxx += dx * dx / n;
        syy += dy * dy / n;
        sxy += dx * dy / n;
    }
    let det = sxx * syy - sxy * sxy;
    let ellipse = if det > 0.0 {
        let inside = |i: usize| {
            let (dx, dy) = ((i % THUMB) as f32 - mx, (i / THUMB) as f32 - my);
            (syy * dx * dx - 2.0 * sxy * dx * dy + sxx * dy * dy) / det <= 4.0
        };
        let (mut both, mut either) = (0usize, 0usize);
        for (i, out) in outside.iter().enumerate() {
            let (a, b) = (!out, inside(i));
            both += usize::from(a && b);
            either += usize::from(a || b);
        }
        both as f32 / either.max(1) as f32
    } else {
        0.0
    };
    let half_diagonal = centre * std::f32::consts::SQRT_2;
    Region {
        coverage: area as f32 / thumb.len() as f32,
        offset: ((cx - centre).powi(2) + (cy - centre).powi(2)).sqrt() / half_diagonal,
        ellipse,
        separation: sdiff / area as f32,
    }
}

/// The 4-neighbours of thumbnail pixel `i`.
fn neighbours(i: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (i % THUMB, i / THUMB);
    [
        (x > 0).then(|| i - 1),
        (x + 1 < THUMB).then(|| i + 1),
        (y > 0).then(|| i - THUMB),
        (y + 1 < THUMB).then(|| i + THUMB),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A bright disc of radius `r` at (`cx`, `cy`) on a dark floor, with a soft pattern so
    /// the frame has texture.
    fn disc(size: u32, r: f32, cx: f32, cy: f32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(size, size, |x, y| {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let ripple = ((x as f32 * 0.3).sin() * 20.0) as i32;
            let v = if d < r { 180 + ripple } else { 70 };
            let v = v.clamp(0, 255) as u8;
            Rgb([v, v, v])
        }))
    }

    fn reason(image: &DynamicImage) -> Option<String> {
        check(image, &FrameCheckSettings::default()).reason
    }

    #[test]
    fn a_centred_object_at_its_scale_is_usable() {
        let r = check(
            &disc(256, 80.0, 128.0, 128.0),
            &FrameCheckSettings::default(),
        );
        assert!(r.usable, "{r:?}");
        assert!((r.coverage - 0.31).abs() < 0.05, "{r:?}");
        assert!(r.offset < 0.05 && r.correlation > 0.8, "{r:?}");
        let attrs = r.attributes();
        assert!(attrs.contains(&("frame.usable", "true".to_string())));
        assert!(!attrs.iter().any(|(k, _)| *k == "frame.reason"));
    }

    #[test]
    fn failed_camera_frames_are_unusable_with_their_reason() {
        let flat = |v: u8| DynamicImage::ImageRgb8(RgbImage::from_pixel(256, 256, Rgb([v; 3])));
        assert!(reason(&flat(0)).unwrap().starts_with("too dark"));
        assert!(reason(&flat(255)).unwrap().starts_with("too bright"));
        assert!(reason(&flat(128)).unwrap().starts_with("blank frame"));
        // Uniform noise from a fixed linear congruential sequence.
        let mut state = 12345u32;
        let noise = DynamicImage::ImageRgb8(RgbImage::from_fn(256, 256, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = (state >> 16) as u8;
            Rgb([v, v, v])
        }));
        assert!(
            reason(&noise).unwrap().starts_with("noise"),
            "{:?}",
            reason(&noise)
        );
    }

    #[test]
    fn a_tiny_absent_or_off_centre_object_is_unusable() {
        let tiny = disc(256, 12.0, 128.0, 128.0);
        assert!(
            reason(&tiny).unwrap().starts_with("no object"),
            "{:?}",
            reason(&tiny)
        );
        let off = disc(256, 50.0, 40.0, 40.0);
        assert!(
            reason(&off).unwrap().starts_with("object off centre"),
            "{:?}",
            reason(&off)
        );
        let huge = disc(256, 400.0, 128.0, 128.0);
        assert!(reason(&huge).is_some());
    }

    #[test]
    fn a_blotch_that_barely_stands_out_is_not_the_expected_object() {
        // A textured plate filling the frame with a faint round blotch in the middle: the
        // shape and place of an object, but not something standing out from its floor.
        let faint = DynamicImage::ImageRgb8(RgbImage::from_fn(256, 256, |x, y| {
            let d = ((x as f32 - 128.0).powi(2) + (y as f32 - 128.0).powi(2)).sqrt();
            let grain = ((x as f32 * 0.7).sin() * (y as f32 * 0.5).cos() * 12.0) as i32;
            let v = if d < 70.0 { 150 } else { 120 } + grain;
            let v = v.clamp(0, 255) as u8;
            Rgb([v, v, v])
        }));
        let r = check(&faint, &FrameCheckSettings::default());
        assert!(r.separation > 20.0 && r.separation < 36.0, "{r:?}");
        assert!(
            r.reason
                .as_deref()
                .is_some_and(|m| m.contains("barely stands out")),
            "{r:?}"
        );
        // The same blotch, standing out as a coil does, is usable.
        let r = check(
            &disc(256, 70.0, 128.0, 128.0),
            &FrameCheckSettings::default(),
        );
        assert!(r.usable && r.separation > 60.0, "{r:?}");
    }

    #[test]
    fn a_frame_far_out_of_focus_is_unusable() {
        let sharp = disc(256, 80.0, 128.0, 128.0);
        let blurred = sharp.blur(25.0);
        let r = check(&blurred, &FrameCheckSettings::default());
        assert!(
            r.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("out of focus")),
            "{r:?}"
        );
    }
}
