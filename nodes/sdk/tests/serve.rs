//! The serve scaffold on a real loopback port: readiness and health, overload answers,
//! streaming, panics, draining, and a node that fails to start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::pb::processor_client::ProcessorClient;
use loupe_sdk::pb::{self, NodeDescription};
use loupe_sdk::serve::{ServeError, ServeOptions, serve};
use loupe_sdk::{ErrorKind, FlowFile, Node, NodeError, Output, ProcessError, Processor};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Slow {
    started: Arc<Notify>,
    may_start: Arc<AtomicBool>,
    fail_start: bool,
}

#[async_trait]
impl Processor for Slow {
    fn describe(&self) -> NodeDescription {
        NodeDescription {
            node_type: "slow".into(),
            relationships: vec![
                loupe_sdk::Relationship::success(),
                loupe_sdk::Relationship::failure(),
            ],
            ..Default::default()
        }
    }
    async fn start(&self) -> Result<(), NodeError> {
        while !self.may_start.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.fail_start {
            return Err(NodeError::Other("model file is missing".into()));
        }
        Ok(())
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        match ff.attr("mode") {
            Some("hold") => {
                self.started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Some("panic") => panic!("deliberate"),
            _ => {}
        }
        Ok(vec![ff.with_attr("done", "1").to("success")])
    }
}

struct Server {
    addr: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    started: Arc<Notify>,
    may_start: Arc<AtomicBool>,
}

async fn start(max_in_flight: usize, fail_start: bool, ready: bool) -> Server {
    let started = Arc::new(Notify::new());
    let may_start = Arc::new(AtomicBool::new(ready));
    let node = Node::processor(Slow {
        started: started.clone(),
        may_start: may_start.clone(),
        fail_start,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let options = ServeOptions {
        node_id: "slow".into(),
        max_message_bytes: 1024 * 1024,
        max_in_flight,
        drain_timeout: Duration::from_secs(5),
        attributes: Default::default(),
        security: Default::default(),
    };
    let task = tokio::spawn(serve(
        node,
        options,
        listener,
        stop.clone().cancelled_owned(),
        vec![],
    ));
    Server {
        addr,
        stop,
        task,
        started,
        may_start,
    }
}

/// A node with `max_in_flight: 1`, a client, and a slow request holding the only slot.
async fn full_node() -> (
    Server,
    RemoteNode,
    tokio::task::JoinHandle<Result<Vec<Output>, ProcessError>>,
) {
    let s = start(1, false, true).await;
    let node = remote(&s.addr).await;
    let busy = {
        let node = node.clone();
        tokio::spawn(async move { node.process(ff("hold")).await })
    };
    s.started.notified().await;
    (s, node, busy)
}

fn ff(mode: &str) -> FlowFile {
    FlowFile::create(vec![1, 2, 3], Default::default()).with_attr("mode", mode)
}

async fn health(addr: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let r = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: "loupe.v1.Processor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

async fn remote(addr: &str) -> RemoteNode {
    RemoteNode::connect(&[addr.to_string()], &ClientOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn not_serving_until_started_then_serving() {
    let s = start(4, false, false).await;
    let node = remote(&s.addr).await;
    assert_eq!(health(&s.addr).await, ServingStatus::NotServing);
    let e = node.process(ff("ok")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("starting"));
    s.may_start.store(true, Ordering::SeqCst);
    let mut tries = 0;
    while health(&s.addr).await != ServingStatus::Serving {
        tries += 1;
        assert!(tries < 500, "never became SERVING");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = node.process(ff("ok")).await.unwrap();
    assert_eq!(out[0].flow_file().unwrap().attr("done"), Some("1"));
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn overload_is_resource_exhausted_and_panics_keep_serving() {
    let (s, node, busy) = full_node().await;
    let e = node.process(ff("ok")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Overloaded, "{e}");
    assert!(e.is_retryable());
    assert!(busy.await.unwrap().is_ok());

    let out = node.process(ff("panic")).await.unwrap();
    assert_eq!(out[0].relationship, "failure");
    assert_eq!(
        out[0].flow_file().unwrap().attr("error.kind"),
        Some("panic")
    );
    assert!(
        node.process(ff("ok")).await.is_ok(),
        "still serving after a panic"
    );

    // Over the message limit: refused, not a crash.
    let big = FlowFile::create(vec![0u8; 2 * 1024 * 1024], Default::default());
    let mut client = ProcessorClient::connect(s.addr.clone())
        .await
        .unwrap()
        .max_encoding_message_size(8 * 1024 * 1024);
    let status = client
        .process(pb::ProcessRequest {
            flow_file: Some(big),
            attributes_only: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    assert!(node.process(ff("ok")).await.is_ok());

    // gzip-compressed requests are accepted; a client accepting gzip answers is served too
    // (uncompressed: image content does not compress).
    let mut gz = ProcessorClient::connect(s.addr.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let r = gz
        .process(pb::ProcessRequest {
            flow_file: Some(ff("ok")),
            attributes_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].relationship, "success");
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn process_stream_answers_every_request_by_seq() {
    let s = start(4, false, true).await;
    let mut client = ProcessorClient::connect(s.addr.clone()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let sender = tokio::spawn(async move {
        for seq in 0..100u64 {
            let mode = if seq % 10 == 0 { "panic" } else { "ok" };
            tx.send(pb::ProcessStreamRequest {
                seq,
                flow_file: Some(ff(mode)),
                attributes_only: false,
            })
            .await
            .unwrap();
        }
    });
    let mut inbound = client
        .process_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = std::collections::BTreeMap::new();
    while let Some(msg) = inbound.message().await.unwrap() {
        assert!(msg.retryable_error.is_empty());
        seen.insert(msg.seq, msg.outputs[0].relationship.clone());
    }
    sender.await.unwrap();
    assert_eq!(seen.len(), 100);
    assert!(
        seen.iter()
            .all(|(seq, rel)| (seq % 10 == 0) == (rel == "failure"))
    );
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_drains_in_flight_work() {
    let s = start(4, false, true).await;
    let node = remote(&s.addr).await;
    let in_flight = {
        let node = node.clone();
        tokio::spawn(async move { node.process(ff("hold")).await })
    };
    s.started.notified().await;
    s.stop.cancel();
    let out = in_flight
        .await
        .unwrap()
        .expect("in-flight work finishes during the drain");
    assert_eq!(out[0].relationship, "success");
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_node_that_fails_to_start_stops_serving_with_the_reason() {
    let s = start(4, true, true).await;
    let err = tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ServeError::Start(_)));
    assert!(err.to_string().contains("model file is missing"));
}

#[tokio::test]
async fn a_full_node_refuses_process_before_reading_the_message() {
    use tower_service::Service;
    let (s, _node, busy) = full_node().await;
    // A gRPC call whose message announces 60 000 bytes and sends 16: the answer must not
    // wait for the rest.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>(1);
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&60_000u32.to_be_bytes());
    prefix.extend_from_slice(&[0u8; 16]);
    tx.send(Ok(http_body::Frame::data(prefix.into())))
        .await
        .unwrap();
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("{}/loupe.v1.Processor/Process", s.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let mut channel = tonic::transport::Endpoint::from_shared(s.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    futures::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(3), channel.call(request))
        .await
        .expect("answered before the message was sent")
        .unwrap();
    let status = tonic::Status::from_header_map(response.headers()).expect("trailers-only answer");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    drop(tx);
    assert!(busy.await.unwrap().is_ok());
    s.stop.cancel();
    s.task.await.unwrap().unwrap();
}
