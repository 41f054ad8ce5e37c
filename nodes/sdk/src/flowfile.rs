//! Helpers on [`FlowFile`] and the attribute names Loupe and NiFi agree on.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::pb::{FlowFile, Output, Relationship};

/// Well-known attribute names.
pub mod attr {
    /// Core NiFi attribute: file name.
    pub const FILENAME: &str = "filename";
    /// Core NiFi attribute: directory path, relative.
    pub const PATH: &str = "path";
    /// Core NiFi attribute: absolute directory path.
    pub const ABSOLUTE_PATH: &str = "absolute.path";
    /// Core NiFi attribute: MIME type of the content.
    pub const MIME_TYPE: &str = "mime.type";
    /// Core NiFi attribute read by the priority-attribute prioritizer.
    pub const PRIORITY: &str = "priority";
    /// Kind of a processing failure (on the `failure` relationship).
    pub const ERROR_KIND: &str = "error.kind";
    /// Human-readable reason of a processing failure.
    pub const ERROR_MESSAGE: &str = "error.message";
    /// Node id that produced a failure.
    pub const ERROR_NODE: &str = "error.node";
    /// W3C trace context, carried so a trace survives hops through other systems.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
}

/// Namespace of child uuids (random, fixed: changing it would change every child's uuid).
const CHILD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7c1e_93d5_2b60_4f8a_b4e7_0a9c_5d36_e218);

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl FlowFile {
    /// A new FlowFile entering the flow now, with a fresh uuid.
    pub fn create(content: impl Into<Bytes>, attributes: HashMap<String, String>) -> Self {
        let now = now_ms();
        FlowFile {
            uuid: uuid::Uuid::new_v4().to_string(),
            attributes,
            content: content.into(),
            entry_time_ms: now,
            lineage_start_ms: now,
        }
    }

    /// A child of this FlowFile (same lineage start, attributes copied), told apart from its
    /// siblings by `key` (`overlay`, `mask`, a route's name): its uuid derives from the
    /// parent's and the key, so when the parent is delivered again (a crash, a retry) its
    /// children are the same FlowFiles again and idempotent sinks record them once.
    pub fn child(&self, content: impl Into<Bytes>, key: &str) -> Self {
        let name = format!("{}\n{key}", self.uuid);
        FlowFile {
            uuid: uuid::Uuid::new_v5(&CHILD_NAMESPACE, name.as_bytes()).to_string(),
            attributes: self.attributes.clone(),
            content: content.into(),
            entry_time_ms: now_ms(),
            lineage_start_ms: self.lineage_start_ms,
        }
    }

    /// An attribute's value, if present.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Sets an attribute, builder style.
    pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Marks this FlowFile with a failure's `error.kind` and `error.message` (content
    /// untouched), as every `failure` output carries them.
    pub fn with_error(mut self, err: &crate::ProcessError) -> Self {
        self.attributes
            .insert(attr::ERROR_KIND.into(), err.kind.as_str().into());
        self.attributes
            .insert(attr::ERROR_MESSAGE.into(), err.message.clone());
        self
    }

    /// Routes this FlowFile to `relationship`.
    pub fn to(self, relationship: impl Into<String>) -> Output {
        Output {
            relationship: relationship.into(),
            flow_file: Some(self),
        }
    }

    /// Content size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }
}

impl Output {
    /// The routed FlowFile (always present in outputs Loupe produces).
    pub fn flow_file(&self) -> Option<&FlowFile> {
        self.flow_file.as_ref()
    }
}

impl Relationship {
    /// A relationship with a description.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Relationship {
            name: name.into(),
            description: description.into(),
        }
    }

    /// The standard `success` relationship.
    pub fn success() -> Self {
        Self::new(crate::SUCCESS, "Processed successfully")
    }

    /// The standard `failure` relationship.
    pub fn failure() -> Self {
        Self::new(
            crate::FAILURE,
            "Processing failed: `error.kind` and `error.message` say why; content untouched",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_uuid_derives_from_its_parent_and_key() {
        let parent = FlowFile::create(b"photo".to_vec(), HashMap::new());
        let overlay = parent.child(b"png".to_vec(), "overlay");
        assert_eq!(
            overlay.uuid,
            parent.child(b"other".to_vec(), "overlay").uuid
        );
        assert_ne!(overlay.uuid, parent.child(b"png".to_vec(), "mask").uuid);
        assert_ne!(overlay.uuid, parent.uuid);
        let other = FlowFile::create(b"photo".to_vec(), HashMap::new());
        assert_ne!(overlay.uuid, other.child(b"png".to_vec(), "overlay").uuid);
        assert_eq!(overlay.lineage_start_ms, parent.lineage_start_ms);
    }
}
