//! Route expressions over the SDK's length and nesting limits are located settings errors,
//! found without handing them to the CEL parser: no panic, no stack overflow, even on a
//! thread with the default 2 MiB stack (what `loupe validate` and a runtime worker have).

use loupe_route::Route;
use loupe_sdk::SettingsError;
use loupe_sdk::expr::{MAX_EXPRESSION_BYTES, MAX_NESTING_DEPTH};
use loupe_sdk::factory::factory;
use serde_json::json;

/// The route factory's settings check, on a thread with a 2 MiB stack.
fn check_on_small_stack(settings: serde_json::Value) -> Result<(), Vec<SettingsError>> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || factory::<Route>().check(&settings).map(|_| ()))
        .unwrap()
        .join()
        .expect("the check must not panic or overflow its stack")
}

#[test]
fn huge_nested_expressions_are_located_errors() {
    let parens = format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000));
    let nots = format!("{}true", "!".repeat(100_000));
    let errors = check_on_small_stack(json!({
        "rules": [
            {"name": "parens", "when": parens},
            {"name": "nots", "when": nots},
        ],
        "priority": format!("{}1", "-".repeat(100_000)),
        "set": {"deep": format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000))},
    }))
    .unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["rules[0].when", "rules[1].when", "priority", "set.deep"]
    );
    for e in &errors {
        assert!(
            e.message
                .contains(&format!("over the limit of {MAX_EXPRESSION_BYTES} bytes")),
            "{e}"
        );
    }
    assert_eq!(
        errors[0].to_string(),
        "rules[0].when: the expression is 200004 bytes long, over the limit of 2048 bytes"
    );
}

#[test]
fn nesting_over_the_limit_within_the_length_is_a_located_error() {
    let depth = MAX_NESTING_DEPTH + 1;
    let parens = format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
    let nots = format!("{}true", "!".repeat(depth));
    let errors = check_on_small_stack(json!({
        "rules": [
            {"name": "ok", "when": "classify.label == \"ok\""},
            {"name": "parens", "when": parens},
            {"name": "nots", "when": format!("classify.label == \"x\" &&\n  {nots}")},
        ],
    }))
    .unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "rules[1].when: the expression nests more than 64 levels deep at line 1, column 65 \
             (brackets, `? :` conditionals and runs of `!`/`-` count)",
            "rules[2].when: the expression nests more than 64 levels deep at line 2, column 67 \
             (brackets, `? :` conditionals and runs of `!`/`-` count)",
        ]
    );
    // At the limit: valid.
    let parens = format!(
        "{}true{}",
        "(".repeat(MAX_NESTING_DEPTH),
        ")".repeat(MAX_NESTING_DEPTH)
    );
    check_on_small_stack(json!({"rules": [{"name": "ok", "when": parens}]})).unwrap();
}
