//! [`Invoker`]: the one place a FlowFile is handed to a [`Processor`].
//!
//! The gRPC server and the in-process flow runner both go through it, so a node behaves the
//! same wherever it is hosted: the size limit, panic catching, the conversion of failures
//! into `failure` outputs, and the per-FlowFile span all live here.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::error::{ErrorKind, ProcessError};
use crate::pb::{FlowFile, Output};
use crate::processor::Processor;
use crate::telemetry;

/// Calls a processor safely.
#[derive(Clone)]
pub struct Invoker {
    processor: Arc<dyn Processor>,
    node_id: Arc<str>,
    node_type: Arc<str>,
    max_message_bytes: usize,
}

impl Invoker {
    /// An invoker for `processor`, known as `node_id`, refusing content over `max_message_bytes`.
    pub fn new(processor: Arc<dyn Processor>, node_id: &str, max_message_bytes: usize) -> Self {
        let node_type = processor.describe().node_type;
        Invoker {
            processor,
            node_id: node_id.into(),
            node_type: node_type.into(),
            max_message_bytes,
        }
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
            return Ok(vec![failure_output(flow_file, &err, &span)]);
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
                Ok(outputs)
            }
            Ok(Err(err)) if err.is_retryable() => Err(err),
            Ok(Err(err)) => {
                tracing::debug!(parent: &span, error = %err, "processing failed");
                Ok(vec![failure_output(original, &err, &span)])
            }
            Err(panic) => {
                let message = panic_message(&panic);
                tracing::error!(parent: &span, node = %self.node_id, "processor panicked: {message}");
                let err = ProcessError::new(ErrorKind::Panic, format!("node panicked: {message}"));
                Ok(vec![failure_output(original, &err, &span)])
            }
        }
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
}
