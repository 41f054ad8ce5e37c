//! NiFi's two ways into a served node, on its one port: `FlowFileService/Send` (NiFi 1.x
//! InvokeGRPC) and HTTP/1.1 `POST /process` (NiFi 2.x InvokeHTTP), plus `/describe` and
//! `/health`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use loupe_sdk::client::{ClientOptions, RemoteNode};
use loupe_sdk::pb::{DescribeRequest, NodeDescription};
use loupe_sdk::serve::nifi::pb::flow_file_reply::ResponseCode;
use loupe_sdk::serve::nifi::pb::flow_file_service_client::FlowFileServiceClient;
use loupe_sdk::serve::nifi::pb::{FlowFileReply, FlowFileRequest};
use loupe_sdk::serve::{ServeError, ServeOptions, serve};
use loupe_sdk::{FlowFile, Node, NodeError, Output, ProcessError, Processor, Relationship};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const MAX_MESSAGE: usize = 64 * 1024;

/// Upper-cases the content; `mode` picks a behaviour; `seen` lists the attributes it got.
struct Shouter {
    started: Arc<Notify>,
    may_start: Arc<AtomicBool>,
}

#[async_trait]
impl Processor for Shouter {
    fn describe(&self) -> NodeDescription {
        NodeDescription {
            node_type: "shouter".into(),
            relationships: vec![
                Relationship::success(),
                Relationship::failure(),
                Relationship::new("echo", "The input, unchanged"),
            ],
            settings_schema: r#"{"type":"object"}"#.into(),
            ..Default::default()
        }
    }

    async fn start(&self) -> Result<(), NodeError> {
        while !self.may_start.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        match ff.attr("mode") {
            Some("hold") => {
                self.started.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Some("fail") => {
                return Err(ProcessError::invalid_input("not an image:\nbad header"));
            }
            Some("none") => return Ok(Vec::new()),
            _ => {}
        }
        let mut seen: Vec<&str> = ff.attributes.keys().map(String::as_str).collect();
        seen.sort();
        let loud = ff.content.to_ascii_uppercase();
        let out = ff
            .child(loud, "loud")
            .with_attr("seen", seen.join(","))
            .with_attr("seen.uuid", ff.uuid.clone())
            .with_attr("verdict", "loud")
            .with_attr("note", "line one\nlíne two")
            .with_attr("bad name", "x")
            .with_attr("content-length", "1")
            .with_attr("mime.type", "text/plain");
        Ok(vec![out.to("success"), ff.to("echo")])
    }
}

struct Server {
    addr: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    started: Arc<Notify>,
    may_start: Arc<AtomicBool>,
}

impl Server {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn start(max_in_flight: usize, ready: bool) -> Server {
    let started = Arc::new(Notify::new());
    let may_start = Arc::new(AtomicBool::new(ready));
    let node = Node::processor(Shouter {
        started: started.clone(),
        may_start: may_start.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let options = ServeOptions {
        node_id: "shouter".into(),
        max_message_bytes: MAX_MESSAGE,
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
    let server = Server {
        addr,
        stop,
        task,
        started,
        may_start,
    };
    if ready {
        wait_serving(&server).await;
    }
    server
}

/// Sends a slow request through HTTP and returns once the node is processing it: with
/// `max_in_flight: 1` the node is then full.
async fn hold_the_only_permit(s: &Server) -> tokio::task::JoinHandle<HttpReply> {
    let addr = s.addr.clone();
    let busy = tokio::spawn(async move {
        http_to(
            &addr,
            "POST",
            "/process",
            &[("x-loupe-attr-mode", "hold")],
            b"slow".to_vec(),
        )
        .await
    });
    s.started.notified().await;
    busy
}

async fn wait_serving(s: &Server) {
    for _ in 0..500 {
        if http(s, "GET", "/health", &[], Vec::new()).await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never became SERVING");
}

// ------------------------------------------------------------------ gRPC (InvokeGRPC)

async fn nifi(s: &Server) -> FlowFileServiceClient<tonic::transport::Channel> {
    FlowFileServiceClient::connect(s.addr.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
}

fn request(mode: &str, content: &[u8]) -> FlowFileRequest {
    FlowFileRequest {
        id: 42,
        attributes: HashMap::from([
            ("uuid".into(), UUID.into()),
            ("filename".into(), "part.txt".into()),
            ("path".into(), "./".into()),
            ("mode".into(), mode.into()),
        ]),
        content: content.to_vec().into(),
    }
}

const UUID: &str = "6f1d3c2a-8b7e-4f60-9a2d-1c5e7b9d0a11";

fn body(reply: &FlowFileReply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[tokio::test]
async fn send_succeeds_with_the_outputs_in_the_body() {
    let s = start(4, true).await;
    let reply = nifi(&s)
        .await
        .send(request("ok", b"coil 7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.response_code(), ResponseCode::Success, "{reply:?}");
    let b = body(&reply);
    assert_eq!(b["relationship"], "success");
    assert!(b.get("error").is_none(), "{b}");
    let attrs = &b["attributes"];
    assert_eq!(attrs["verdict"], "loud");
    assert_eq!(attrs["note"], "line one\nlíne two");
    assert_eq!(
        attrs["seen.uuid"], UUID,
        "the uuid attribute is the FlowFile's uuid"
    );
    assert_eq!(attrs["seen"], "filename,mode,path");
    assert!(
        attrs.get("filename").is_none(),
        "unchanged attributes are not listed"
    );
    let outputs = b["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0]["size"], 6);
    assert_eq!(outputs[1]["relationship"], "echo");
    assert_eq!(outputs[1]["size"], 6);
    assert!(
        !reply.body.contains("COIL"),
        "content never travels in the body"
    );

    // A processing failure is ERROR with the reason.
    let reply = nifi(&s)
        .await
        .send(request("fail", b"x"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.response_code(), ResponseCode::Error, "{reply:?}");
    let b = body(&reply);
    assert_eq!(b["relationship"], "failure");
    assert_eq!(b["error"]["kind"], "invalid_input");
    assert_eq!(b["error"]["message"], "not an image:\nbad header");
    assert_eq!(b["attributes"]["error.kind"], "invalid_input");

    // Over the node's limit: ERROR (too_large) when it fits the message, never a crash.
    let reply = nifi(&s)
        .await
        .send(request("ok", &vec![b'a'; MAX_MESSAGE + 1]))
        .await;
    match reply {
        Ok(r) => assert_eq!(r.into_inner().response_code(), ResponseCode::Error),
        Err(status) => assert!(
            matches!(
                status.code(),
                tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
            ),
            "{status:?}"
        ),
    }
    s.stop().await;
}

#[tokio::test]
async fn send_answers_retry_when_overloaded_or_not_ready() {
    let s = start(1, false).await;
    let reply = nifi(&s)
        .await
        .send(request("ok", b"x"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.response_code(), ResponseCode::Retry);
    assert_eq!(body(&reply)["error"]["kind"], "unavailable");
    let r = http(&s, "POST", "/process", &[], b"x".to_vec()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("starting"), "{}", r.text());
    assert_eq!(
        http(&s, "GET", "/health", &[], Vec::new()).await.status,
        503
    );
    let d = http(&s, "GET", "/describe", &[], Vec::new()).await;
    assert_eq!(d.json()["readiness"], "STARTING");

    s.may_start.store(true, Ordering::SeqCst);
    wait_serving(&s).await;

    // Hold the only permit with a slow request, through HTTP.
    let busy = hold_the_only_permit(&s).await;
    let reply = nifi(&s)
        .await
        .send(request("ok", b"x"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.response_code(), ResponseCode::Retry, "{reply:?}");
    let b = body(&reply);
    assert_eq!(b["error"]["kind"], "overloaded");
    assert_eq!(b["relationship"], Value::Null);
    let r = http(&s, "POST", "/process", &[], b"x".to_vec()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("overloaded"), "{}", r.text());

    let held = busy.await.unwrap();
    assert_eq!(held.status, 200);
    assert_eq!(held.body, b"SLOW");
    s.stop().await;
}

// ------------------------------------------------------------------ HTTP (InvokeHTTP)

struct HttpReply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

async fn http(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    http_to(&s.addr, method, path, headers, body).await
}

async fn http_to(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    // HTTP/1.1 only, as InvokeHTTP speaks to a plain-text endpoint.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(format!("{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    assert_eq!(response.version(), axum::http::Version::HTTP_11);
    let (parts, body) = response.into_parts();
    HttpReply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn http_process_maps_headers_to_attributes_both_ways() {
    let s = start(4, true).await;
    let r = http(
        &s,
        "POST",
        "/process",
        &[
            ("content-type", "text/x-coil"),
            ("filename", "coil-7.txt"),
            ("camera.angle", "3"),
            ("mode", "fail"),
            ("x-loupe-attr-Mode", "ok"),
            ("x-loupe-attr-line", "L1"),
            ("uuid", UUID),
            ("user-agent", "Apache-HttpClient"),
            ("accept", "*/*"),
            ("authorization", "Bearer secret"),
        ],
        b"coil 7".to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"COIL 7", "body = the first output's content");
    assert_eq!(r.header("x-loupe-relationship"), Some("success"));
    assert_eq!(r.header("x-loupe-outputs"), Some("2"));
    assert_eq!(
        r.header("content-type"),
        Some("text/plain"),
        "from mime.type"
    );
    assert_eq!(r.header("verdict"), Some("loud"));
    assert_eq!(r.header("seen.uuid"), Some(UUID));
    // Standard headers are not attributes; content-type is mime.type; `x-loupe-attr-NAME`
    // names one (and wins over the plain `mode: fail`).
    assert_eq!(
        r.header("seen"),
        Some("camera.angle,filename,line,mime.type,mode"),
    );
    assert_eq!(
        r.header("mime.type"),
        Some("text/plain"),
        "changed: a header"
    );
    assert!(r.header("filename").is_none(), "unchanged: no header");
    // Unsafe values are percent-encoded and listed; impossible names are dropped and listed.
    assert_eq!(r.header("x-loupe-encoded-attributes"), Some("note"));
    assert_eq!(
        percent_decode(r.header("note").unwrap()),
        "line one\nlíne two"
    );
    let dropped = r.header("x-loupe-dropped-attributes").unwrap();
    assert_eq!(dropped, "bad%20name,content-length");
    assert_eq!(r.header("content-length"), Some("6"), "framing untouched");

    // The uuid header's FlowFile has the same uuid through gRPC, and the same verdict.
    let reply = nifi(&s)
        .await
        .send(request("ok", b"coil 7"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        body(&reply)["attributes"]["verdict"],
        r.header("verdict").unwrap()
    );
    s.stop().await;
}

#[tokio::test]
async fn http_failure_limits_and_unknown_paths() {
    let s = start(4, true).await;
    let r = http(&s, "POST", "/process", &[("mode", "fail")], b"x".to_vec()).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.header("x-loupe-relationship"), Some("failure"));
    assert_eq!(r.header("error.kind"), Some("invalid_input"));
    assert_eq!(
        percent_decode(r.header("error.message").unwrap()),
        "not an image:\nbad header"
    );
    assert_eq!(r.text(), "not an image:\nbad header\n");

    // Over max_message_bytes: 413 (declared length, or counted for chunked bodies).
    let r = http(&s, "POST", "/process", &[], vec![b'a'; MAX_MESSAGE + 1]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let r = http(&s, "POST", "/process", &[], vec![b'a'; MAX_MESSAGE]).await;
    assert_eq!(r.status, 200);

    // gzip bodies are decoded; the decoded size counts.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"zipped coil").unwrap();
    let r = http(
        &s,
        "POST",
        "/process",
        &[("content-encoding", "gzip")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"ZIPPED COIL".as_slice())
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&vec![0u8; MAX_MESSAGE * 4]).unwrap();
    let r = http(
        &s,
        "POST",
        "/process",
        &[("content-encoding", "gzip")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = http(
        &s,
        "POST",
        "/process",
        &[("content-encoding", "br")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, 415);

    // No output at all.
    let r = http(&s, "POST", "/process", &[("mode", "none")], b"x".to_vec()).await;
    assert_eq!((r.status, r.header("x-loupe-outputs")), (204, Some("0")));

    assert_eq!(http(&s, "GET", "/nope", &[], Vec::new()).await.status, 404);
    assert_eq!(
        http(&s, "GET", "/process", &[], Vec::new()).await.status,
        405
    );

    let d = http(&s, "GET", "/describe", &[], Vec::new()).await;
    assert_eq!(d.status, 200);
    let d = d.json();
    assert_eq!(d["node_type"], "shouter");
    assert_eq!(d["readiness"], "READY");
    assert_eq!(d["max_message_bytes"], MAX_MESSAGE);
    assert_eq!(d["relationships"][2]["name"], "echo");
    assert_eq!(d["settings_schema"]["type"], "object");
    let h = http(&s, "GET", "/health", &[], Vec::new()).await;
    assert_eq!((h.status, h.text().as_str()), (200, "SERVING\n"));

    // gRPC keeps working on the same port.
    let node = RemoteNode::connect(std::slice::from_ref(&s.addr), &ClientOptions::default())
        .await
        .unwrap();
    let out = node
        .process(FlowFile::create(b"grpc".to_vec(), HashMap::new()))
        .await
        .unwrap();
    assert_eq!(out[0].flow_file().unwrap().content.as_ref(), b"GRPC");
    // An unknown gRPC method is still UNIMPLEMENTED (not an HTTP 404).
    let channel = tonic::transport::Endpoint::from_shared(s.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<DescribeRequest, NodeDescription, _>(
            tonic::Request::new(DescribeRequest {}),
            axum::http::uri::PathAndQuery::from_static("/no.Such/Method"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    s.stop().await;
}

#[tokio::test]
async fn overload_is_refused_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(1, true).await;
    // Hold the only permit with a slow request.
    let busy = hold_the_only_permit(&s).await;
    // A caller that announces a large body and sends only its first bytes: the answer comes
    // without waiting for the rest (the node never holds the body of work it refuses).
    let mut tcp = tokio::net::TcpStream::connect(s.addr.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(
        b"POST /process HTTP/1.1\r\nhost: loupe\r\ncontent-length: 60000\r\n\r\nfirst bytes",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut answer))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert_eq!(busy.await.unwrap().status, 200);
    s.stop().await;
}

#[tokio::test]
async fn attributes_only_answers_carry_the_verdict_without_the_content() {
    let s = start(4, true).await;
    let r = http(
        &s,
        "POST",
        "/process",
        &[("x-loupe-answer", "attributes"), ("filename", "coil-7.txt")],
        b"coil 7".to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty(), "no content: {}", r.text());
    assert_eq!(r.header("x-loupe-relationship"), Some("success"));
    assert_eq!(r.header("verdict"), Some("loud"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(
        r.header("seen"),
        Some("filename"),
        "x-loupe-answer is not an attribute"
    );
    // Failures still say why, in the body.
    let r = http(
        &s,
        "POST",
        "/process",
        &[("x-loupe-answer", "attributes"), ("mode", "fail")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("not an image"), "{}", r.text());
    // The same through gRPC: relationships and attributes, empty content.
    let node = RemoteNode::connect(std::slice::from_ref(&s.addr), &ClientOptions::default())
        .await
        .unwrap();
    let ff = FlowFile::create(b"coil 7".to_vec(), HashMap::new());
    let outputs = node.process_request(ff.clone(), true).await.unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].relationship, "success");
    let first = outputs[0].flow_file.as_ref().unwrap();
    assert_eq!(first.attr("verdict"), Some("loud"));
    assert!(first.content.is_empty());
    let full = node.process_request(ff, false).await.unwrap();
    assert_eq!(
        full[0].flow_file.as_ref().unwrap().content,
        b"COIL 7".to_vec()
    );
    s.stop().await;
}
