//! What a defective-product notification says, and the JSON it is sent as.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The most bytes a notice's JSON may have; a bigger one is rejected
/// ([`NoticeError::TooLarge`]). Keeps the queues' memory bounded (at most `queue` notices of
/// this size) and every notice within one MQTT packet.
pub const MAX_NOTICE_BYTES: usize = 64 * 1024;

/// A product confirmed defective: what the engineers are told.
///
/// Sent as one flat JSON object, these fields plus `id` (unique per notice, the same on every
/// retry) and `suppressed` (notices with the same line and defect kind held back by the
/// cooldown since the previous one that went out):
///
/// ```json
/// {"id":"18c2f9a4b1e0-7","product_id":"P-1042","line":"line-3","verdict":"defective",
///  "defects":["scratch"],"angles":4,"camera_verdicts":4,"time":"2025-01-31T08:15:02.120Z",
///  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","details":{"score":0.97},"suppressed":0}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The product's identifier (must not be empty).
    pub product_id: String,
    /// The production line (must not be empty); part of the cooldown key.
    pub line: String,
    /// The verdict, e.g. `defective`.
    pub verdict: String,
    /// Defect classes or labels found; as a set, the other part of the cooldown key.
    #[serde(default)]
    pub defects: Vec<String>,
    /// Number of angles (views) the product was inspected from.
    #[serde(default)]
    pub angles: u32,
    /// Number of camera verdicts that went into the decision.
    #[serde(default)]
    pub camera_verdicts: u32,
    /// When the product was judged (RFC 3339, UTC, milliseconds).
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// W3C trace id of the inspection, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Anything else worth telling (scores, image links, camera ids); plain JSON.
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
}

impl Notice {
    /// A notice for `product_id` on `line` with `verdict`, timed now; the other fields are
    /// empty.
    pub fn new(
        product_id: impl Into<String>,
        line: impl Into<String>,
        verdict: impl Into<String>,
    ) -> Self {
        Notice {
            product_id: product_id.into(),
            line: line.into(),
            verdict: verdict.into(),
            defects: Vec::new(),
            angles: 0,
            camera_verdicts: 0,
            time: SystemTime::now(),
            trace_id: None,
            details: BTreeMap::new(),
        }
    }

    /// The defect kind: the sorted, de-duplicated `defects`, comma-separated.
    pub fn kind(&self) -> String {
        let mut defects: Vec<&str> = self.defects.iter().map(String::as_str).collect();
        defects.sort_unstable();
        defects.dedup();
        defects.join(",")
    }

    /// Checks what a notice must have.
    pub fn check(&self) -> Result<(), NoticeError> {
        if self.product_id.trim().is_empty() {
            return Err(NoticeError::Empty("product_id"));
        }
        if self.line.trim().is_empty() {
            return Err(NoticeError::Empty("line"));
        }
        Ok(())
    }
}

/// Why a notice was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// A required field is empty.
    #[error("notice has an empty `{0}`")]
    Empty(&'static str),
    /// Its JSON is over [`MAX_NOTICE_BYTES`].
    #[error("notice is {bytes} bytes of JSON; the most is {max} (trim `details`)")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// It could not be encoded as JSON.
    #[error("cannot encode the notice as JSON: {0}")]
    Encode(String),
}

/// The JSON actually sent.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) id: &'a str,
    #[serde(flatten)]
    pub(crate) notice: &'a Notice,
    pub(crate) suppressed: u64,
}

/// Serde helpers for a `SystemTime` as RFC 3339 text.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(text.trim()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_and_round_trips() {
        let mut n = Notice::new("P-1", "line-3", "defective");
        n.defects = vec!["scratch".into(), "dent".into(), "scratch".into()];
        n.details.insert("score".into(), serde_json::json!(0.97));
        assert_eq!(n.kind(), "dent,scratch");
        let json = serde_json::to_value(Message {
            id: "x-1",
            notice: &n,
            suppressed: 3,
        })
        .unwrap();
        assert_eq!(json["id"], "x-1");
        assert_eq!(json["line"], "line-3");
        assert_eq!(json["suppressed"], 3);
        assert_eq!(json["details"]["score"], 0.97);
        assert!(json.get("trace_id").is_none());
        humantime::parse_rfc3339(json["time"].as_str().unwrap()).unwrap();
        let back: Notice = serde_json::from_value(json).unwrap();
        assert_eq!(back.defects, n.defects);
        assert_eq!(back.kind(), n.kind());
    }

    #[test]
    fn empty_fields_are_errors() {
        assert_eq!(
            Notice::new("", "l", "defective").check(),
            Err(NoticeError::Empty("product_id"))
        );
        assert_eq!(
            Notice::new("p", " ", "defective").check(),
            Err(NoticeError::Empty("line"))
        );
    }
}
