//! Node types: typed settings, pure validation, declared relationships, and building.
//!
//! A node crate implements [`NodeKind`] (its settings struct is its factory, as in Vector);
//! [`factory`] turns it into an object-safe [`NodeFactory`] that the flow compiler and
//! `loupe serve` look up by type name in a [`Registry`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::error::NodeError;
use crate::pb::Relationship;
use crate::processor::Node;

/// A located problem with a node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// Dotted path inside the settings (`""` for the settings object itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl SettingsError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Deserializes settings, reporting where a problem is (unknown fields are errors when the
/// settings type says `#[serde(deny_unknown_fields)]`, as every Loupe settings type does).
pub fn parse_settings<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, SettingsError> {
    let value = if value.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        value.clone()
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        // Point unknown fields at the field itself rather than at its parent object.
        match unknown_field_name(&inner) {
            Some(field) if path.is_empty() => SettingsError::new(field, inner),
            Some(field) if path != field && !path.ends_with(&format!(".{field}")) => {
                SettingsError::new(format!("{path}.{field}"), inner)
            }
            _ => SettingsError::new(path, inner),
        }
    })
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// What building a node may use.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The node's id in the flow (or its type when served alone).
    pub node_id: String,
    /// Directory that relative paths in settings are resolved against (the flow file's).
    pub base_dir: PathBuf,
    /// Largest FlowFile the node accepts.
    pub max_message_bytes: usize,
}

impl BuildContext {
    /// Resolves a settings path against [`BuildContext::base_dir`].
    pub fn resolve(&self, path: impl AsRef<std::path::Path>) -> PathBuf {
        let path = path.as_ref();
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// A node type, implemented by each node crate.
#[async_trait]
pub trait NodeKind: Send + Sync + 'static {
    /// The type name used in flow files (`capture`, `classify`, ...).
    const TYPE: &'static str;
    /// True for nodes that bring data into a flow.
    const IS_SOURCE: bool = false;
    /// The settings; every field documented, unknown fields denied.
    type Settings: DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// Relationships declared with these settings.
    fn relationships(settings: &Self::Settings) -> Vec<Relationship>;

    /// Extra checks beyond deserialization; pure, no I/O.
    fn validate(_settings: &Self::Settings) -> Vec<SettingsError> {
        Vec::new()
    }

    /// Acquires resources and builds the node.
    async fn build(settings: Self::Settings, ctx: &BuildContext) -> Result<Node, NodeError>;
}

/// The description a built node of kind `K` answers `Describe` with: its type, the SDK
/// version, the relationships declared for `settings`, its settings schema, whether it is a
/// source and the context's largest message. Readiness is filled in by whoever serves it.
pub fn describe<K: NodeKind>(settings: &K::Settings, ctx: &BuildContext) -> crate::NodeDescription {
    crate::NodeDescription {
        node_type: K::TYPE.to_string(),
        version: crate::VERSION.to_string(),
        relationships: K::relationships(settings),
        settings_schema: serde_json::to_string(&schemars::schema_for!(K::Settings))
            .unwrap_or_default(),
        readiness: 0,
        is_source: K::IS_SOURCE,
        max_message_bytes: ctx.max_message_bytes as u64,
    }
}

/// Object-safe view of a [`NodeKind`].
#[async_trait]
pub trait NodeFactory: Send + Sync {
    /// The type name.
    fn node_type(&self) -> &'static str;
    /// True for source nodes.
    fn is_source(&self) -> bool;
    /// JSON Schema of the settings.
    fn settings_schema(&self) -> serde_json::Value;
    /// Validates settings and returns the declared relationships, or every problem found.
    fn check(&self, settings: &serde_json::Value) -> Result<Vec<Relationship>, Vec<SettingsError>>;
    /// Validates settings and builds the node.
    async fn build(
        &self,
        settings: &serde_json::Value,
        ctx: &BuildContext,
    ) -> Result<Node, NodeError>;
}

struct Factory<K>(PhantomData<fn() -> K>);

/// The [`NodeFactory`] of a [`NodeKind`].
pub fn factory<K: NodeKind>() -> Arc<dyn NodeFactory> {
    Arc::new(Factory::<K>(PhantomData))
}

fn typed<K: NodeKind>(settings: &serde_json::Value) -> Result<K::Settings, Vec<SettingsError>> {
    let parsed: K::Settings = parse_settings(settings).map_err(|e| vec![e])?;
    let problems = K::validate(&parsed);
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

#[async_trait]
impl<K: NodeKind> NodeFactory for Factory<K> {
    fn node_type(&self) -> &'static str {
        K::TYPE
    }

    fn is_source(&self) -> bool {
        K::IS_SOURCE
    }

    fn settings_schema(&self) -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(K::Settings)).unwrap_or_default()
    }

    fn check(&self, settings: &serde_json::Value) -> Result<Vec<Relationship>, Vec<SettingsError>> {
        typed::<K>(settings).map(|s| K::relationships(&s))
    }

    async fn build(
        &self,
        settings: &serde_json::Value,
        ctx: &BuildContext,
    ) -> Result<Node, NodeError> {
        let parsed = typed::<K>(settings).map_err(|errors| {
            NodeError::Settings(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        K::build(parsed, ctx).await
    }
}

/// The node types a `loupe` binary knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn NodeFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node type.
    pub fn register(&mut self, factory: Arc<dyn NodeFactory>) -> &mut Self {
        self.factories.insert(factory.node_type(), factory);
        self
    }

    /// Adds a [`NodeKind`], builder style.
    pub fn with<K: NodeKind>(mut self) -> Self {
        self.register(factory::<K>());
        self
    }

    /// Looks a node type up.
    pub fn get(&self, node_type: &str) -> Option<&Arc<dyn NodeFactory>> {
        self.factories.get(node_type)
    }

    /// Known type names, sorted.
    pub fn types(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        threshold: f32,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    #[test]
    fn settings_errors_are_located() {
        let e = parse_settings::<S>(&serde_json::json!({"threshold": 1, "bogus": 2})).err();
        assert_eq!(e.unwrap().path, "bogus");
        let e = parse_settings::<S>(&serde_json::json!({"threshold": 1, "inner": {"b": 1}})).err();
        assert_eq!(e.unwrap().path, "inner.b");
        let e = parse_settings::<S>(&serde_json::json!({"threshold": "x"})).err();
        assert_eq!(e.unwrap().path, "threshold");
    }
}
