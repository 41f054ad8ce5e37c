//! The `loupe.v1.Processor` and `loupe.v1.Source` gRPC services of a served node.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::NodeState;
use crate::pb;
use crate::processor::Source;
use crate::telemetry;

pub(super) struct ProcessorService(pub(super) Arc<NodeState>);

#[tonic::async_trait]
impl pb::processor_server::Processor for ProcessorService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::NodeDescription>, Status> {
        Ok(Response::new(self.0.describe()))
    }

    async fn process(
        &self,
        request: Request<pb::ProcessRequest>,
    ) -> Result<Response<pb::ProcessResponse>, Status> {
        let parent = telemetry::extract_metadata(request.metadata());
        let request = request.into_inner();
        let flow_file = request
            .flow_file
            .ok_or_else(|| Status::invalid_argument("ProcessRequest.flow_file is missing"))?;
        let mut outputs = self
            .0
            .process(flow_file, parent)
            .await
            .map_err(|e| e.to_status())?;
        if request.attributes_only {
            strip_content(&mut outputs);
        }
        Ok(Response::new(pb::ProcessResponse { outputs }))
    }

    type ProcessStreamStream = ReceiverStream<Result<pb::ProcessStreamResponse, Status>>;

    async fn process_stream(
        &self,
        request: Request<Streaming<pb::ProcessStreamRequest>>,
    ) -> Result<Response<Self::ProcessStreamStream>, Status> {
        self.0.check_ready()?;
        let parent = telemetry::extract_metadata(request.metadata());
        let mut inbound = request.into_inner();
        // Bounded: at most this many answers wait for the client to read them.
        let (tx, rx) = mpsc::channel(32);
        let state = self.0.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok(Some(msg)) = inbound.message().await {
                let (seq, attributes_only) = (msg.seq, msg.attributes_only);
                let Some(flow_file) = msg.flow_file else {
                    let _ = tx
                        .send(Err(Status::invalid_argument("flow_file is missing")))
                        .await;
                    break;
                };
                if let Err(status) = state.check_ready() {
                    let reply = retry_reply(seq, status.message());
                    if tx.send(Ok(reply)).await.is_err() {
                        break;
                    }
                    continue;
                }
                // Waiting here (instead of answering RESOURCE_EXHAUSTED) stops reading the
                // stream, so HTTP/2 flow control slows the sender: back pressure, not errors.
                let Some(permit) = state.permit().await else {
                    break;
                };
                let (state, tx, parent) = (state.clone(), tx.clone(), parent.clone());
                tasks.spawn(async move {
                    let reply = match state.invoker.invoke(flow_file, parent).await {
                        Ok(mut outputs) => {
                            if attributes_only {
                                strip_content(&mut outputs);
                            }
                            pb::ProcessStreamResponse {
                                seq,
                                outputs,
                                retryable_error: String::new(),
                            }
                        }
                        Err(e) => retry_reply(seq, &e.to_string()),
                    };
                    drop(permit);
                    let _ = tx.send(Ok(reply)).await;
                });
                // Reap finished tasks so the set stays small on long streams.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Empties the outputs' content (an `attributes_only` request): relationships and attributes
/// are the answer.
fn strip_content(outputs: &mut [pb::Output]) {
    for flow_file in outputs.iter_mut().filter_map(|o| o.flow_file.as_mut()) {
        flow_file.content = Default::default();
    }
}

fn retry_reply(seq: u64, message: &str) -> pb::ProcessStreamResponse {
    pb::ProcessStreamResponse {
        seq,
        outputs: Vec::new(),
        retryable_error: message.to_string(),
    }
}

pub(super) struct SourceService {
    pub(super) state: Arc<NodeState>,
    pub(super) source: Arc<dyn Source>,
}

/// Longest a Pull may wait for offers, so a runner notices shutdowns promptly.
const MAX_PULL_WAIT: Duration = Duration::from_secs(5);

#[tonic::async_trait]
impl pb::source_server::Source for SourceService {
    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        self.state.check_ready()?;
        let r = request.into_inner();
        let wait = Duration::from_millis(r.wait_ms.into()).min(MAX_PULL_WAIT);
        let pulled = self
            .source
            .pull((r.max as usize).clamp(1, 10_000), wait)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::PullResponse {
            offers: pulled.offers,
            exhausted: pulled.exhausted,
        }))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let r = request.into_inner();
        self.source
            .ack(r.accepted, r.rejected)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::AckResponse {}))
    }
}
