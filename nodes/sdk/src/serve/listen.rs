//! Accepting connections on a listener: TCP, `TCP_NODELAY`, and the TLS handshake when the
//! listener has TLS — each handshake in its own task with a timeout and a bound on how many
//! run at once, so a slow or silent client never holds up the others.
//!
//! Every connection carries a [`PeerInfo`] (remote address, TLS, the subject names of a
//! verified client certificate), which the server puts into each request's extensions for
//! the authentication layer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::tls::ReloadingTls;

/// Longest a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 64;
/// Accepted connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 16;

/// Who is on the other end of a connection, as far as the transport tells.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// True when the connection is TLS.
    pub tls: bool,
    /// Subject names of the client's verified certificate (mutual TLS): its common name and
    /// DNS names. Empty without a client certificate.
    pub subjects: Arc<[String]>,
}

/// One accepted connection, plaintext or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP, handshake done.
    Tls(Box<TlsStream<TcpStream>>, Arc<[String]>),
}

impl Conn {
    /// What the server tells its services about this connection.
    pub fn peer(&self) -> PeerInfo {
        match self {
            Conn::Plain(tcp) => PeerInfo {
                remote: tcp.peer_addr().ok(),
                tls: false,
                subjects: Arc::from(Vec::new()),
            },
            Conn::Tls(tls, subjects) => PeerInfo {
                remote: tls.get_ref().0.peer_addr().ok(),
                tls: true,
                subjects: subjects.clone(),
            },
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }
}

/// The accepted connections of a listener, as a stream the server takes.
pub type Incoming = ReceiverStream<io::Result<Conn>>;

/// Starts accepting on `listener` (TLS when `tls` is given); the accept task ends when the
/// returned stream is dropped.
pub fn incoming(listener: TcpListener, tls: Option<Arc<ReloadingTls>>) -> Incoming {
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(accept_loop(listener, tls, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small request/response pairs otherwise wait on Nagle + delayed ACK (~40 ms each).
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls.clone() else {
            if tx.send(Ok(Conn::Plain(tcp))).await.is_err() {
                return;
            }
            continue;
        };
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    drop(permit);
                    let subjects = client_subjects(&stream);
                    let _ = tx.send(Ok(Conn::Tls(Box::new(stream), subjects))).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

/// The common name and DNS names of the client's certificate (already verified by the
/// handshake against the client CA).
fn client_subjects(stream: &TlsStream<TcpStream>) -> Arc<[String]> {
    let Some(cert) = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    else {
        return Arc::from(Vec::new());
    };
    Arc::from(subject_names(cert.as_ref()))
}

/// The common name(s) and DNS subject alternative names of a DER certificate.
fn subject_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_string());
            }
        }
    }
    names
}
