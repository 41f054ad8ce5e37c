//! # loupe-flow
//!
//! Flow files and the embedded NiFi-style runner.
//!
//! ## Layout
//! - [`ack`]: end-to-end acknowledgement (an offer is settled when all its descendants are).
//! - [`yaml`]: YAML loading that keeps line/column marks, so every error can be located.
//! - [`spec`]: the flow file's serde shape (what users write).
//! - [`compile`]: checks a whole flow against the node registry and reports ALL errors.
//! - [`model`]: the compiled flow the runner executes.
//! - [`queue`]: the bounded priority queue of one connection (prioritizers, back pressure,
//!   penalties, expiration).
//! - [`runner`]: hosts or connects nodes, moves FlowFiles, retries, provenance, summary.

pub mod ack;
pub mod compile;
pub mod model;
pub mod queue;
pub mod runner;
pub mod spec;
pub mod yaml;

pub use compile::{FlowError, compile_file, compile_str};
pub use model::{CompiledConnection, CompiledFlow, CompiledNode, Prioritizer, RetryPolicy};
