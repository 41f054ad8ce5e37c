//! Security of a served node's port, on a real loopback port with real TLS (a CA made in the
//! test with rcgen): every front-end and method called without credentials, with wrong ones,
//! with a credential lacking the right, and with the right one; mutual TLS identities;
//! certificate rotation without a restart; `https://` against a plaintext node; secure by
//! default beyond loopback.

#![allow(deprecated)] // rustls' ring provider, as the SDK uses it

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::client::{AuthChannel, ClientOptions, ClientSecurity, RemoteNode, Secret};
use loupe_sdk::pb::processor_client::ProcessorClient;
use loupe_sdk::pb::source_client::SourceClient;
use loupe_sdk::pb::{self, NodeDescription, Offer};
use loupe_sdk::serve::nifi::pb::FlowFileRequest;
use loupe_sdk::serve::nifi::pb::flow_file_service_client::FlowFileServiceClient;
use loupe_sdk::serve::{
    AuthSettings, CertificateRights, Right, Security, SecuritySettings, ServeError, ServeOptions,
    TlsSettings, TokenSettings, serve,
};
use loupe_sdk::{FlowFile, Node, NodeError, Output, ProcessError, Processor, Pulled, Source};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// A camera node: a source whose acknowledgements would delete photos.
struct Camera {
    acked: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Processor for Camera {
    fn describe(&self) -> NodeDescription {
        NodeDescription {
            node_type: "camera".into(),
            relationships: vec![loupe_sdk::Relationship::success()],
            ..Default::default()
        }
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![ff.to("success")])
    }
}

#[async_trait]
impl Source for Camera {
    async fn pull(&self, _max: usize, _wait: Duration) -> Result<Pulled, NodeError> {
        Ok(Pulled {
            offers: vec![Offer {
                delivery_id: "photo-1".into(),
                flow_file: Some(FlowFile::create(b"photo".to_vec(), HashMap::new())),
            }],
            exhausted: false,
        })
    }
    async fn ack(&self, accepted: Vec<String>, _rejected: Vec<String>) -> Result<(), NodeError> {
        self.acked.lock().unwrap().extend(accepted);
        Ok(())
    }
}

/// A certificate authority made for the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes `STEM.crt`/`STEM.key` for `cn` (also a DNS name, with `localhost` and
    /// 127.0.0.1), and `STEM-ca.crt`.
    fn issue(&self, dir: &Path, stem: &str, cn: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec![cn.to_string(), "localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        // Written whole, then renamed: what a certificate manager does when it rotates.
        write_atomically(&crt, cert.pem().as_bytes());
        write_atomically(&key_path, key.serialize_pem().as_bytes());
        (crt, key_path)
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const RUNNER_TOKEN: &str = "runner-token-0123456789abcdef";
const NIFI_TOKEN: &str = "nifi-token-0123456789abcdef";

struct Served {
    addr: std::net::SocketAddr,
    acked: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(settings: SecuritySettings, dir: &Path, bind: &str) -> Result<Served, ServeError> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let node = Node::source(Camera {
        acked: acked.clone(),
    });
    let security = Security::load(&settings, dir)?;
    let options = ServeOptions {
        node_id: "camera".into(),
        max_message_bytes: 1024 * 1024,
        max_in_flight: 8,
        drain_timeout: Duration::from_secs(1),
        attributes: Default::default(),
        security,
    };
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(
        node,
        options,
        listener,
        stop.clone().cancelled_owned(),
        Vec::new(),
    ));
    // A refusal at start comes back at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if task.is_finished() {
        return Err(task.await.unwrap().unwrap_err());
    }
    Ok(Served {
        addr,
        acked,
        stop,
        task,
    })
}

fn tokens(dir: &Path) -> Vec<TokenSettings> {
    std::fs::write(dir.join("runner.token"), format!("{RUNNER_TOKEN}\n")).unwrap();
    std::fs::write(dir.join("nifi.token"), NIFI_TOKEN).unwrap();
    vec![
        TokenSettings {
            name: "runner".into(),
            file: Some("runner.token".into()),
            env: None,
            rights: vec![Right::Process, Right::Source],
        },
        TokenSettings {
            name: "nifi".into(),
            file: Some("nifi.token".into()),
            env: None,
            rights: vec![Right::Process],
        },
    ]
}

fn tls(dir: &Path, client_ca: Option<PathBuf>) -> TlsSettings {
    TlsSettings {
        cert: dir.join("node.crt"),
        key: dir.join("node.key"),
        client_ca,
        reload_interval: Duration::from_millis(200),
    }
}

/// TLS (`node.crt`) and the runner's and NiFi's tokens, no client certificates.
fn tls_and_tokens(dir: &Path) -> SecuritySettings {
    SecuritySettings {
        tls: Some(tls(dir, None)),
        auth: AuthSettings {
            tokens: tokens(dir),
            certificates: Vec::new(),
        },
        insecure: false,
    }
}

fn channel(addr: std::net::SocketAddr, security: ClientSecurity) -> AuthChannel {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        security,
        ..Default::default()
    };
    loupe_sdk::client::channel(&[format!("https://localhost:{}", addr.port())], &options).unwrap()
}

/// How a call ended, as far as security goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    Unauthenticated,
    Forbidden,
}

fn grpc<T>(result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Served,
        Err(s) if s.code() == Code::Unauthenticated => Outcome::Unauthenticated,
        Err(s) if s.code() == Code::PermissionDenied => Outcome::Forbidden,
        Err(s) => panic!("unexpected answer: {s:?}"),
    }
}

fn flow_file() -> FlowFile {
    FlowFile::create(b"image".to_vec(), HashMap::new())
}

/// Every gRPC method of the port, as (name, what it needs, the call).
async fn grpc_call(name: &str, ch: AuthChannel) -> Outcome {
    match name {
        "Processor/Describe" => grpc(
            ProcessorClient::new(ch)
                .describe(pb::DescribeRequest {})
                .await,
        ),
        "Processor/Process" => grpc(
            ProcessorClient::new(ch)
                .process(pb::ProcessRequest {
                    flow_file: Some(flow_file()),
                    attributes_only: false,
                })
                .await,
        ),
        "Processor/ProcessStream" => {
            let request = tokio_stream::iter(vec![pb::ProcessStreamRequest {
                seq: 1,
                flow_file: Some(flow_file()),
                attributes_only: false,
            }]);
            grpc(ProcessorClient::new(ch).process_stream(request).await)
        }
        "Source/Pull" => grpc(
            SourceClient::new(ch)
                .pull(pb::PullRequest { max: 1, wait_ms: 0 })
                .await,
        ),
        "Source/Ack" => grpc(
            SourceClient::new(ch)
                .ack(pb::AckRequest {
                    accepted: vec!["photo-1".into()],
                    rejected: Vec::new(),
                })
                .await,
        ),
        "NiFi FlowFileService/Send" => grpc(
            FlowFileServiceClient::new(ch)
                .send(FlowFileRequest {
                    id: 1,
                    attributes: HashMap::new(),
                    content: b"image".to_vec().into(),
                })
                .await,
        ),
        "Health/Check" => grpc(
            tonic_health::pb::health_client::HealthClient::new(ch)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await,
        ),
        "Reflection" => {
            use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::v1::{
                ServerReflectionRequest, server_reflection_request::MessageRequest,
            };
            let request = tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }]);
            grpc(
                ServerReflectionClient::new(ch)
                    .server_reflection_info(request)
                    .await,
            )
        }
        other => panic!("no such call {other}"),
    }
}

const GRPC_CALLS: [(&str, Option<Right>, bool); 8] = [
    // (call, right needed, open to anyone)
    ("Processor/Describe", None, false),
    ("Processor/Process", Some(Right::Process), false),
    ("Processor/ProcessStream", Some(Right::Process), false),
    ("Source/Pull", Some(Right::Source), false),
    ("Source/Ack", Some(Right::Source), false),
    ("NiFi FlowFileService/Send", Some(Right::Process), false),
    ("Health/Check", None, true),
    ("Reflection", None, false),
];

const HTTP_CALLS: [(&str, &str, Option<Right>, bool); 3] = [
    ("POST", "/process", Some(Right::Process), false),
    ("GET", "/describe", None, false),
    ("GET", "/health", None, true),
];

/// One HTTP/1.1 request over TLS (what NiFi's InvokeHTTP sends); the status code.
async fn https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let body = if method == "POST" { "image" } else { "" };
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"))
}

#[tokio::test]
async fn every_front_end_refuses_calls_without_the_right_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("plant CA");
    ca.issue(dir.path(), "node", "camera");
    let ca_file = ca.write(dir.path(), "ca.crt");
    let settings = tls_and_tokens(dir.path());
    // Beyond loopback: TLS and tokens make it acceptable.
    let served = start(settings, dir.path(), "0.0.0.0:0").await.unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], served.addr.port()).into();

    // (who, token, rights)
    let callers: [(&str, Option<&str>, &[Right]); 4] = [
        ("no credentials", None, &[]),
        ("a wrong token", Some("wrong-token-0123456789abcdef"), &[]),
        ("nifi (process only)", Some(NIFI_TOKEN), &[Right::Process]),
        (
            "runner (process and source)",
            Some(RUNNER_TOKEN),
            &[Right::Process, Right::Source],
        ),
    ];
    let mut checked = 0;
    for (who, token, rights) in callers {
        let security = ClientSecurity {
            ca: Some(ca_file.clone()),
            token: token.map(Secret::new),
            ..Default::default()
        };
        let authenticated = !rights.is_empty();
        let expect = |right: Option<Right>, open: bool| {
            if open || (authenticated && right.is_none_or(|r| rights.contains(&r))) {
                Outcome::Served
            } else if authenticated {
                Outcome::Forbidden
            } else {
                Outcome::Unauthenticated
            }
        };
        for (call, right, open) in GRPC_CALLS {
            let got = grpc_call(call, channel(addr, security.clone())).await;
            assert_eq!(got, expect(right, open), "gRPC {call} by {who}");
            checked += 1;
        }
        for (method, path, right, open) in HTTP_CALLS {
            let authorization = token.map(|t| format!("Bearer {t}"));
            let status = https(addr, &ca.pem, method, path, authorization.as_deref()).await;
            let got = match status {
                401 => Outcome::Unauthenticated,
                403 => Outcome::Forbidden,
                200..=299 => Outcome::Served,
                other => panic!("HTTP {method} {path} by {who}: unexpected {other}"),
            };
            assert_eq!(got, expect(right, open), "HTTP {method} {path} by {who}");
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * (GRPC_CALLS.len() + HTTP_CALLS.len()));
    // Only the runner's acknowledgement reached the camera: no one else deleted a photo.
    assert_eq!(*served.acked.lock().unwrap(), vec!["photo-1".to_string()]);

    // The runner's client end to end: RemoteNode with a token over TLS.
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        security: ClientSecurity {
            ca: Some(ca_file.clone()),
            token: Some(Secret::new(RUNNER_TOKEN)),
            ..Default::default()
        },
        ..Default::default()
    };
    let endpoint = format!("https://localhost:{}", addr.port());
    let node = RemoteNode::connect(std::slice::from_ref(&endpoint), &options)
        .await
        .unwrap();
    assert_eq!(node.description().node_type, "camera");
    // Without the token the client says the node refused it, at once.
    let refused = RemoteNode::connect(
        &[endpoint],
        &ClientOptions {
            security: ClientSecurity {
                ca: Some(ca_file),
                ..Default::default()
            },
            ..options
        },
    )
    .await
    .err()
    .expect("refused");
    assert!(refused.to_string().contains("refused"), "{refused}");
    served.stop.cancel();
}

#[tokio::test]
async fn mutual_tls_names_callers_by_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("plant CA");
    ca.issue(dir.path(), "node", "camera");
    ca.issue(dir.path(), "runner", "runner");
    ca.issue(dir.path(), "nifi", "nifi");
    let stranger_ca = Ca::new("someone else's CA");
    stranger_ca.issue(dir.path(), "stranger", "runner");
    let ca_file = ca.write(dir.path(), "ca.crt");
    let settings = SecuritySettings {
        tls: Some(tls(dir.path(), Some(ca_file.clone()))),
        auth: AuthSettings {
            tokens: Vec::new(),
            certificates: vec![
                CertificateRights {
                    subject: "runner".into(),
                    rights: vec![Right::Process, Right::Source],
                },
                CertificateRights {
                    subject: "nifi".into(),
                    rights: vec![Right::Process],
                },
            ],
        },
        insecure: false,
    };
    let served = start(settings, dir.path(), "127.0.0.1:0").await.unwrap();
    let as_client = |stem: Option<&str>| ClientSecurity {
        ca: Some(ca_file.clone()),
        cert: stem.map(|s| dir.path().join(format!("{s}.crt"))),
        key: stem.map(|s| dir.path().join(format!("{s}.key"))),
        ..Default::default()
    };
    let pull = |security| grpc_call("Source/Pull", channel(served.addr, security));
    assert_eq!(pull(as_client(Some("runner"))).await, Outcome::Served);
    assert_eq!(pull(as_client(Some("nifi"))).await, Outcome::Forbidden);
    assert_eq!(
        grpc_call(
            "Processor/Process",
            channel(served.addr, as_client(Some("nifi")))
        )
        .await,
        Outcome::Served
    );
    // No certificate, or one from another CA: the handshake itself fails.
    for stem in [None, Some("stranger")] {
        let mut client = ProcessorClient::new(channel(served.addr, as_client(stem)));
        let err = client
            .describe(pb::DescribeRequest {})
            .await
            .expect_err("refused at the handshake");
        // TLS 1.3 sends the refusal as an alert after the client's half of the handshake.
        assert!(
            matches!(err.code(), Code::Unavailable | Code::Unknown)
                && format!("{err:?}").to_lowercase().contains("alert"),
            "{stem:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn certificates_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    old_ca.issue(dir.path(), "node", "camera");
    let old_ca_file = old_ca.write(dir.path(), "old-ca.crt");
    let settings = tls_and_tokens(dir.path());
    let served = start(settings, dir.path(), "127.0.0.1:0").await.unwrap();
    let trusting = |ca: &PathBuf| ClientSecurity {
        ca: Some(ca.clone()),
        token: Some(Secret::new(RUNNER_TOKEN)),
        ..Default::default()
    };
    let describe = |security| async move {
        ProcessorClient::new(channel(served.addr, security))
            .describe(pb::DescribeRequest {})
            .await
    };
    describe(trusting(&old_ca_file)).await.unwrap();

    let new_ca = Ca::new("new CA");
    let new_ca_file = new_ca.write(dir.path(), "new-ca.crt");
    new_ca.issue(dir.path(), "node", "camera");
    let mut rotated = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if describe(trusting(&new_ca_file)).await.is_ok() {
            rotated = true;
            break;
        }
    }
    assert!(rotated, "the new certificate was not picked up");
    assert!(describe(trusting(&old_ca_file)).await.is_err());
    assert!(!served.task.is_finished());
}

#[tokio::test]
async fn https_against_a_plaintext_node_fails_naming_tls() {
    let dir = tempfile::tempdir().unwrap();
    let served = start(SecuritySettings::default(), dir.path(), "127.0.0.1:0")
        .await
        .unwrap();
    let ca = Ca::new("plant CA");
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        security: ClientSecurity {
            ca: Some(ca.write(dir.path(), "ca.crt")),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = RemoteNode::connect(&[format!("https://{}", served.addr)], &options)
        .await
        .err()
        .expect("a plaintext node cannot answer TLS");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn beyond_loopback_a_node_needs_tls_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("plant CA");
    ca.issue(dir.path(), "node", "camera");
    let base = dir.path().to_path_buf();
    let refused = |settings| {
        let base = base.clone();
        async move {
            start(settings, &base, "0.0.0.0:0")
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let nothing = refused(SecuritySettings::default()).await.expect("refused");
    assert!(nothing.contains("without TLS and credentials"), "{nothing}");
    let tls_only = SecuritySettings {
        tls: Some(tls(dir.path(), None)),
        ..Default::default()
    };
    let message = refused(tls_only).await.expect("refused");
    assert!(message.contains("without credentials"), "{message}");
    let tokens_only = SecuritySettings {
        auth: AuthSettings {
            tokens: tokens(dir.path()),
            certificates: Vec::new(),
        },
        ..Default::default()
    };
    let message = refused(tokens_only).await.expect("refused");
    assert!(message.contains("without TLS"), "{message}");
    let insecure = SecuritySettings {
        insecure: true,
        ..Default::default()
    };
    assert_eq!(refused(insecure).await, None, "insecure: true starts");
}
