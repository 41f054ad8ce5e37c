//! The built `preprocess` node: runs the [`Pipeline`] on a blocking thread per FlowFile.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use loupe_sdk::{ErrorKind, FlowFile, NodeDescription, Output, ProcessError, Processor, attr};

use crate::pipeline::Pipeline;

/// The `preprocess` processor.
pub struct PreprocessProcessor {
    pipeline: Arc<Pipeline>,
    description: NodeDescription,
}

impl PreprocessProcessor {
    /// A processor running `pipeline`, describing itself with `description`.
    pub fn new(pipeline: Pipeline, description: NodeDescription) -> Self {
        PreprocessProcessor {
            pipeline: Arc::new(pipeline),
            description,
        }
    }
}

#[async_trait]
impl Processor for PreprocessProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    async fn process(&self, mut flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let pipeline = self.pipeline.clone();
        // `Bytes` clones share the buffer; the content is not copied.
        let content = flow_file.content.clone();
        // Decoding, resizing and encoding are CPU-bound: keep them off the async workers.
        let processed = match tokio::task::spawn_blocking(move || pipeline.run(&content)).await {
            Ok(result) => result?,
            // Re-raise a panic so the SDK reports it as one (`error.kind = panic`).
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(ProcessError::new(
                    ErrorKind::Unavailable,
                    format!("preprocess: interrupted: {e}"),
                ));
            }
        };

        flow_file.content = Bytes::from(processed.content);
        let attributes = &mut flow_file.attributes;
        for (key, value) in [
            (crate::attr::WIDTH, processed.width.to_string()),
            (crate::attr::HEIGHT, processed.height.to_string()),
            (attr::MIME_TYPE, processed.mime_type.to_string()),
            (
                crate::attr::ORIGINAL_WIDTH,
                processed.original_width.to_string(),
            ),
            (
                crate::attr::ORIGINAL_HEIGHT,
                processed.original_height.to_string(),
            ),
            (
                crate::attr::ORIGINAL_FORMAT,
                processed.original_format.as_str().to_string(),
            ),
            (
                crate::attr::ORIGINAL_ORIENTATION,
                processed.orientation.to_exif().to_string(),
            ),
        ] {
            attributes.insert(key.to_string(), value);
        }
        if let Some(frame) = &processed.frame {
            // A re-check of a frame must not keep the reason of an earlier check.
            attributes.remove("frame.reason");
            for (key, value) in frame.attributes() {
                attributes.insert(key.to_string(), value);
            }
        }
        Ok(vec![flow_file.to(loupe_sdk::SUCCESS)])
    }
}
