//! # loupe-synth
//!
//! Deterministic, realistic synthetic inspection data, behind `loupe synth`:
//!
//! - **Coils** ([`generate_coils`]): wound wire coils photographed from 8 angles, with
//!   harmless burrs and real loose wires placed on the coil in 3-D, so each defect shows
//!   in only the photos facing it. Each image also gets the verdict of a simulated
//!   factory camera ([`camera`]), a rule that flags anything sticking out of the coil's
//!   outline — nearly all loose wires, and most burrs too.
//! - **Surfaces** ([`generate_surfaces`]): steel-sheet textures with scratches, pits,
//!   patches and inclusions, and a per-pixel class mask for each.
//!
//! Same options, same bytes: every image draws from its own seeded stream
//! (`seed`, product, angle), so generation runs on all cores in any order.
//!
//! ## Layout
//! - `rng`: the seeded streams; `geom`, `raster`: points, curves, anti-aliased drawing;
//! - `view`: the wire's material, a photo's camera pose and light, projection and shading
//!   (a leaf: the coil body and the defects are both drawn through it);
//! - `coil`: the coil product and how each of its photos is posed (`Coil::view`), the coil
//!   body's shading; `defects`: burrs and loose wires; `scene`: background and clutter; `render`: exposure, vignetting, blur,
//!   noise, encoding; [`camera`]: the factory camera's rule; [`faults`]: camera faults
//!   applied to finished photos (blur, JPEG, exposure, noise, tilt, failed-camera frames);
//! - `surface`: steel sheets; [`manifest`]: the files written; `generate`: the
//!   parallel writers; [`options`]: options and their validation.

mod coil;
mod defects;
mod error;
mod generate;
mod geom;
mod raster;
mod render;
mod rng;
mod scene;
mod surface;
mod view;

pub mod camera;
pub mod faults;
pub mod manifest;
pub mod options;

pub use coil::ANGLES;
pub use error::SynthError;
pub use generate::{CoilPhoto, coil_photo, generate_coils, generate_surfaces};
pub use manifest::{
    CoilDataset, CoilLabel, CoilRecord, DefectRecord, GENERATOR, SurfaceClass, SurfaceDataset,
    SurfaceRecord,
};
pub use options::{CoilOptions, ImageFormat, MAX_SIZE, MIN_SIZE, SurfaceOptions};
pub use render::JPEG_QUALITY;
