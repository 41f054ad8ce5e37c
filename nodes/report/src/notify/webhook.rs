//! The webhook sink: one signed HTTP POST per notice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use loupe_sdk::error::chain;
use loupe_sdk::https::HttpsClient;
use sha2::Sha256;

use super::attempt::{AttemptError, Prepared};
use super::settings::{WebhookSettings, parse_webhook_url};

/// Header with the signature, `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-loupe-signature";
/// Header with the Unix time (seconds) of the attempt; part of the signed bytes.
pub const TIMESTAMP_HEADER: &str = "x-loupe-timestamp";
/// Header with the notice's `id` (the same on every retry: receivers de-duplicate by it).
pub const DELIVERY_HEADER: &str = "x-loupe-delivery";
/// Header with the attempt number, from 1.
pub const ATTEMPT_HEADER: &str = "x-loupe-attempt";

/// Most bytes of an answer read (the rest is not waited for).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The signature header value of `body` sent at `timestamp`: `sha256=` and the lowercase hex
/// HMAC-SHA256, keyed with `secret`, of `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = String::with_capacity(7 + 2 * digest.len());
    text.push_str("sha256=");
    for byte in digest {
        text.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        text.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    text
}

/// A configured webhook.
pub(crate) struct WebhookSink {
    client: HttpsClient<Full<Bytes>>,
    uri: Uri,
    secret: Vec<u8>,
}

impl WebhookSink {
    pub(crate) fn new(settings: &WebhookSettings) -> Result<Self, String> {
        let uri = parse_webhook_url(&settings.url)?;
        // `https://` always TLS, against `tls.ca` or the system's roots.
        let client = loupe_sdk::https::client(&settings.tls, settings.timeout, 1)
            .map_err(|e| format!("webhook.tls: {e}"))?;
        Ok(WebhookSink {
            client,
            uri,
            secret: settings.secret.as_bytes().to_vec(),
        })
    }

    pub(crate) fn url(&self) -> String {
        self.uri.to_string()
    }

    /// One POST; the caller bounds its time.
    pub(crate) async fn attempt(&self, msg: &Prepared, attempt: u32) -> Result<(), AttemptError> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("loupe-report/", env!("CARGO_PKG_VERSION")),
            )
            .header(DELIVERY_HEADER, msg.id.as_str())
            .header(ATTEMPT_HEADER, attempt.to_string())
            .header(TIMESTAMP_HEADER, timestamp.as_str())
            .header(
                SIGNATURE_HEADER,
                signature(&self.secret, &timestamp, &msg.body),
            )
            .body(Full::new(msg.body.clone()))
            .map_err(|e| AttemptError::permanent(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| AttemptError::retryable(format!("request failed: {}", chain(&e))))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|_| {
                status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            });
        // Read (a bounded part of) the answer: lets the connection be reused, and says why.
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&answer);
        let text: String = text.trim().chars().take(200).collect();
        let message = if text.is_empty() {
            format!("receiver answered {status}")
        } else {
            format!("receiver answered {status}: {text}")
        };
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Err(AttemptError {
            message,
            retryable,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The HMAC itself: RFC 4231 test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The signed bytes are `<timestamp>.<body>`: HMAC-SHA256("Jefe", "1700000000.{}"),
        // computed independently with Python's hmac module.
        assert_eq!(
            signature(b"Jefe", "1700000000", b"{}"),
            "sha256=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
    }
}
