//! `--set key=value`: the value takes the type the setting's JSON Schema gives its key, so
//! `--set settings.line=007` stays the string `007` where `line` is a string, and `8` becomes
//! a number where the key is a number. Keys the schema does not describe (free-form settings,
//! no schema at hand) keep the old guess: bool, then integer, then float, else string.

use serde_json::Value;

/// The config value of `raw` for the key at `path` (dotted key split) under `schema`.
pub(crate) fn typed_value(schema: Option<&Value>, path: &[&str], raw: &str) -> config::Value {
    let types = schema.and_then(|s| leaf_types(s, s, path));
    match types {
        Some(types) if types.iter().any(|t| t == "string") => raw.into(),
        Some(types) => {
            let has = |t: &str| types.iter().any(|x| x == t);
            if has("boolean")
                && let Ok(b) = raw.parse::<bool>()
            {
                return b.into();
            }
            if has("integer")
                && let Ok(i) = raw.parse::<i64>()
            {
                return i.into();
            }
            if has("number")
                && let Ok(f) = raw.parse::<f64>()
            {
                return f.into();
            }
            guess(raw)
        }
        None => guess(raw),
    }
}

/// The JSON types (`"string"`, `"integer"`, ...) the schema allows at `path`, or `None` when
/// it does not say (no such property, a free-form object, an unresolvable reference).
fn leaf_types(root: &Value, schema: &Value, path: &[&str]) -> Option<Vec<String>> {
    let schema = resolve(root, schema)?;
    let Some((first, rest)) = path.split_first() else {
        return types_of(root, schema);
    };
    // Properties directly, or in one of the alternatives (`Option<T>` is `anyOf [T, null]`).
    if let Some(sub) = schema.get("properties").and_then(|p| p.get(*first)) {
        return leaf_types(root, sub, rest);
    }
    ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(|alt| leaf_types(root, alt, path))
}

/// Follows `$ref` (`#/$defs/X`, `#/definitions/X`) to the schema it names.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#')?;
            resolve(root, root.pointer(pointer)?)
        }
        None => Some(schema),
    }
}

fn types_of(root: &Value, schema: &Value) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        out.push("string".into());
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for alt in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ts) = resolve(root, alt).and_then(|a| types_of(root, a)) {
                out.extend(ts);
            }
        }
    }
    out.retain(|t| t != "null");
    (!out.is_empty()).then_some(out)
}

/// No schema for the key: bool, then integer, then float, else the text.
fn guess(v: &str) -> config::Value {
    if let Ok(b) = v.parse::<bool>() {
        b.into()
    } else if let Ok(i) = v.parse::<i64>() {
        i.into()
    } else if let Ok(f) = v.parse::<f64>() {
        f.into()
    } else {
        v.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "line": {"type": "string"},
                "depth": {"type": "integer", "format": "uint"},
                "ratio": {"type": "number"},
                "on": {"type": "boolean"},
                "maybe": {"type": ["string", "null"]},
                "mode": {"enum": ["a", "b"]},
                "nested": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}]},
                "free": {}
            },
            "$defs": {"Inner": {"type": "object", "properties": {"code": {"type": "string"}}}}
        })
    }

    fn kind(path: &[&str], raw: &str) -> config::ValueKind {
        typed_value(Some(&schema()), path, raw).kind
    }

    #[test]
    fn strings_stay_strings_where_the_schema_says_string() {
        assert_eq!(
            kind(&["line"], "007"),
            config::ValueKind::String("007".into())
        );
        assert_eq!(
            kind(&["maybe"], "true"),
            config::ValueKind::String("true".into())
        );
        assert_eq!(kind(&["mode"], "1"), config::ValueKind::String("1".into()));
        assert_eq!(
            kind(&["nested", "code"], "42"),
            config::ValueKind::String("42".into())
        );
    }

    #[test]
    fn numbers_and_booleans_are_parsed_where_the_schema_says_so() {
        assert_eq!(kind(&["depth"], "007"), config::ValueKind::I64(7));
        assert_eq!(kind(&["ratio"], "0.5"), config::ValueKind::Float(0.5));
        assert_eq!(kind(&["on"], "true"), config::ValueKind::Boolean(true));
    }

    /// The shapes schemars itself writes: `$defs` references, `Option<T>`, enums.
    #[test]
    fn reads_schemas_as_schemars_writes_them() {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Settings {
            line: String,
            count: usize,
            inner: Option<Inner>,
            mode: Mode,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            code: String,
            limit: Option<u32>,
        }
        #[derive(schemars::JsonSchema)]
        #[serde(rename_all = "lowercase")]
        #[allow(dead_code)]
        enum Mode {
            Fast,
            Slow,
        }
        let schema = serde_json::to_value(schemars::schema_for!(Settings)).unwrap();
        let kind = |path: &[&str], raw: &str| typed_value(Some(&schema), path, raw).kind;
        assert_eq!(
            kind(&["line"], "007"),
            config::ValueKind::String("007".into())
        );
        assert_eq!(kind(&["count"], "8"), config::ValueKind::I64(8));
        assert_eq!(
            kind(&["inner", "code"], "12"),
            config::ValueKind::String("12".into())
        );
        assert_eq!(kind(&["inner", "limit"], "12"), config::ValueKind::I64(12));
        assert_eq!(
            kind(&["mode"], "fast"),
            config::ValueKind::String("fast".into())
        );
    }

    #[test]
    fn unknown_keys_keep_the_guess() {
        assert_eq!(kind(&["free"], "3"), config::ValueKind::I64(3));
        assert_eq!(
            kind(&["absent"], "x"),
            config::ValueKind::String("x".into())
        );
        assert_eq!(
            typed_value(None, &["line"], "7").kind,
            config::ValueKind::I64(7)
        );
    }
}
