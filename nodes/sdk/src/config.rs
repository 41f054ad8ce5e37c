//! Layered configuration of a node served alone (`loupe serve`).
//!
//! Layers, lowest first (later layers win), as implemented in [`load`]:
//! 1. built-in defaults ([`ServeConfig::default`]);
//! 2. the YAML file given with `--config`;
//! 3. environment variables `LOUPE_*`, nested keys joined by `__`
//!    (`LOUPE_MAX_IN_FLIGHT=8`, `LOUPE_SETTINGS__PATH=/data/report.jsonl`);
//! 4. command-line flags (`--listen`, `--set key=value`).
//!
//! Values from variables and flags take the type their key has in the schema
//! ([`typed_override`]): a text setting stays text (`007`), a number is parsed.

pub mod duration;
mod typed_override;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serve::{Security, SecurityError, ServeOptions};

/// Configuration of one served node.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on, `HOST:PORT` (port 0 picks a free one).
    pub listen: String,
    /// Name of this node in logs and traces; defaults to the node type.
    pub node_id: Option<String>,
    /// Largest gRPC message accepted or sent, in bytes (default 64 MiB; gRPC's usual 4 MiB
    /// rejects camera images).
    pub max_message_bytes: usize,
    /// Most FlowFiles processed at once; further requests are answered RESOURCE_EXHAUSTED
    /// so that callers back off and retry.
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight work to finish, e.g. `30s`.
    #[serde(with = "crate::config::duration")]
    #[schemars(with = "String")]
    pub drain_timeout: Duration,
    /// Limits on every FlowFile's attributes, in and out (over them: `failure`, the reason
    /// naming the attribute). Default 256 attributes, 64 KiB per value, 1 MiB in all.
    pub attributes: crate::invoke::AttributeLimits,
    /// TLS on the port (`cert`, `key`, optional `client_ca` for mutual TLS,
    /// `reload_interval`). Absent: plaintext — refused beyond loopback unless `insecure`.
    pub tls: Option<crate::serve::TlsSettings>,
    /// Credentials callers must present: bearer `tokens` (from a file or a variable, with
    /// rights `process` and/or `source`) and rights per client-certificate subject.
    pub auth: crate::serve::AuthSettings,
    /// Listen beyond loopback without TLS or credentials (said loudly at every start).
    pub insecure: bool,
    /// The node type's own settings.
    pub settings: serde_json::Value,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:50051".into(),
            node_id: None,
            max_message_bytes: crate::DEFAULT_MAX_MESSAGE_BYTES,
            max_in_flight: 64,
            drain_timeout: Duration::from_secs(30),
            attributes: crate::invoke::AttributeLimits::default(),
            tls: None,
            auth: crate::serve::AuthSettings::default(),
            insecure: false,
            settings: serde_json::Value::Object(Default::default()),
        }
    }
}

impl ServeConfig {
    /// The port's security settings.
    pub fn security(&self) -> crate::serve::SecuritySettings {
        crate::serve::SecuritySettings {
            tls: self.tls.clone(),
            auth: self.auth.clone(),
            insecure: self.insecure,
        }
    }
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `--set` flag was not `key=value`.
    #[error("--set expects key=value, got `{0}`")]
    BadOverride(String),
    /// A layer could not be read or merged, or the result has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
}

/// Loads the layered configuration. `overrides` are `key=value` pairs (dotted keys for
/// nesting: `settings.path=/tmp/x`), applied last, each value typed by its key's schema
/// (`settings_schema`, the node type's, for `settings.*`; [`ServeConfig`]'s for the rest);
/// `listen`, if given, beats all layers.
pub fn load(
    file: Option<&Path>,
    listen: Option<&str>,
    overrides: &[String],
    settings_schema: Option<&serde_json::Value>,
) -> Result<ServeConfig, ConfigError> {
    let serve_schema = serve_schema();
    let defaults = config::Config::try_from(&ServeConfig::default())?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(file) = file {
        builder = builder.add_source(
            config::File::from(file)
                .format(config::FileFormat::Yaml)
                .required(true),
        );
    }
    // Environment variables, then flags: both typed by their key's schema. Only variables
    // naming a configuration key count: LOUPE_LOG, LOUPE_LINT and the like belong to other
    // tools and must not be read as unknown keys.
    let mut variables: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| is_config_variable(&serve_schema, k))
        .map(|(k, v)| (variable_key(&k), v))
        .collect();
    variables.sort();
    for (key, value) in &variables {
        builder = builder.set_override(key, typed(settings_schema, &serve_schema, key, value))?;
    }
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
        let key = k.trim();
        builder =
            builder.set_override(key, typed(settings_schema, &serve_schema, key, v.trim()))?;
    }
    if let Some(listen) = listen {
        builder = builder.set_override("listen", listen)?;
    }
    Ok(builder.build()?.try_deserialize()?)
}

/// `raw` typed by the schema of the dotted `key`: the node type's settings schema under
/// `settings`, [`ServeConfig`]'s elsewhere.
fn typed(
    settings_schema: Option<&serde_json::Value>,
    serve_schema: &serde_json::Value,
    key: &str,
    raw: &str,
) -> config::Value {
    let path: Vec<&str> = key.split('.').collect();
    match path.split_first() {
        Some((&"settings", rest)) => typed_override::typed_value(settings_schema, rest, raw),
        _ => typed_override::typed_value(Some(serve_schema), &path, raw),
    }
}

/// The dotted key a configuration variable names: `LOUPE_SETTINGS__MAX_AGE` ->
/// `settings.max_age`.
fn variable_key(name: &str) -> String {
    name.trim_start_matches("LOUPE_")
        .split("__")
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// The JSON Schema of [`ServeConfig`].
fn serve_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ServeConfig)).unwrap_or_default()
}

/// Whether `name` names a configuration key: `LOUPE_<KEY>` for a top-level key of
/// [`ServeConfig`] (from its schema, so the list cannot drift from the type), or
/// `LOUPE_<KEY>__...` for a key nested under one.
fn is_config_variable(schema: &serde_json::Value, name: &str) -> bool {
    let Some(rest) = name.strip_prefix("LOUPE_") else {
        return false;
    };
    let Some(keys) = schema.get("properties").and_then(|p| p.as_object()) else {
        return false;
    };
    keys.keys().any(|key| {
        let key = key.to_uppercase();
        rest == key || rest.strip_prefix(&key).is_some_and(|r| r.starts_with("__"))
    })
}

impl ServeOptions {
    /// Options from a loaded [`ServeConfig`]; `node_type` names the node when no id is set.
    /// Loads the TLS files and tokens it names (relative paths against `base`).
    pub fn from_config(
        config: &ServeConfig,
        node_type: &str,
        base: &Path,
    ) -> Result<Self, SecurityError> {
        Ok(ServeOptions {
            node_id: config
                .node_id
                .clone()
                .unwrap_or_else(|| node_type.to_string()),
            max_message_bytes: config.max_message_bytes,
            max_in_flight: config.max_in_flight.max(1),
            drain_timeout: config.drain_timeout,
            attributes: config.attributes,
            security: Security::load(&config.security(), base)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.yaml");
        std::fs::write(
            &file,
            "listen: 0.0.0.0:9000\nmax_in_flight: 8\ndrain_timeout: 5s\nattributes:\n  max_count: 16\nsettings:\n  path: a.jsonl\n  depth: 2\n",
        )
        .unwrap();
        let cfg = load(Some(&file), None, &["settings.depth=3".into()], None).unwrap();
        assert_eq!(cfg.attributes.max_count, 16);
        assert_eq!(
            cfg.attributes.max_value_bytes,
            crate::AttributeLimits::DEFAULT_MAX_VALUE_BYTES,
            "unset limits keep their defaults"
        );
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.max_in_flight, 8);
        assert_eq!(cfg.drain_timeout, Duration::from_secs(5));
        assert_eq!(cfg.max_message_bytes, crate::DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(cfg.settings["path"], "a.jsonl");
        assert_eq!(cfg.settings["depth"], 3);
        let cfg = load(Some(&file), Some("127.0.0.1:0"), &[], None).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:0");
    }

    #[test]
    fn only_configuration_variables_are_read() {
        let schema = serve_schema();
        let is_config_variable = |name: &str| is_config_variable(&schema, name);
        assert!(is_config_variable("LOUPE_MAX_IN_FLIGHT"));
        assert!(is_config_variable("LOUPE_SETTINGS__PATH"));
        assert!(!is_config_variable("LOUPE_LINT"));
        assert!(!is_config_variable("LOUPE_LOG"));
        // Every top-level field counts, the list is the type's.
        for key in [
            "LOUPE_LISTEN",
            "LOUPE_NODE_ID",
            "LOUPE_DRAIN_TIMEOUT",
            "LOUPE_INSECURE",
        ] {
            assert!(is_config_variable(key), "{key}");
        }
        assert!(is_config_variable("LOUPE_TLS__CERT"));
        assert!(!is_config_variable("LOUPE_LISTENER"));
        assert!(!is_config_variable("LOUPE_SETTINGSX__A"));
        assert_eq!(variable_key("LOUPE_SETTINGS__MAX_AGE"), "settings.max_age");
        assert_eq!(variable_key("LOUPE_MAX_IN_FLIGHT"), "max_in_flight");
    }

    #[test]
    fn set_values_take_their_keys_types() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"line": {"type": "string"}, "depth": {"type": "integer"}}
        });
        let overrides = [
            "settings.line=007".to_string(),
            "settings.depth=3".into(),
            "node_id=42".into(),
            "max_in_flight=9".into(),
        ];
        let cfg = load(None, None, &overrides, Some(&schema)).unwrap();
        assert_eq!(
            cfg.settings["line"], "007",
            "a string setting stays a string"
        );
        assert_eq!(cfg.settings["depth"], 3);
        assert_eq!(cfg.node_id.as_deref(), Some("42"));
        assert_eq!(cfg.max_in_flight, 9);
    }

    #[test]
    fn unknown_keys_and_bad_overrides_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.yaml");
        std::fs::write(&file, "lisen: x\n").unwrap();
        assert!(load(Some(&file), None, &[], None).is_err());
        assert!(matches!(
            load(None, None, &["novalue".into()], None),
            Err(ConfigError::BadOverride(_))
        ));
    }
}
