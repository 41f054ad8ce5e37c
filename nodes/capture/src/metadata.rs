//! Attributes from metadata: static values, the file name, JSON records (sidecars and
//! manifest lines), and the `fragment.*` convention for multi-angle products.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::pattern::{FilenamePattern, PatternError};
use crate::settings::MetadataSettings;

/// Attribute with the file's size in bytes (NiFi `file.size`), for every input.
pub const FILE_SIZE: &str = "file.size";
/// Attribute naming the input a FlowFile came from: `directory`, `upload` or `snapshot`.
pub const CAPTURE_INPUT: &str = "capture.input";
/// Product the image shows (`p00042`).
pub const PRODUCT_ID: &str = "product.id";
/// Camera that took the image.
pub const CAMERA_ID: &str = "camera.id";
/// Camera angle index of a multi-angle product (`0`..`7`).
pub const CAMERA_ANGLE: &str = "camera.angle";
/// The factory camera's own verdict (`ok`, `loose_wire`).
pub const CAMERA_VERDICT: &str = "camera.verdict";
/// The factory camera's score behind its verdict.
pub const CAMERA_SCORE: &str = "camera.score";
/// NiFi fragment convention: the whole the part belongs to (the product).
pub const FRAGMENT_IDENTIFIER: &str = "fragment.identifier";
/// NiFi fragment convention: this part's index (the angle).
pub const FRAGMENT_INDEX: &str = "fragment.index";
/// NiFi fragment convention: how many parts the whole has.
pub const FRAGMENT_COUNT: &str = "fragment.count";
/// Ground truth of a synthetic image: worst defect visible in this image.
pub const TRUTH_LABEL: &str = "truth.label";
/// Ground truth of a synthetic image: worst defect of the whole product.
pub const TRUTH_PRODUCT_LABEL: &str = "truth.product_label";
/// Ground truth of a synthetic image: its defects as a JSON array.
pub const TRUTH_DEFECTS: &str = "truth.defects";
/// Why a sidecar could not be used (the image goes out regardless).
pub const METADATA_ERROR: &str = "metadata.error";

/// Angles per product in `loupe synth coils` output.
pub const SYNTH_COIL_ANGLES: u32 = 8;

/// Largest sidecar read; anything larger is not metadata.
pub const MAX_SIDECAR_BYTES: u64 = 1024 * 1024;

/// The compiled `metadata` settings.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    statics: BTreeMap<String, String>,
    pattern: Option<FilenamePattern>,
    fragment_count: Option<u32>,
    /// Read sidecars beside directory files.
    pub sidecar: bool,
}

impl Metadata {
    /// Compiles the settings (the manifest is handled by [`Manifest`]).
    pub fn new(settings: &MetadataSettings) -> Result<Self, PatternError> {
        Ok(Metadata {
            statics: settings.attributes.clone(),
            pattern: settings
                .filename_pattern
                .as_deref()
                .map(FilenamePattern::new)
                .transpose()?,
            fragment_count: settings.fragment_count,
            sidecar: settings.sidecar,
        })
    }

    /// The first layers of a FlowFile's attributes: static ones, then the file name's.
    pub fn base(&self, filename: Option<&str>) -> HashMap<String, String> {
        let mut attrs: HashMap<String, String> = self.statics.clone().into_iter().collect();
        if let (Some(pattern), Some(name)) = (&self.pattern, filename) {
            attrs.extend(pattern.captures(name));
        }
        attrs
    }

    /// The attributes one JSON record (a sidecar, a manifest line) gives.
    pub fn record(&self, value: &Value) -> Result<Vec<(String, String)>, String> {
        let Value::Object(object) = value else {
            return Err(format!("expected a JSON object, found {}", kind(value)));
        };
        let mut out = Vec::new();
        if is_synth_coil(object) {
            synth_coil(object, self.fragment_count, &mut out);
        } else {
            flatten("", object, &mut out);
        }
        Ok(out)
    }

    /// The last step: derives `fragment.*` from `product.id` and `camera.angle` when
    /// `fragment_count` is set and no layer set them already.
    pub fn finish(&self, attrs: &mut HashMap<String, String>) {
        let Some(count) = self.fragment_count else {
            return;
        };
        if attrs.contains_key(FRAGMENT_IDENTIFIER) {
            return;
        }
        if let (Some(product), Some(angle)) = (attrs.get(PRODUCT_ID), attrs.get(CAMERA_ANGLE)) {
            let (product, angle) = (product.clone(), angle.clone());
            attrs.insert(FRAGMENT_IDENTIFIER.into(), product);
            attrs.insert(FRAGMENT_INDEX.into(), angle);
            attrs.insert(FRAGMENT_COUNT.into(), count.to_string());
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `loupe synth coils` manifest record (`nodes/synth/src/manifest.rs`, `CoilRecord`).
fn is_synth_coil(object: &Map<String, Value>) -> bool {
    ["product_id", "angle", "camera_verdict"]
        .iter()
        .all(|k| object.contains_key(*k))
}

fn synth_coil(
    object: &Map<String, Value>,
    fragment_count: Option<u32>,
    out: &mut Vec<(String, String)>,
) {
    const MAPPED: [(&str, &str); 9] = [
        ("product_id", PRODUCT_ID),
        ("angle", CAMERA_ANGLE),
        ("camera_verdict", CAMERA_VERDICT),
        ("camera_score", CAMERA_SCORE),
        ("label", TRUTH_LABEL),
        ("product_label", TRUTH_PRODUCT_LABEL),
        ("defects", TRUTH_DEFECTS),
        ("width", "image.width"),
        ("height", "image.height"),
    ];
    for (key, attr) in MAPPED {
        if let Some(text) = object.get(key).and_then(scalar_text) {
            out.push((attr.to_string(), text));
        }
    }
    if let (Some(product), Some(angle)) = (
        object.get("product_id").and_then(scalar_text),
        object.get("angle").and_then(scalar_text),
    ) {
        let count = fragment_count.unwrap_or(SYNTH_COIL_ANGLES);
        out.push((FRAGMENT_IDENTIFIER.into(), product));
        out.push((FRAGMENT_INDEX.into(), angle));
        out.push((FRAGMENT_COUNT.into(), count.to_string()));
    }
}

/// An attribute value: strings as they are, numbers and booleans as JSON writes them,
/// arrays and objects as compact JSON; `null` is no value.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Object keys become attributes; nested objects are flattened with `.`. The manifest key
/// `file` is not an attribute.
fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (key, value) in object {
        if prefix.is_empty() && key == "file" {
            continue;
        }
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, out),
            other => {
                if let Some(text) = scalar_text(other) {
                    out.push((name, text));
                }
            }
        }
    }
}

/// Parses a sidecar's bytes into attributes.
pub fn parse_sidecar(meta: &Metadata, bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    meta.record(&value)
}

/// `path` with `.` and `..` resolved lexically (no filesystem access, links not followed),
/// so manifest keys and scanned paths compare equal.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A JSONL manifest: attributes by the absolute (normalized) path of the image they describe.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Attributes per image.
    pub records: HashMap<PathBuf, Vec<(String, String)>>,
    /// One message per line that could not be used (line numbers from 1).
    pub problems: Vec<String>,
}

impl Manifest {
    /// Reads the manifest at `path` (absolute); `file` keys resolve against its directory.
    pub fn load(path: &Path, meta: &Metadata) -> io::Result<Manifest> {
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let reader = io::BufReader::new(std::fs::File::open(path)?);
        let mut manifest = Manifest::default();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let n = i + 1;
            let value: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    manifest
                        .problems
                        .push(format!("line {n}: not valid JSON: {e}"));
                    continue;
                }
            };
            let Some(file) = value.get("file").and_then(Value::as_str) else {
                manifest
                    .problems
                    .push(format!("line {n}: no `file` string naming the image"));
                continue;
            };
            match meta.record(&value) {
                Ok(attrs) => {
                    manifest.records.insert(normalize(&base.join(file)), attrs);
                }
                Err(e) => manifest.problems.push(format!("line {n}: {e}")),
            }
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_records_flatten() {
        let m = Metadata::default();
        let got: HashMap<_, _> = m
            .record(
                &json!({"file": "x.png", "product.id": "p1", "n": 3, "ok": true,
                "area": {"pit": 2}, "classes": ["a"], "none": null}),
            )
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got["product.id"], "p1");
        assert_eq!(got["n"], "3");
        assert_eq!(got["ok"], "true");
        assert_eq!(got["area.pit"], "2");
        assert_eq!(got["classes"], r#"["a"]"#);
        assert!(m.record(&json!([1])).unwrap_err().contains("an array"));
    }

    #[test]
    fn fragments_are_derived_only_when_asked() {
        let mut attrs: HashMap<String, String> = [
            (PRODUCT_ID.into(), "p1".into()),
            (CAMERA_ANGLE.into(), "2".into()),
        ]
        .into();
        Metadata::default().finish(&mut attrs);
        assert!(!attrs.contains_key(FRAGMENT_COUNT));
        let m = Metadata::new(&MetadataSettings {
            fragment_count: Some(4),
            ..Default::default()
        })
        .unwrap();
        m.finish(&mut attrs);
        assert_eq!(attrs[FRAGMENT_IDENTIFIER], "p1");
        assert_eq!(attrs[FRAGMENT_INDEX], "2");
        assert_eq!(attrs[FRAGMENT_COUNT], "4");
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
    }
}
