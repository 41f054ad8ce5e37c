//! Settings of the notifications: which sinks, how hard to retry, the cooldown, the queue.

use std::fmt;
use std::time::Duration;

use http::Uri;
use loupe_sdk::SettingsError;
use schemars::JsonSchema;
use serde::Deserialize;

use super::topic::TopicTemplate;

/// The most pending notices `queue` may allow (per sink).
pub const MAX_QUEUE: usize = 100_000;

/// Notification settings: at least one of `webhook` and `mqtt`, plus the cooldown and the
/// queue bound.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// POST each notice as JSON to an HTTP endpoint, signed with HMAC-SHA256.
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,

    /// Publish each notice as JSON to an MQTT broker.
    #[serde(default)]
    pub mqtt: Option<MqttSettings>,

    /// Quiet time per key (line, defect kind) (humantime, e.g. `5m`; `0s` turns it off).
    /// The first notice for a key goes out at once; later ones within the cooldown are
    /// suppressed and counted, and the first notice after it carries the count in
    /// `suppressed`. The defect kind is the sorted, de-duplicated set of `defects`.
    #[serde(default = "default_cooldown", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub cooldown: Duration,

    /// Most notices waiting to be delivered, per sink (1 to 100000). When a sink's queue is
    /// full, new notices for it are dropped with a warning and counted (`dropped`): the
    /// inspection path never waits for a notification.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

/// Where and how notices are POSTed.
///
/// Each request carries `Content-Type: application/json`, `X-Loupe-Delivery` (the notice's
/// `id`, the same on every retry), `X-Loupe-Attempt` (1, 2, …), `X-Loupe-Timestamp` (Unix
/// seconds when the attempt was made) and `X-Loupe-Signature: sha256=<hex>`, the lowercase
/// hex HMAC-SHA256, keyed with `secret`, of the bytes `<X-Loupe-Timestamp>.<body>` (the
/// timestamp as sent, one `.`, then the exact body). A receiver recomputes it over the raw
/// body, compares in constant time and rejects old timestamps to refuse replays.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Endpoint, `https://host[:port]/path` (always TLS) or `http://host[:port]/path`.
    pub url: String,

    /// How an `https://` receiver's certificate is checked: `ca`, a PEM CA file (relative to
    /// the flow file's directory); absent: the operating system's trusted roots.
    #[serde(default)]
    pub tls: loupe_sdk::https::ClientTlsSettings,

    /// Key of the HMAC-SHA256 signature (at least 16 bytes; 32 random bytes recommended).
    /// Never logged.
    pub secret: String,

    /// Longest one attempt may take, connecting included (humantime, e.g. `10s`).
    #[serde(default = "default_timeout", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,

    /// Attempts per notice, the first included (at least 1). Connection errors, timeouts,
    /// `408`, `429` and `5xx` answers are retried; other non-2xx answers are not.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,

    /// Wait before the second attempt (humantime); it doubles after every failed attempt.
    /// A `Retry-After` in seconds on a `429` or `503` answer is honoured when longer.
    #[serde(
        default = "default_initial_backoff",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,

    /// Longest wait between two attempts (humantime).
    #[serde(default = "default_max_backoff", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// Where and how notices are published over MQTT 3.1.1.
///
/// The connection is opened in the background and re-opened (with growing pauses, up to
/// 30 s) whenever it is lost; a notice attempted while it is down fails that attempt and is
/// retried like a webhook's.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// Broker, `mqtt://host[:port]` (port 1883 by default). Plain TCP only (no `mqtts`).
    pub url: String,

    /// Topic of each notice. `{line}`, `{verdict}` and `{product_id}` are replaced with the
    /// notice's values (`/`, `+`, `#` in them become `_`; an empty value becomes `unknown`);
    /// write `{{` and `}}` for literal braces. No wildcards (`+`, `#`).
    #[serde(default = "default_topic")]
    pub topic: String,

    /// Quality of service: `0` (at most once: sent when written to the connection) or `1`
    /// (at least once: sent when the broker acknowledged it).
    #[serde(default = "default_qos")]
    pub qos: u8,

    /// Client identifier; unique per broker. Default: `loupe-report-<pid>-<random>`.
    #[serde(default)]
    pub client_id: Option<String>,

    /// Ask the broker to keep the last notice of each topic for late subscribers.
    #[serde(default)]
    pub retain: bool,

    /// User name, if the broker requires one.
    #[serde(default)]
    pub username: Option<String>,

    /// Password (with `username`). Never logged.
    #[serde(default)]
    pub password: Option<String>,

    /// Longest one attempt may wait for the notice to be written (QoS 0) or acknowledged
    /// (QoS 1) (humantime).
    #[serde(default = "default_timeout", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub timeout: Duration,

    /// Attempts per notice, the first included (at least 1).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,

    /// Wait before the second attempt (humantime); it doubles after every failed attempt.
    #[serde(
        default = "default_initial_backoff",
        with = "loupe_sdk::config::duration"
    )]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,

    /// Longest wait between two attempts (humantime).
    #[serde(default = "default_max_backoff", with = "loupe_sdk::config::duration")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("url", &self.url)
            .field("topic", &self.topic)
            .field("qos", &self.qos)
            .field("client_id", &self.client_id)
            .field("retain", &self.retain)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}

fn default_queue() -> usize {
    256
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

fn default_topic() -> String {
    "loupe/defects/{line}".to_string()
}

fn default_qos() -> u8 {
    1
}

impl NotifySettings {
    /// Every problem with these settings that needs no I/O to find; paths are relative to
    /// these settings (`webhook.url`, `mqtt.qos`, `queue`, …).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if self.webhook.is_none() && self.mqtt.is_none() {
            problems.push(SettingsError::new(
                "",
                "no sink: configure `webhook`, `mqtt`, or both",
            ));
        }
        if self.queue == 0 || self.queue > MAX_QUEUE {
            problems.push(SettingsError::new(
                "queue",
                format!("must be 1 to {MAX_QUEUE}, not {}", self.queue),
            ));
        }
        if let Some(w) = &self.webhook {
            if let Err(e) = parse_webhook_url(&w.url) {
                problems.push(SettingsError::new("webhook.url", e));
            }
            if w.secret.len() < 16 {
                problems.push(SettingsError::new(
                    "webhook.secret",
                    format!(
                        "is {} bytes; use at least 16 (32 random bytes recommended)",
                        w.secret.len()
                    ),
                ));
            }
            retry_problems(
                "webhook",
                w.timeout,
                w.max_attempts,
                w.initial_backoff,
                w.max_backoff,
                &mut problems,
            );
        }
        if let Some(m) = &self.mqtt {
            if let Err(e) = parse_mqtt_url(&m.url) {
                problems.push(SettingsError::new("mqtt.url", e));
            }
            if let Err(e) = TopicTemplate::parse(&m.topic) {
                problems.push(SettingsError::new("mqtt.topic", e));
            }
            if m.qos > 1 {
                problems.push(SettingsError::new(
                    "mqtt.qos",
                    format!("must be 0 or 1, not {} (QoS 2 is not supported)", m.qos),
                ));
            }
            if let Some(id) = &m.client_id
                && (id.is_empty() || id.len() > 256)
            {
                problems.push(SettingsError::new(
                    "mqtt.client_id",
                    "must be 1 to 256 bytes (leave it out for a generated one)",
                ));
            }
            if m.password.is_some() && m.username.is_none() {
                problems.push(SettingsError::new("mqtt.password", "needs `username` too"));
            }
            retry_problems(
                "mqtt",
                m.timeout,
                m.max_attempts,
                m.initial_backoff,
                m.max_backoff,
                &mut problems,
            );
        }
        problems
    }
}

fn retry_problems(
    sink: &str,
    timeout: Duration,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    problems: &mut Vec<SettingsError>,
) {
    if timeout.is_zero() {
        problems.push(SettingsError::new(
            format!("{sink}.timeout"),
            "must be more than 0s",
        ));
    }
    if max_attempts == 0 {
        problems.push(SettingsError::new(
            format!("{sink}.max_attempts"),
            "must be at least 1",
        ));
    }
    if initial_backoff > max_backoff {
        problems.push(SettingsError::new(
            format!("{sink}.initial_backoff"),
            format!(
                "{} is longer than `max_backoff` ({})",
                humantime::format_duration(initial_backoff),
                humantime::format_duration(max_backoff)
            ),
        ));
    }
}

/// Checks a webhook URL: `https://` (TLS) or `http://`, with a host.
pub(crate) fn parse_webhook_url(url: &str) -> Result<Uri, String> {
    loupe_sdk::https::parse_http_url(url, "https://host[:port]/path")
}

/// Checks a broker URL, `mqtt://host[:port]`, and returns host and port.
pub(crate) fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL ({e}); write `mqtt://host[:port]`"))?;
    match uri.scheme_str() {
        Some("mqtt" | "tcp") => {}
        Some("mqtts" | "ssl" | "wss" | "ws") => {
            return Err(format!(
                "`{url}`: only plain TCP (`mqtt://`) is supported, not TLS or websockets"
            ));
        }
        _ => return Err(format!("`{url}` must start with `mqtt://`")),
    }
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "`{url}`: a broker URL has no path or query (the topic is the `topic` setting)"
        ));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), uri.port_u16().unwrap_or(1883)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_sdk::factory::parse_settings;
    use serde_json::json;

    fn paths(s: &NotifySettings) -> Vec<String> {
        s.problems().into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn defaults() {
        let s: NotifySettings = parse_settings(&json!({
            "webhook": {"url": "http://hooks.local:8080/defects", "secret": "0123456789abcdef"},
            "mqtt": {"url": "mqtt://broker"},
        }))
        .unwrap();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        assert_eq!(s.cooldown, Duration::from_secs(300));
        assert_eq!(s.queue, 256);
        let w = s.webhook.as_ref().unwrap();
        assert_eq!((w.max_attempts, w.timeout), (5, Duration::from_secs(10)));
        let m = s.mqtt.as_ref().unwrap();
        assert_eq!(
            (m.qos, m.retain, m.topic.as_str()),
            (1, false, "loupe/defects/{line}")
        );
        assert_eq!(
            parse_mqtt_url(&m.url).unwrap(),
            ("broker".to_string(), 1883)
        );
        // The secret never shows in logs.
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        // Every field is described in the schema.
        let schema = serde_json::to_string(&schemars::schema_for!(NotifySettings)).unwrap();
        assert!(
            schema.contains("HMAC-SHA256") && schema.contains("Quiet time"),
            "{schema}"
        );
    }

    #[test]
    fn problems_have_paths() {
        let s: NotifySettings = parse_settings(&json!({
            "webhook": {"url": "ftp://x/y", "secret": "short", "max_attempts": 0,
                        "initial_backoff": "2m", "max_backoff": "1m", "timeout": "0s"},
            "mqtt": {"url": "mqtt://b:1883/path", "topic": "a/{nope}/#", "qos": 2,
                     "client_id": "", "password": "p"},
            "queue": 0,
        }))
        .unwrap();
        assert_eq!(
            paths(&s),
            [
                "queue",
                "webhook.url",
                "webhook.secret",
                "webhook.timeout",
                "webhook.max_attempts",
                "webhook.initial_backoff",
                "mqtt.url",
                "mqtt.topic",
                "mqtt.qos",
                "mqtt.client_id",
                "mqtt.password",
            ]
        );
        let scheme = &s.problems()[1].message;
        assert!(scheme.contains("must start with `https://`"), "{scheme}");

        let s: NotifySettings = parse_settings(&json!({})).unwrap();
        assert_eq!(paths(&s), [""]);
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused() {
        let e = parse_settings::<NotifySettings>(&json!({"webhook": {"url": "http://x",
            "secret": "0123456789abcdef", "retries": 3}}))
        .unwrap_err();
        assert_eq!(e.path, "webhook.retries");
        let e = parse_settings::<NotifySettings>(&json!({"cooldown": "soon"})).unwrap_err();
        assert_eq!(e.path, "cooldown");
        let e =
            parse_settings::<NotifySettings>(&json!({"mqtt": {"url": "mqtt://b", "qos": "high"}}))
                .unwrap_err();
        assert_eq!(e.path, "mqtt.qos");
    }

    #[test]
    fn urls() {
        assert!(parse_webhook_url("http://127.0.0.1:9/hook").is_ok());
        assert!(parse_webhook_url("https://mes.plant/hooks/loupe").is_ok());
        assert!(
            parse_webhook_url("ftp://x/")
                .unwrap_err()
                .contains("http://")
        );
        assert!(
            parse_webhook_url("not a url")
                .unwrap_err()
                .contains("not a URL")
        );
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".to_string(), 1884)
        );
        assert_eq!(
            parse_mqtt_url("tcp://[::1]").unwrap(),
            ("::1".to_string(), 1883)
        );
        assert!(
            parse_mqtt_url("mqtts://b")
                .unwrap_err()
                .contains("plain TCP")
        );
        assert!(parse_mqtt_url("http://b").unwrap_err().contains("mqtt://"));
    }
}
