//! Serde helpers for human-readable durations (`250ms`, `30s`, `5 min`): `#[serde(with =
//! "loupe_sdk::config::duration")]`. A leaf: every settings type uses it.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes as humantime text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Deserializes humantime text, or a number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(f64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(serde::de::Error::custom),
        Raw::Seconds(s) if s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Raw::Seconds(s) => Err(serde::de::Error::custom(format!("negative duration {s}"))),
    }
}
