//! One inspection as the plant sees it, read from a FlowFile's attributes.
//!
//! The columns are the well-known attributes the other nodes write (`capture`'s metadata,
//! `classify.*`, `segment.*`, `route`, `error.*`, the W3C `traceparent`); every attribute is
//! kept as JSON too, so nothing a flow adds is lost.

use std::collections::BTreeMap;

use loupe_sdk::FlowFile;
use serde::Serialize;

/// One inspection record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// FlowFile uuid: the record's identity (a FlowFile delivered twice is one record).
    pub uuid: String,
    /// When the record was written, Unix epoch milliseconds.
    pub recorded_ms: i64,
    /// When the image entered the flow (lineage start), Unix epoch milliseconds.
    pub captured_ms: i64,
    /// Capture to record, milliseconds.
    pub latency_ms: i64,
    /// `product.id` (or `fragment.identifier`).
    pub product_id: Option<String>,
    /// `camera.angle` (or `fragment.index`).
    pub angle: Option<i32>,
    /// `fragment.count`: images per product.
    pub fragment_count: Option<i32>,
    /// `line`.
    pub line: Option<String>,
    /// `camera.id`.
    pub camera_id: Option<String>,
    /// `camera.verdict`: what the factory camera said.
    pub camera_verdict: Option<String>,
    /// `classify.model` or `segment.model`.
    pub model: Option<String>,
    /// `classify.label`, or `defect`/`ok` from `segment.defect`.
    pub model_label: Option<String>,
    /// `classify.score` or `segment.score`.
    pub model_score: Option<f64>,
    /// `segment.classes`.
    pub segment_classes: Option<String>,
    /// `segment.regions` (JSON text).
    pub segment_regions: Option<String>,
    /// `route`: where the route node sent it.
    pub route: Option<String>,
    /// `error.kind` when the FlowFile failed somewhere.
    pub error_kind: Option<String>,
    /// `error.message`.
    pub error_message: Option<String>,
    /// Trace id from `traceparent`.
    pub trace_id: Option<String>,
    /// `filename`.
    pub filename: Option<String>,
    /// Where the image is in the media store (relative to its directory), when kept.
    pub media_path: Option<String>,
    /// Every attribute, sorted by name.
    pub attributes: BTreeMap<String, String>,
}

impl Inspection {
    /// The record of `flow_file`, written at `now_ms`.
    pub fn from_flow_file(flow_file: &FlowFile, now_ms: i64) -> Inspection {
        let get = |key: &str| {
            flow_file
                .attr(key)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let either = |a: &str, b: &str| get(a).or_else(|| get(b));
        let int = |a: &str, b: &str| either(a, b).and_then(|v| v.parse::<i32>().ok());
        let model_label = get("classify.label").or_else(|| {
            get("segment.defect").map(|d| if d == "true" { "defect" } else { "ok" }.to_string())
        });
        Inspection {
            uuid: flow_file.uuid.clone(),
            recorded_ms: now_ms,
            captured_ms: flow_file.lineage_start_ms,
            latency_ms: (now_ms - flow_file.lineage_start_ms).max(0),
            product_id: either("product.id", "fragment.identifier"),
            angle: int("camera.angle", "fragment.index"),
            fragment_count: int("fragment.count", "fragment.count"),
            line: get("line"),
            camera_id: get("camera.id"),
            camera_verdict: get("camera.verdict"),
            model: either("classify.model", "segment.model"),
            model_label,
            model_score: either("classify.score", "segment.score").and_then(|v| v.parse().ok()),
            segment_classes: get("segment.classes"),
            segment_regions: get("segment.regions"),
            route: get("route"),
            error_kind: get(loupe_sdk::attr::ERROR_KIND),
            error_message: get(loupe_sdk::attr::ERROR_MESSAGE),
            trace_id: get(loupe_sdk::attr::TRACEPARENT)
                .and_then(|t| t.split('-').nth(1).map(str::to_string)),
            filename: get(loupe_sdk::attr::FILENAME),
            media_path: None,
            attributes: flow_file
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The attributes as JSON text.
    pub fn attributes_json(&self) -> String {
        serde_json::to_string(&self.attributes).unwrap_or_else(|_| "{}".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn well_known_attributes_become_columns() {
        let attrs: HashMap<String, String> = [
            ("product.id", "p00042"),
            ("camera.angle", "3"),
            ("fragment.count", "8"),
            ("line", "L1"),
            ("camera.verdict", "loose_wire"),
            ("classify.label", "burr"),
            ("classify.score", "0.9731"),
            ("classify.model", "coil-classifier@1.0.0"),
            ("route", "cleared"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("filename", "p00042_a3.png"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut ff = FlowFile::create(b"x".to_vec(), attrs);
        ff.lineage_start_ms = 1_000;
        let r = Inspection::from_flow_file(&ff, 1_250);
        assert_eq!(r.product_id.as_deref(), Some("p00042"));
        assert_eq!((r.angle, r.fragment_count), (Some(3), Some(8)));
        assert_eq!(r.model_label.as_deref(), Some("burr"));
        assert_eq!(r.model_score, Some(0.9731));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!((r.captured_ms, r.latency_ms), (1_000, 250));
        assert_eq!(r.attributes.len(), 11);
        assert!(r.attributes_json().contains("\"route\":\"cleared\""));

        let seg: HashMap<String, String> = [("segment.defect", "true"), ("segment.score", "0.8")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = Inspection::from_flow_file(&FlowFile::create(Vec::new(), seg), 0);
        assert_eq!(r.model_label.as_deref(), Some("defect"));
        assert_eq!(r.product_id, None);
    }
}
