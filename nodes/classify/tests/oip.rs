//! The Open Inference Protocol both ways, against real ONNX Runtime and
//! `models/tiny-classifier`:
//! - a served `classify` node answers all six `inference.GRPCInferenceService` rpcs, and
//!   `ModelInfer` on the card's tensor gives the scores the node's own `Process` gives;
//! - readiness, in-flight limits, message limits and bad requests are answered as statuses;
//! - a `classify` node with `backend: { oip: ... }` pointing at a served node gives the same
//!   `classify.*` attributes as a local one.
//!
//! Tests that need ONNX Runtime print `SKIPPED: ...` and pass when the library is absent (with `CI=true` they
//! fail instead).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use loupe_classify::{Classify, ModelCard, attr};
use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::model::oip::pb::{self, grpc_inference_service_client::GrpcInferenceServiceClient};
use loupe_sdk::model::tensor;
use loupe_sdk::onnx;
use loupe_sdk::serve::{ServeError, ServeOptions, serve};
use loupe_sdk::{
    BuildContext, ErrorKind, FlowFile, Node, NodeDescription, NodeError, Output, ProcessError,
    Processor, factory::factory,
};
use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tonic::Code;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

const MODEL: &str = "tiny-classifier";

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// See [`onnx::available_for_tests`].
fn ort_available() -> bool {
    onnx::available_for_tests()
}

fn ctx() -> BuildContext {
    BuildContext {
        node_id: "classify-oip-test".to_string(),
        base_dir: models_dir(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
    }
}

/// Builds a node (not started: serving starts it).
async fn build(settings: serde_json::Value) -> Node {
    factory::<Classify>()
        .build(&settings, &ctx())
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// A node served on a free port, with its extensions, until dropped or stopped.
struct Served {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Served {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("serve task").expect("serve");
    }
}

async fn serve_node(node: Node, max_in_flight: usize, max_message_bytes: usize) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let options = ServeOptions {
        node_id: "classify-oip".into(),
        max_message_bytes,
        max_in_flight,
        drain_timeout: Duration::from_secs(5),
        attributes: Default::default(),
        security: Default::default(),
    };
    let extensions = node.server_extensions();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(node, options, listener, shutdown, extensions));
    Served {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn client(addr: &str) -> Client {
    for _ in 0..100 {
        if let Ok(c) = GrpcInferenceServiceClient::connect(addr.to_string()).await {
            return c
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot connect to {addr}");
}

async fn wait_ready(client: &mut Client) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client
        .server_ready(pb::ServerReadyRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready
    {
        assert!(std::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn png(image: RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

/// A few images the tiny model tells apart, some needing a resize.
fn images() -> Vec<Vec<u8>> {
    let mut patched = RgbImage::from_pixel(64, 48, Rgb([200, 30, 30]));
    for y in 0..20 {
        for x in 0..30 {
            patched.put_pixel(x, y, Rgb([10, 40, 220]));
        }
    }
    let gradient = RgbImage::from_fn(50, 70, |x, y| Rgb([(x * 5) as u8, (y * 3) as u8, 90]));
    vec![
        png(RgbImage::from_pixel(32, 32, Rgb([255, 0, 0]))),
        png(RgbImage::from_pixel(640, 480, Rgb([0, 255, 0]))),
        png(patched),
        png(gradient),
    ]
}

fn card() -> ModelCard {
    ModelCard::load_dir(models_dir().join(MODEL)).unwrap()
}

/// The card's input tensor for an encoded image (what an OIP client sends).
fn input_tensor(card: &ModelCard, content: &[u8]) -> (Vec<i64>, Vec<f32>) {
    let image = tensor::decode(content, &loupe_sdk::imaging::DecodeLimits::default()).unwrap();
    let t = tensor::to_tensor(&image, &card.input);
    (
        t.shape().iter().map(|d| *d as i64).collect(),
        t.iter().copied().collect(),
    )
}

fn le_bytes(values: &[f32]) -> Bytes {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn infer_request(shape: Vec<i64>, data: Bytes) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: MODEL.into(),
        model_version: String::new(),
        id: "req-1".into(),
        parameters: Default::default(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "image".into(),
            datatype: "FP32".into(),
            shape,
            parameters: Default::default(),
            contents: None,
        }],
        outputs: Vec::new(),
        raw_input_contents: vec![data],
    }
}

/// The FP32 values of the one output of an answer.
fn output_values(response: &pb::ModelInferResponse) -> (Vec<i64>, Vec<f32>) {
    assert_eq!(response.outputs.len(), 1);
    assert_eq!(response.raw_output_contents.len(), 1, "answers are raw");
    let out = &response.outputs[0];
    assert_eq!(
        (out.name.as_str(), out.datatype.as_str()),
        ("probabilities", "FP32")
    );
    assert!(out.contents.is_none(), "never *_contents");
    let values = response.raw_output_contents[0]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (out.shape.clone(), values)
}

fn flow_file(content: Vec<u8>, attributes: &[(&str, &str)]) -> FlowFile {
    FlowFile::create(
        content,
        attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    )
}

/// The `success` FlowFile of one Process call.
async fn process(node: &dyn Processor, content: Vec<u8>) -> FlowFile {
    let mut outputs = node
        .process(flow_file(content, &[]))
        .await
        .unwrap_or_else(|e| panic!("process failed: {e}"));
    assert_eq!(outputs.len(), 1);
    let output = outputs.remove(0);
    assert_eq!(output.relationship, "success", "{output:?}");
    output.flow_file.unwrap()
}

fn scores(out: &FlowFile) -> serde_json::Map<String, serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(out.attr(attr::SCORES).unwrap()).unwrap();
    value.as_object().unwrap().clone()
}

fn status_of<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> tonic::Status {
    result.expect_err("expected an error status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_classify_answers_all_six_rpcs_with_the_nodes_own_scores() {
    if !ort_available() {
        return;
    }
    let served = serve_node(build(json!({ "model": MODEL })).await, 4, 1 << 20).await;
    let mut c = client(&served.addr).await;

    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    wait_ready(&mut c).await;
    let ready = |name: &str, version: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    for (name, version, expected) in [
        (MODEL, "", true),
        (MODEL, "1.0.0", true),
        (MODEL, "2.0.0", false),
        ("coil-classifier", "", false),
    ] {
        let r = c
            .model_ready(ready(name, version))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.ready, expected, "{name}@{version}");
    }
    let server = c
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "loupe");
    assert_eq!(server.version, loupe_sdk::VERSION);

    let metadata = c
        .model_metadata(pb::ModelMetadataRequest {
            name: MODEL.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, MODEL);
    assert_eq!(metadata.versions, ["1.0.0"]);
    assert_eq!(metadata.platform, "onnx_onnxv1");
    assert_eq!(metadata.inputs.len(), 1);
    let input = &metadata.inputs[0];
    assert_eq!(
        (
            input.name.as_str(),
            input.datatype.as_str(),
            input.shape.as_slice()
        ),
        ("image", "FP32", &[-1, 3, 32, 32][..])
    );
    let output = &metadata.outputs[0];
    assert_eq!(
        (
            output.name.as_str(),
            output.datatype.as_str(),
            output.shape.as_slice()
        ),
        ("probabilities", "FP32", &[-1, 3][..])
    );
    let status = status_of(
        c.model_metadata(pb::ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await,
    );
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("unknown model \"nope\""),
        "{status:?}"
    );

    // ModelInfer on the card's tensor == the node's own Process call (over gRPC too).
    let card = card();
    let remote = RemoteNode::connect(
        std::slice::from_ref(&served.addr),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let mut batch = Vec::new();
    let mut singles = Vec::new();
    for content in images() {
        let (shape, values) = input_tensor(&card, &content);
        assert_eq!(shape, [1, 3, 32, 32]);
        let response = c
            .model_infer(infer_request(shape, le_bytes(&values)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.model_name, MODEL);
        assert_eq!(response.model_version, "1.0.0");
        assert_eq!(response.id, "req-1");
        let (out_shape, probabilities) = output_values(&response);
        assert_eq!(out_shape, [1, 3]);
        let out = process(&remote, content).await;
        let scores = scores(&out);
        for (label, p) in card.labels.iter().zip(&probabilities) {
            let s = scores[label].as_f64().unwrap();
            // `classify.scores` has 4 decimals.
            assert!(
                (s - f64::from(*p)).abs() <= 5e-5 + 1e-7,
                "{label}: {s} vs {p}"
            );
        }
        batch.extend_from_slice(&values);
        singles.push(probabilities);
    }

    // A batch in one call answers each image as alone.
    let n = singles.len() as i64;
    let response = c
        .model_infer(infer_request(vec![n, 3, 32, 32], le_bytes(&batch)))
        .await
        .unwrap()
        .into_inner();
    let (shape, values) = output_values(&response);
    assert_eq!(shape, [n, 3]);
    for (row, single) in values.chunks_exact(3).zip(&singles) {
        for (a, b) in row.iter().zip(single) {
            assert!((a - b).abs() < 1e-6, "{row:?} vs {single:?}");
        }
    }

    // Typed `contents` input and a named output: same answer, still raw.
    let (shape, values) = input_tensor(&card, &images()[2]);
    let mut request = infer_request(shape.clone(), Bytes::new());
    request.raw_input_contents.clear();
    request.inputs[0].contents = Some(pb::InferTensorContents {
        fp32_contents: values.clone(),
        ..Default::default()
    });
    request.outputs = vec![pb::model_infer_request::InferRequestedOutputTensor {
        name: "probabilities".into(),
        parameters: Default::default(),
    }];
    let response = c.model_infer(request).await.unwrap().into_inner();
    assert_eq!(output_values(&response).1, singles[2]);

    // Bad requests: clear statuses.
    let bad = |mutate: &dyn Fn(&mut pb::ModelInferRequest)| {
        let mut request = infer_request(shape.clone(), le_bytes(&values));
        mutate(&mut request);
        request
    };
    let cases: Vec<(pb::ModelInferRequest, Code, &str)> = vec![
        (
            bad(&|r| r.model_name = "nope".into()),
            Code::NotFound,
            "unknown model",
        ),
        (
            bad(&|r| r.model_version = "7".into()),
            Code::NotFound,
            "no version \"7\"",
        ),
        (
            bad(&|r| r.inputs[0].shape = vec![1, 3, 16, 64]),
            Code::InvalidArgument,
            "has shape [1, 3, 16, 64]; the model takes [-1, 3, 32, 32]",
        ),
        (
            bad(&|r| r.inputs[0].datatype = "FP64".into()),
            Code::InvalidArgument,
            "FP64 in the request but FP32 in the model",
        ),
        (
            bad(&|r| r.inputs[0].datatype = "FLOAT".into()),
            Code::InvalidArgument,
            "unknown datatype",
        ),
        (
            bad(&|r| r.raw_input_contents[0] = r.raw_input_contents[0].slice(4..)),
            Code::InvalidArgument,
            "12284 bytes of data, but shape [1, 3, 32, 32] of FP32 needs 12288",
        ),
        (
            bad(&|r| r.raw_input_contents.push(Bytes::from_static(b"x"))),
            Code::InvalidArgument,
            "raw_input_contents has 2 entries for 1 inputs",
        ),
        (
            bad(&|r| r.inputs[0].name = "pixels".into()),
            Code::InvalidArgument,
            "no input \"pixels\"",
        ),
        (
            bad(&|r| {
                r.outputs = vec![pb::model_infer_request::InferRequestedOutputTensor {
                    name: "logits".into(),
                    parameters: Default::default(),
                }]
            }),
            Code::InvalidArgument,
            "no output \"logits\"",
        ),
    ];
    for (request, code, text) in cases {
        let status = status_of(c.model_infer(request).await);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(text),
            "{text:?} not in {status:?}"
        );
    }

    // Over the node's 1 MiB message limit: refused by the transport, node still serving.
    let big = vec![0f32; 100 * 3 * 32 * 32];
    let status = status_of(
        c.model_infer(infer_request(vec![100, 3, 32, 32], le_bytes(&big)))
            .await,
    );
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let ok = c
        .model_infer(infer_request(shape.clone(), le_bytes(&values)))
        .await;
    assert!(ok.is_ok(), "still serving: {ok:?}");

    served.stop().await;
}

/// A node whose start waits for `start_gate`, and whose Process holds FlowFiles with a
/// `hold` attribute until `release`; the classify node inside does the work.
struct Gated {
    inner: Arc<dyn Processor>,
    start_gate: Arc<Notify>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl Processor for Gated {
    fn describe(&self) -> NodeDescription {
        self.inner.describe()
    }

    async fn start(&self) -> Result<(), NodeError> {
        self.start_gate.notified().await;
        self.inner.start().await
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        if flow_file.attr("hold").is_some() {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.process(flow_file).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_ready_waits_for_warm_up_and_infer_shares_the_in_flight_limit() {
    if !ort_available() {
        return;
    }
    let node = build(json!({ "model": MODEL })).await;
    let gated = Arc::new(Gated {
        inner: node.processor.clone(),
        start_gate: Arc::new(Notify::new()),
        entered: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    });
    let wrapped = Node {
        processor: gated.clone(),
        source: None,
        extensions: node.extensions.clone(),
    };
    let served = serve_node(wrapped, 1, 1 << 20).await;
    let mut c = client(&served.addr).await;
    let (shape, values) = input_tensor(&card(), &images()[0]);

    // Starting (warm-up not finished): live, but neither the server nor the model is ready.
    assert!(
        c.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        !c.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let model_ready = pb::ModelReadyRequest {
        name: MODEL.into(),
        version: String::new(),
    };
    assert!(
        !c.model_ready(model_ready.clone())
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let status = status_of(
        c.model_infer(infer_request(shape.clone(), le_bytes(&values)))
            .await,
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("starting"), "{status:?}");

    gated.start_gate.notify_one();
    wait_ready(&mut c).await;
    assert!(c.model_ready(model_ready).await.unwrap().into_inner().ready);

    // One FlowFile in flight (max_in_flight = 1): ModelInfer is told to come back later.
    let remote = RemoteNode::connect(
        std::slice::from_ref(&served.addr),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let held = tokio::spawn(async move {
        remote
            .process(flow_file(images()[0].clone(), &[("hold", "1")]))
            .await
    });
    gated.entered.notified().await;
    let status = status_of(
        c.model_infer(infer_request(shape.clone(), le_bytes(&values)))
            .await,
    );
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    gated.release.notify_one();
    held.await.unwrap().expect("held FlowFile processed");
    c.model_infer(infer_request(shape, le_bytes(&values)))
        .await
        .expect("a free slot again");

    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oip_backend_gives_the_same_verdicts_as_local_onnx() {
    if !ort_available() {
        return;
    }
    let served = serve_node(build(json!({ "model": MODEL })).await, 8, 1 << 20).await;
    let local = build(json!({ "model": MODEL })).await;
    local.processor.start().await.unwrap();
    let remote = build(json!({
        "model": MODEL,
        "backend": { "oip": { "endpoint": served.addr, "model": MODEL, "version": "", "timeout": "10s" } },
    }))
    .await;
    assert!(
        remote.extensions.is_empty(),
        "a remote backend serves no model of its own"
    );
    remote.processor.start().await.expect("remote model ready");

    for content in images() {
        let a = process(local.processor.as_ref(), content.clone()).await;
        let b = process(remote.processor.as_ref(), content).await;
        for name in [
            attr::LABEL,
            attr::SCORE,
            attr::SCORES,
            attr::CONFIDENT,
            attr::MODEL,
        ] {
            assert_eq!(a.attr(name), b.attr(name), "{name}");
        }
    }
    // Undecodable content never leaves the node.
    let err = remote
        .processor
        .process(flow_file(b"not an image".to_vec(), &[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");

    // A card written for another model fails at start, saying what disagrees.
    let mismatched = build(json!({
        "model": "tiny-classifier/nhwc",
        "backend": { "oip": { "endpoint": served.addr, "model": MODEL, "ready_timeout": "5s" } },
    }))
    .await;
    let err = mismatched.processor.start().await.unwrap_err().to_string();
    assert!(err.contains("does not match the card"), "{err}");
    assert!(err.contains("[-1, 48, 48, 3]"), "{err}");

    // The server gone: retryable, so the runner retries instead of failing the FlowFile.
    served.stop().await;
    let err = remote
        .processor
        .process(flow_file(images()[0].clone(), &[]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

// ---- No ONNX Runtime needed below. ----

#[tokio::test]
async fn an_oip_backend_needs_only_the_card_and_waits_for_its_server() {
    // models/tiny-classifier's card, no ONNX Runtime, nothing listening on the port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let node = build(json!({
        "model": MODEL,
        "backend": { "oip": { "endpoint": format!("http://{addr}"), "ready_timeout": "300ms" } },
    }))
    .await;
    let err = node.processor.start().await.unwrap_err();
    assert!(matches!(err, NodeError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(
        message.contains("\"tiny-classifier\""),
        "the card's name by default: {message}"
    );
}

#[test]
fn backend_settings_are_checked_with_locations() {
    let f = factory::<Classify>();
    let ok = |settings: serde_json::Value| f.check(&settings).expect("valid settings");
    ok(json!({ "model": "m", "backend": "local" }));
    ok(json!({ "model": "m", "backend": { "oip": { "endpoint": "triton:8001" } } }));
    ok(json!({ "model": "m", "backend": { "oip": {
        "endpoint": "http://triton:8001", "model": "coil-classifier", "version": "2",
        "timeout": "5s", "ready_timeout": "1m" } } }));
    let paths = |settings: serde_json::Value| -> Vec<String> {
        f.check(&settings)
            .expect_err("invalid settings")
            .iter()
            .map(|e| e.path.clone())
            .collect()
    };
    assert_eq!(
        paths(json!({ "model": "m", "backend": { "oip": { "endpoint": "", "timeout": "0s" } } })),
        ["backend.oip.endpoint", "backend.oip.timeout"]
    );
    assert_eq!(
        paths(json!({ "model": "m", "backend": { "oip": { "endpoint": "ftp://t:8001" } } })),
        ["backend.oip.endpoint"]
    );
    assert_eq!(
        paths(json!({ "model": "m", "backend": { "oip": { "endpoint": "t:1", "endpont": 1 } } })),
        ["backend.oip.endpont"]
    );
    assert_eq!(
        paths(
            json!({ "model": "m", "backend": { "oip": { "endpoint": "t:1", "timeout": "soon" } } })
        ),
        ["backend.oip.timeout"]
    );
    assert_eq!(
        paths(json!({ "model": "m", "backend": "remote" })),
        ["backend"]
    );
    assert_eq!(
        paths(json!({ "model": "m", "backend": { "oip": {} } })),
        ["backend.oip"]
    );
    let schema = f.settings_schema().to_string();
    assert!(
        schema.contains("ready_timeout") && schema.contains("endpoint"),
        "{schema}"
    );
}
