//! [`Invoker`]: the one place a FlowFile is handed to a [`Processor`].
//!
//! The gRPC server and the in-process flow runner both go through it, so a node behaves the
//! same wherever it is hosted: the size limit, the [attribute limits](AttributeLimits), panic
//! catching, the conversion of failures into `failure` outputs, and the per-FlowFile span all
//! live here.
//!
//! A FlowFile whose attributes are over the limits goes to `failure` (`error.kind=too_large`,
//! the message naming the attribute) without reaching the processor; a node whose outputs are
//! over them fails the same way, with its input. A `failure` output is itself kept within the
//! limits: values over the value limit are cut to it and, if that is not enough, the largest
//! attributes are left off, and `error.message` says which (the content is never touched).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::error::{ErrorKind, ProcessError};
use crate::pb::{FlowFile, Output};
use crate::processor::Processor;
use crate::telemetry;

/// Limits on a FlowFile's attributes, enforced by the [`Invoker`] on every FlowFile given to a
/// node and on every FlowFile it returns.
///
/// Defaults ([`AttributeLimits::default`]): 256 attributes, 64 KiB per value, 1 MiB for all
/// names and values together. A Loupe FlowFile carries a few dozen short attributes (the
/// longest, `segment.regions`, a few KiB); the limits leave ample room while keeping what is
/// copied at every clone, queue, provenance event and stored record small.
///
/// Configured as `attributes:` in a served node's configuration and with `loupe run`'s
/// `--max-attributes`, `--max-attribute-bytes` and `--max-attributes-total-bytes`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeLimits {
    /// Most attributes on one FlowFile (default 256).
    pub max_count: usize,
    /// Longest attribute value, in bytes of UTF-8 (default 64 KiB).
    pub max_value_bytes: usize,
    /// Most bytes of all attribute names and values together (default 1 MiB).
    pub max_total_bytes: usize,
}

impl AttributeLimits {
    /// Default most attributes: 256.
    pub const DEFAULT_MAX_COUNT: usize = 256;
    /// Default longest value: 64 KiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;
    /// Default most bytes of names and values together: 1 MiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: usize = 1024 * 1024;

    /// No limit at all (every field `usize::MAX`).
    pub const UNLIMITED: AttributeLimits = AttributeLimits {
        max_count: usize::MAX,
        max_value_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
    };

    /// Checks `attributes`: a value over the value limit first (the longest, naming it), then
    /// the count, then the total.
    pub fn check(&self, attributes: &HashMap<String, String>) -> Result<(), AttributeLimitError> {
        let longest = attributes
            .iter()
            .filter(|(_, value)| value.len() > self.max_value_bytes)
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)));
        if let Some((name, value)) = longest {
            return Err(AttributeLimitError::ValueTooLong {
                name: shown_name(name),
                size: value.len(),
                limit: self.max_value_bytes,
            });
        }
        if attributes.len() > self.max_count {
            return Err(AttributeLimitError::TooMany {
                count: attributes.len(),
                limit: self.max_count,
            });
        }
        let total = total_bytes(attributes);
        if total > self.max_total_bytes {
            let (name, size) = attributes
                .iter()
                .map(|(k, v)| (k.as_str(), k.len() + v.len()))
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                .unwrap_or(("", 0));
            return Err(AttributeLimitError::TotalTooLarge {
                size: total,
                limit: self.max_total_bytes,
                largest: shown_name(name),
                largest_size: size,
            });
        }
        Ok(())
    }

    /// Makes `attributes` fit these limits less the room a failure's own attributes need
    /// (`error.kind`, `error.message`, trace context): cuts values over the value limit to it,
    /// then leaves off the largest attributes until the count and the total fit. Returns what
    /// was changed, in words, or `None` when nothing had to be.
    fn fit_for_failure(&self, attributes: &mut HashMap<String, String>) -> Option<String> {
        let max_count = self.max_count.saturating_sub(FAILURE_RESERVE_COUNT);
        // Never more than half the total, so that small limits keep something.
        let reserve = FAILURE_RESERVE_BYTES.min(self.max_total_bytes / 2);
        let max_total = self.max_total_bytes.saturating_sub(reserve);
        let mut cut = Vec::new();
        for (name, value) in attributes.iter_mut() {
            if value.len() > self.max_value_bytes {
                truncate_on_char_boundary(value, self.max_value_bytes);
                cut.push(shown_name(name));
            }
        }
        let mut removed = Vec::new();
        let mut total = total_bytes(attributes);
        if attributes.len() > max_count || total > max_total {
            let mut by_size: Vec<(usize, String)> = attributes
                .iter()
                .map(|(k, v)| (k.len() + v.len(), k.clone()))
                .collect();
            // Largest first; ties by name, so the result does not depend on hash order.
            by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            for (size, name) in by_size {
                if attributes.len() <= max_count && total <= max_total {
                    break;
                }
                attributes.remove(&name);
                total -= size;
                removed.push(shown_name(&name));
            }
        }
        if cut.is_empty() && removed.is_empty() {
            return None;
        }
        cut.sort();
        let mut note = String::from("to keep this failure output within the attribute limits");
        if !cut.is_empty() {
            note.push_str(&format!(
                ", {} value(s) were cut to {} bytes ({})",
                cut.len(),
                self.max_value_bytes,
                listed(&cut)
            ));
        }
        if !removed.is_empty() {
            note.push_str(&format!(
                ", {} attribute(s) were left off ({})",
                removed.len(),
                listed(&removed)
            ));
        }
        Some(note)
    }
}

impl Default for AttributeLimits {
    fn default() -> Self {
        AttributeLimits {
            max_count: Self::DEFAULT_MAX_COUNT,
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// A FlowFile's attributes are over an [`AttributeLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeLimitError {
    /// One value is longer than [`AttributeLimits::max_value_bytes`].
    #[error("attribute `{name}` has a value of {size} bytes, over the limit of {limit} bytes")]
    ValueTooLong {
        /// The attribute's name (a very long name is shortened, with `...`).
        name: String,
        /// Its value's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More attributes than [`AttributeLimits::max_count`].
    #[error("{count} attributes, over the limit of {limit}")]
    TooMany {
        /// How many there are.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Names and values together are larger than [`AttributeLimits::max_total_bytes`].
    #[error(
        "attributes of {size} bytes in all (names and values), over the limit of {limit} bytes; \
         the largest is `{largest}` ({largest_size} bytes)"
    )]
    TotalTooLarge {
        /// Names and values together, in bytes.
        size: usize,
        /// The limit.
        limit: usize,
        /// The largest attribute's name (shortened like [`Self::ValueTooLong`]'s).
        largest: String,
        /// Its name and value together, in bytes.
        largest_size: usize,
    },
}

/// Attributes a failure output may add to what it was given: `error.kind`, `error.message`,
/// `traceparent`, `tracestate`.
const FAILURE_RESERVE_COUNT: usize = 4;
/// Longest `error.message` the invoker writes, in bytes; a longer message is cut.
const MAX_ERROR_MESSAGE_BYTES: usize = 8 * 1024;
/// Bytes a failure output may add: the message, its kind and the trace context.
const FAILURE_RESERVE_BYTES: usize = MAX_ERROR_MESSAGE_BYTES + 1024;
/// Longest attribute name quoted in a message.
const MAX_SHOWN_NAME: usize = 100;

fn total_bytes(attributes: &HashMap<String, String>) -> usize {
    attributes
        .iter()
        .fold(0usize, |sum, (k, v)| sum.saturating_add(k.len() + v.len()))
}

/// `name` for a message: as it is, or its start and `...` when very long.
fn shown_name(name: &str) -> String {
    if name.len() <= MAX_SHOWN_NAME {
        name.to_string()
    } else {
        let mut shown = name.to_string();
        truncate_on_char_boundary(&mut shown, MAX_SHOWN_NAME);
        shown.push_str("...");
        shown
    }
}

/// At most five names, quoted, then how many more.
fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(5)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate_on_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
    }
}

/// Calls a processor safely.
#[derive(Clone)]
pub struct Invoker {
    processor: Arc<dyn Processor>,
    node_id: Arc<str>,
    node_type: Arc<str>,
    max_message_bytes: usize,
    attribute_limits: AttributeLimits,
}

impl Invoker {
    /// An invoker for `processor`, known as `node_id`, refusing content over
    /// `max_message_bytes` and attributes over the default [`AttributeLimits`].
    pub fn new(processor: Arc<dyn Processor>, node_id: &str, max_message_bytes: usize) -> Self {
        let node_type = processor.describe().node_type;
        Invoker {
            processor,
            node_id: node_id.into(),
            node_type: node_type.into(),
            max_message_bytes,
            attribute_limits: AttributeLimits::default(),
        }
    }

    /// The same invoker with other attribute limits.
    pub fn with_attribute_limits(mut self, limits: AttributeLimits) -> Self {
        self.attribute_limits = limits;
        self
    }

    /// The attribute limits in effect.
    pub fn attribute_limits(&self) -> &AttributeLimits {
        &self.attribute_limits
    }

    /// The wrapped processor.
    pub fn processor(&self) -> &Arc<dyn Processor> {
        &self.processor
    }

    /// The largest content accepted.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Processes one FlowFile.
    ///
    /// Returns the outputs, with any non-retryable failure (including a panic) turned into a
    /// `failure` output carrying `error.kind`/`error.message` and the original content.
    /// `Err` is returned only for retryable errors (overload, unavailable), which the caller
    /// retries later with the same FlowFile.
    pub async fn invoke(
        &self,
        flow_file: FlowFile,
        parent: Option<opentelemetry::Context>,
    ) -> Result<Vec<Output>, ProcessError> {
        let span = tracing::info_span!(
            "process",
            otel.name = %format!("{} process", self.node_type),
            node.id = %self.node_id,
            node.r#type = %self.node_type,
            flowfile.uuid = %flow_file.uuid,
        );
        if let Some(cx) = parent.or_else(|| telemetry::extract_attributes(&flow_file.attributes)) {
            telemetry::set_parent(&span, cx);
        }
        let size = flow_file.content.len();
        if size > self.max_message_bytes {
            let err = ProcessError::new(
                ErrorKind::TooLarge,
                format!(
                    "FlowFile content of {size} bytes exceeds the node's limit of {} bytes",
                    self.max_message_bytes
                ),
            );
            return Ok(vec![self.failure(flow_file, &err, &span)]);
        }
        if let Err(e) = self.attribute_limits.check(&flow_file.attributes) {
            let err = ProcessError::new(
                ErrorKind::TooLarge,
                format!("FlowFile refused: {e} (the node's attribute limits)"),
            );
            return Ok(vec![self.failure(flow_file, &err, &span)]);
        }
        // Keep what is needed to route the original to `failure` if processing fails; the
        // content is reference-counted, so this copies only the attribute map.
        let original = flow_file.clone();
        let fut = {
            let _enter = span.enter();
            AssertUnwindSafe(self.processor.process(flow_file)).catch_unwind()
        };
        let result = tracing::Instrument::instrument(fut, span.clone()).await;
        match result {
            Ok(Ok(mut outputs)) => {
                for out in &mut outputs {
                    if let Some(ff) = out.flow_file.as_mut() {
                        telemetry::inject_span_into_attributes(&span, &mut ff.attributes);
                    }
                }
                if let Some(err) = self.check_outputs(&outputs) {
                    tracing::warn!(parent: &span, node = %self.node_id, error = %err,
                        "output over the attribute limits");
                    return Ok(vec![self.failure(original, &err, &span)]);
                }
                Ok(outputs)
            }
            Ok(Err(err)) if err.is_retryable() => Err(err),
            Ok(Err(err)) => {
                tracing::debug!(parent: &span, error = %err, "processing failed");
                Ok(vec![self.failure(original, &err, &span)])
            }
            Err(panic) => {
                let message = panic_message(&panic);
                tracing::error!(parent: &span, node = %self.node_id, "processor panicked: {message}");
                let err = ProcessError::new(ErrorKind::Panic, format!("node panicked: {message}"));
                Ok(vec![self.failure(original, &err, &span)])
            }
        }
    }

    /// The first output over the attribute limits, as the error its input fails with.
    fn check_outputs(&self, outputs: &[Output]) -> Option<ProcessError> {
        outputs.iter().find_map(|out| {
            let ff = out.flow_file.as_ref()?;
            self.attribute_limits.check(&ff.attributes).err().map(|e| {
                ProcessError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "the node's output to `{}` is over the attribute limits: {e}",
                        out.relationship
                    ),
                )
            })
        })
    }

    /// [`failure_output`], kept within the attribute limits (see the [module
    /// documentation](self)).
    fn failure(&self, mut flow_file: FlowFile, err: &ProcessError, span: &tracing::Span) -> Output {
        let note = self
            .attribute_limits
            .fit_for_failure(&mut flow_file.attributes);
        let max_message = MAX_ERROR_MESSAGE_BYTES.min(self.attribute_limits.max_value_bytes);
        let mut err = err.clone();
        // A long message is cut, keeping the note on what was left off.
        let room = max_message.saturating_sub(note.as_ref().map_or(0, |n| n.len() + 2));
        if err.message.len() > room {
            truncate_on_char_boundary(&mut err.message, room.saturating_sub(3));
            err.message.push_str("...");
        }
        if let Some(note) = note {
            err.message = format!("{}; {note}", err.message);
        }
        truncate_on_char_boundary(&mut err.message, max_message);
        failure_output(flow_file, &err, span)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Routes `flow_file` to `failure` with the error's kind and message; content untouched.
pub fn failure_output(flow_file: FlowFile, err: &ProcessError, span: &tracing::Span) -> Output {
    let mut flow_file = flow_file.with_error(err);
    telemetry::inject_span_into_attributes(span, &mut flow_file.attributes);
    flow_file.to(crate::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flowfile::attr;
    use crate::pb::NodeDescription;
    use async_trait::async_trait;

    struct Flaky;

    #[async_trait]
    impl Processor for Flaky {
        fn describe(&self) -> NodeDescription {
            NodeDescription {
                node_type: "flaky".into(),
                ..Default::default()
            }
        }
        async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
            match ff.attr("mode") {
                Some("panic") => panic!("boom"),
                Some("fail") => Err(ProcessError::invalid_input("bad input")),
                Some("busy") => Err(ProcessError::new(ErrorKind::Overloaded, "busy")),
                _ => Ok(vec![ff.with_attr("seen", "yes").to(crate::SUCCESS)]),
            }
        }
    }

    fn ff(mode: &str, size: usize) -> FlowFile {
        FlowFile::create(vec![7u8; size], Default::default()).with_attr("mode", mode)
    }

    #[tokio::test]
    async fn failures_panics_and_oversize_become_failure_outputs() {
        let inv = Invoker::new(Arc::new(Flaky), "n1", 100);
        let out = inv.invoke(ff("ok", 10), None).await.unwrap();
        assert_eq!(out[0].relationship, "success");
        assert_eq!(out[0].flow_file().unwrap().attr("seen"), Some("yes"));

        for (mode, size, kind) in [
            ("fail", 10, "invalid_input"),
            ("panic", 10, "panic"),
            ("ok", 101, "too_large"),
        ] {
            let input = ff(mode, size);
            let out = inv.invoke(input.clone(), None).await.unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].relationship, "failure");
            let got = out[0].flow_file().unwrap();
            assert_eq!(got.attr(attr::ERROR_KIND), Some(kind));
            assert!(!got.attr(attr::ERROR_MESSAGE).unwrap().is_empty());
            assert_eq!(got.content, input.content, "content untouched");
            assert_eq!(got.uuid, input.uuid);
        }
        // The invoker keeps serving after a panic.
        assert!(inv.invoke(ff("ok", 1), None).await.is_ok());
        // Retryable errors are not failures: the caller retries.
        assert!(inv.invoke(ff("busy", 1), None).await.is_err());
    }

    /// Echoes its input to `success`, adding the attributes its `add` attribute asks for:
    /// `N:S` adds N attributes `extra.i` of S bytes each.
    struct Adder;

    #[async_trait]
    impl Processor for Adder {
        fn describe(&self) -> NodeDescription {
            NodeDescription {
                node_type: "adder".into(),
                ..Default::default()
            }
        }
        async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
            let (n, size) = ff
                .attr("add")
                .and_then(|a| a.split_once(':'))
                .map(|(n, s)| (n.parse().unwrap(), s.parse().unwrap()))
                .unwrap_or((0usize, 0usize));
            let mut ff = ff.with_attr("seen", "yes");
            for i in 0..n {
                ff = ff.with_attr(format!("extra.{i}"), "x".repeat(size));
            }
            Ok(vec![ff.to(crate::SUCCESS)])
        }
    }

    fn with_attrs(pairs: &[(&str, String)]) -> FlowFile {
        FlowFile::create(
            b"image".to_vec(),
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn refused(out: &[Output]) -> &FlowFile {
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].relationship, "failure");
        let got = out[0].flow_file().unwrap();
        assert_eq!(got.attr(attr::ERROR_KIND), Some("too_large"));
        assert_eq!(&got.content[..], b"image", "content untouched");
        got
    }

    #[test]
    fn default_limits_are_documented_ones() {
        let d = AttributeLimits::default();
        assert_eq!(
            (d.max_count, d.max_value_bytes, d.max_total_bytes),
            (256, 64 * 1024, 1024 * 1024)
        );
        let inv = Invoker::new(Arc::new(Adder), "n", 100);
        assert_eq!(inv.attribute_limits(), &d);
        let inv = inv.with_attribute_limits(AttributeLimits::UNLIMITED);
        assert_eq!(inv.attribute_limits(), &AttributeLimits::UNLIMITED);
    }

    #[tokio::test]
    async fn a_value_over_the_limit_is_refused_naming_the_attribute() {
        let inv = Invoker::new(Arc::new(Adder), "n1", 1 << 20);
        // 50 MB, as measured before the limit existed.
        let big = "v".repeat(50 * 1024 * 1024);
        let input = with_attrs(&[("camera.notes", big), ("filename", "a.png".into())]);
        let out = inv.invoke(input.clone(), None).await.unwrap();
        let got = refused(&out);
        let message = got.attr(attr::ERROR_MESSAGE).unwrap();
        assert!(
            message.contains(
                "attribute `camera.notes` has a value of 52428800 bytes, over the \
                 limit of 65536 bytes"
            ),
            "{message}"
        );
        assert!(
            message.contains("cut to 65536 bytes (`camera.notes`)"),
            "{message}"
        );
        assert_eq!(got.attr("seen"), None, "the processor never saw it");
        // The failure output itself fits the limits: the next node accepts it.
        assert_eq!(got.attr("camera.notes").unwrap().len(), 64 * 1024);
        assert_eq!(got.attr("filename"), Some("a.png"));
        assert_eq!(got.uuid, input.uuid);
        assert_eq!(AttributeLimits::default().check(&got.attributes), Ok(()));
        // At the limit is fine.
        let input = with_attrs(&[("camera.notes", "v".repeat(64 * 1024))]);
        let out = inv.invoke(input, None).await.unwrap();
        assert_eq!(out[0].relationship, "success");
    }

    #[tokio::test]
    async fn count_and_total_limits() {
        let limits = AttributeLimits {
            max_count: 10,
            max_value_bytes: 20_000,
            max_total_bytes: 50_000,
        };
        let inv = Invoker::new(Arc::new(Adder), "n1", 1 << 20).with_attribute_limits(limits);
        let many: Vec<(String, String)> =
            (0..11).map(|i| (format!("a{i:02}"), "1".into())).collect();
        let many: Vec<(&str, String)> = many.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let out = inv.invoke(with_attrs(&many), None).await.unwrap();
        let message = refused(&out).attr(attr::ERROR_MESSAGE).unwrap().to_string();
        assert!(
            message.contains("11 attributes, over the limit of 10"),
            "{message}"
        );
        let wide: Vec<(String, String)> = (0..4)
            .map(|i| (format!("w{i}"), "x".repeat(15_000 + i)))
            .collect();
        let wide: Vec<(&str, String)> = wide.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let out = inv.invoke(with_attrs(&wide), None).await.unwrap();
        let got = refused(&out);
        let message = got.attr(attr::ERROR_MESSAGE).unwrap().to_string();
        assert!(
            message.contains(
                "attributes of 60014 bytes in all (names and values), over the \
                 limit of 50000 bytes; the largest is `w3` (15005 bytes)"
            ),
            "{message}"
        );
        // The failure output leaves off the largest until it fits with room for the error.
        assert!(
            message.contains("2 attribute(s) were left off (`w3`, `w2`)"),
            "{message}"
        );
        assert_eq!(limits.check(&got.attributes), Ok(()));
        // Within limits: through.
        let out = inv.invoke(with_attrs(&wide[..2]), None).await.unwrap();
        assert_eq!(out[0].relationship, "success");
    }

    #[tokio::test]
    async fn outputs_over_the_limits_fail_with_their_input() {
        let inv = Invoker::new(Arc::new(Adder), "n1", 1 << 20);
        // One value over the limit.
        let input = with_attrs(&[("add", "1:70000".into())]);
        let out = inv.invoke(input.clone(), None).await.unwrap();
        let got = refused(&out);
        let message = got.attr(attr::ERROR_MESSAGE).unwrap();
        assert!(
            message.contains(
                "the node's output to `success` is over the attribute limits: \
                 attribute `extra.0` has a value of 70000 bytes"
            ),
            "{message}"
        );
        assert_eq!(
            got.attr("extra.0"),
            None,
            "the input, not the output, fails"
        );
        assert_eq!(got.attr("add"), Some("1:70000"));
        // Too many.
        let out = inv
            .invoke(with_attrs(&[("add", "300:1".into())]), None)
            .await
            .unwrap();
        let message = refused(&out).attr(attr::ERROR_MESSAGE).unwrap().to_string();
        assert!(
            message.contains("attributes, over the limit of 256"),
            "{message}"
        );
        // Too large in all: 20 x 60 KiB.
        let out = inv
            .invoke(with_attrs(&[("add", "20:61440".into())]), None)
            .await
            .unwrap();
        let message = refused(&out).attr(attr::ERROR_MESSAGE).unwrap().to_string();
        assert!(
            message.contains("over the limit of 1048576 bytes"),
            "{message}"
        );
        // Just within.
        let out = inv
            .invoke(with_attrs(&[("add", "200:10".into())]), None)
            .await
            .unwrap();
        assert_eq!(out[0].relationship, "success");
    }

    #[tokio::test]
    async fn a_failure_output_is_kept_within_the_limits() {
        let limits = AttributeLimits {
            max_count: 8,
            max_value_bytes: 64 * 1024,
            max_total_bytes: 1024 * 1024,
        };
        let inv = Invoker::new(Arc::new(Adder), "n1", 1 << 20).with_attribute_limits(limits);
        // 9 attributes: refused; the failure output keeps the 4 smallest (8 less the 4 a
        // failure adds), dropping the largest, and says so.
        let pairs: Vec<(String, String)> = (0..9)
            .map(|i| (format!("k{i}"), "v".repeat(i + 1)))
            .collect();
        let pairs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let out = inv.invoke(with_attrs(&pairs), None).await.unwrap();
        let got = refused(&out);
        let message = got.attr(attr::ERROR_MESSAGE).unwrap();
        assert!(
            message.contains("5 attribute(s) were left off (`k8`, `k7`, `k6`, `k5`, `k4`)"),
            "{message}"
        );
        for i in 0..4 {
            assert!(got.attr(&format!("k{i}")).is_some());
        }
        assert!(got.attributes.len() <= 8, "{:?}", got.attributes.keys());
        assert_eq!(limits.check(&got.attributes), Ok(()));
        // A very long attribute name is shortened in the message.
        let long_name = "n".repeat(70_000);
        let out = inv
            .invoke(
                with_attrs(&[(long_name.as_str(), "v".repeat(70_000))]),
                None,
            )
            .await
            .unwrap();
        let message = refused(&out).attr(attr::ERROR_MESSAGE).unwrap();
        assert!(message.len() < 2048, "{}", message.len());
        assert!(
            message.contains(&format!("`{}...`", "n".repeat(100))),
            "{message}"
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let mut text = "aé".repeat(10);
        truncate_on_char_boundary(&mut text, 4);
        assert_eq!(text, "aéa");
        let mut map = HashMap::from([("k".to_string(), "é".repeat(10))]);
        let limits = AttributeLimits {
            max_value_bytes: 5,
            ..AttributeLimits::default()
        };
        assert!(limits.fit_for_failure(&mut map).is_some());
        assert_eq!(map["k"], "éé");
    }
}
