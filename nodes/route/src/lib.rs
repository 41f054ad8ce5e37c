//! # loupe-route
//!
//! The `route` node: sends each FlowFile to named relationships by rules written in CEL
//! (Common Expression Language) over its attributes, and sets its `priority` and other
//! attributes from expressions — so downstream priority-attribute queues order by them.
//!
//! ```yaml
//! - id: route
//!   type: route
//!   settings:
//!     strategy: first            # or `all`: every matching rule gets a copy
//!     rules:
//!       - name: confirmed        # a relationship of this node
//!         when: classify.label == "loose_wire"
//!       - name: cleared
//!         when: camera.verdict == "loose_wire" && classify.label != "loose_wire"
//!     priority: 'classify.label == "loose_wire" ? 1 : 5'
//!     set:
//!       review: 'double(classify.score) < 0.9 ? "yes" : "no"'
//! ```
//!
//! Relationships: one per rule, in order, then `unmatched` (no rule matched) and `failure`
//! (an expression failed at run time: missing attribute, bad number, wrong result type; the
//! reason is in `error.message`). Every FlowFile gets `route` = the relationship it went to.
//! With `strategy: all` the first match keeps the FlowFile and each further match gets a
//! copy (new uuid, same content and attributes).
//!
//! Rules compile when the flow is validated: an invalid expression is a located
//! `loupe validate` error (`settings.rules[1].when`). See `loupe_sdk::expr` for what expressions see.
//!
//! ## Layout
//! One module: the settings ([`RouteSettings`]), the compiled rules and the processor. The
//! expression language itself (compilation, limits, evaluation over attributes) is the SDK's
//! (`loupe_sdk::expr`), shared with the report node's product policy.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use loupe_sdk::{
    BuildContext, ErrorKind, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output,
    ProcessError, Processor, Relationship, SettingsError,
};
use schemars::JsonSchema;
use serde::Deserialize;

use loupe_sdk::expr::{self, Expression, Variables};

/// Relationship of FlowFiles no rule matched.
pub const UNMATCHED: &str = "unmatched";
/// Attribute naming the relationship a FlowFile was routed to.
pub const ROUTE_ATTR: &str = "route";

/// The `route` node type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Route;

/// Settings of a `route` node.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// `first`: the first rule that matches wins; `all`: every matching rule gets the
    /// FlowFile (copies for the second and later matches).
    #[serde(default)]
    pub strategy: Strategy,
    /// The rules, tried in order; each names a relationship of this node.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// CEL expression whose value becomes the `priority` attribute (e.g. `1` for the most
    /// urgent; downstream `priority-attribute` queues serve lower values first).
    #[serde(default)]
    pub priority: Option<String>,
    /// Attributes to set: name -> CEL expression (strings as they are; numbers and booleans
    /// as text). Evaluated before the rules, which see the new values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The relationship FlowFiles matching this rule go to (`[A-Za-z0-9_-]+`; not
    /// `unmatched` or `failure`).
    pub name: String,
    /// CEL condition over the attributes; must give true or false.
    pub when: String,
}

/// How many rules a FlowFile may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The first matching rule only.
    #[default]
    First,
    /// Every matching rule.
    All,
}

#[async_trait]
impl NodeKind for Route {
    const TYPE: &'static str = "route";
    type Settings = RouteSettings;

    fn relationships(settings: &RouteSettings) -> Vec<Relationship> {
        let mut relationships: Vec<Relationship> = settings
            .rules
            .iter()
            .map(|rule| Relationship::new(rule.name.clone(), format!("when {}", rule.when)))
            .collect();
        relationships.push(Relationship::new(UNMATCHED, "No rule matched"));
        relationships.push(Relationship::failure());
        relationships
    }

    fn validate(settings: &RouteSettings) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if settings.rules.is_empty() {
            problems.push(SettingsError::new("rules", "needs at least one rule"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, rule) in settings.rules.iter().enumerate() {
            let name_ok = !rule.name.is_empty()
                && rule
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                problems.push(SettingsError::new(
                    format!("rules[{i}].name"),
                    format!(
                        "`{}` is not a relationship name ([A-Za-z0-9_-]+)",
                        rule.name
                    ),
                ));
            } else if rule.name == UNMATCHED || rule.name == loupe_sdk::FAILURE {
                problems.push(SettingsError::new(
                    format!("rules[{i}].name"),
                    format!("`{}` is reserved", rule.name),
                ));
            } else if !seen.insert(rule.name.as_str()) {
                problems.push(SettingsError::new(
                    format!("rules[{i}].name"),
                    format!("`{}` is used by an earlier rule", rule.name),
                ));
            }
            if let Err(e) = Expression::compile(&rule.when) {
                problems.push(SettingsError::new(format!("rules[{i}].when"), e));
            }
        }
        if let Some(priority) = &settings.priority
            && let Err(e) = Expression::compile(priority)
        {
            problems.push(SettingsError::new("priority", e));
        }
        for (name, expression) in &settings.set {
            if name.is_empty() || name == ROUTE_ATTR {
                problems.push(SettingsError::new(
                    format!("set.{name}"),
                    "this attribute name cannot be set here",
                ));
            }
            if let Err(e) = Expression::compile(expression) {
                problems.push(SettingsError::new(format!("set.{name}"), e));
            }
        }
        problems
    }

    async fn build(settings: RouteSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let description = loupe_sdk::factory::describe::<Self>(&settings, ctx);
        // `validate` ran before build and compiled every expression; a failure here would be
        // a bug, reported as a build error rather than a panic.
        let compile =
            |source: &str| Expression::compile(source).map_err(|e| NodeError::failed("route", e));
        let rules = settings
            .rules
            .iter()
            .map(|rule| Ok((rule.name.clone(), compile(&rule.when)?)))
            .collect::<Result<Vec<_>, NodeError>>()?;
        let priority = settings.priority.as_deref().map(compile).transpose()?;
        let set = settings
            .set
            .iter()
            .map(|(name, source)| Ok((name.clone(), compile(source)?)))
            .collect::<Result<Vec<_>, NodeError>>()?;
        Ok(Node::processor(RouteProcessor {
            strategy: settings.strategy,
            rules,
            priority,
            set,
            description,
        }))
    }
}

struct RouteProcessor {
    strategy: Strategy,
    rules: Vec<(String, Expression)>,
    priority: Option<Expression>,
    set: Vec<(String, Expression)>,
    description: NodeDescription,
}

impl RouteProcessor {
    /// New attribute values, then the relationships matched, in rule order.
    fn decide(
        &self,
        flow_file: &FlowFile,
    ) -> Result<(HashMap<String, String>, Vec<&str>), expr::EvalError> {
        let size = flow_file.content.len() as u64;
        let mut attributes = flow_file.attributes.clone();
        let mut variables = Variables::new(&attributes, size);
        if !self.set.is_empty() || self.priority.is_some() {
            for (name, expression) in &self.set {
                attributes.insert(name.clone(), expression.text(&variables)?);
            }
            if let Some(priority) = &self.priority {
                attributes.insert(
                    loupe_sdk::attr::PRIORITY.to_string(),
                    priority.text(&variables)?,
                );
            }
            variables = Variables::new(&attributes, size);
        }
        let mut matched = Vec::new();
        for (name, condition) in &self.rules {
            if condition.test(&variables)? {
                matched.push(name.as_str());
                if self.strategy == Strategy::First {
                    break;
                }
            }
        }
        Ok((attributes, matched))
    }
}

#[async_trait]
impl Processor for RouteProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let (attributes, matched) = self
            .decide(&flow_file)
            .map_err(|e| ProcessError::new(ErrorKind::InvalidInput, format!("route: {e}")))?;
        let mut routed = flow_file;
        routed.attributes = attributes;
        if matched.is_empty() {
            return Ok(vec![routed.with_attr(ROUTE_ATTR, UNMATCHED).to(UNMATCHED)]);
        }
        let mut outputs = Vec::with_capacity(matched.len());
        for (i, name) in matched.iter().enumerate() {
            let copy = if i == 0 {
                routed.clone()
            } else {
                routed.child(routed.content.clone(), name)
            };
            outputs.push(copy.with_attr(ROUTE_ATTR, *name).to(*name));
        }
        Ok(outputs)
    }
}
