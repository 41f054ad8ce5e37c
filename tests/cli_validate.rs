//! `loupe validate` prints every error of a flow with its place, and exits non-zero.

mod common;

use common::{loupe, repo};

#[test]
fn five_mistakes_give_five_located_errors() {
    let flow = repo().join("tests/fixtures/five-mistakes.yaml");
    let out = loupe().arg("validate").arg(&flow).output().unwrap();
    assert!(!out.status.success(), "an invalid flow must exit non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("five-mistakes.yaml:") && !l.ends_with("error(s)"))
        .collect();
    assert_eq!(errors.len(), 5, "expected five errors, got:\n{stderr}");
    for (needle, line) in [
        ("unknown field `speed`", 8),
        ("unknown node type `clasify`", 11),
        ("duplicate node id `camera`", 13),
        ("no relationship `sucess`", 27),
        ("unknown node `nowhere`", 31),
    ] {
        let hit = errors
            .iter()
            .find(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("no error mentions {needle}:\n{stderr}"));
        assert!(
            hit.contains(&format!("five-mistakes.yaml:{line}:")),
            "error `{hit}` should be located at line {line}"
        );
    }
}

#[test]
fn shipped_flows_are_valid() {
    let mut flows: Vec<_> = std::fs::read_dir(repo().join("flows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    flows.sort();
    assert!(!flows.is_empty());
    let out = loupe().arg("validate").args(&flows).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_yaml_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("broken.yaml");
    std::fs::write(&flow, "nodes:\n  - id: a\n    type: [capture\n").unwrap();
    let out = loupe().arg("validate").arg(&flow).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.yaml:"), "{stderr}");
}

#[test]
fn an_invalid_route_rule_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("route.yaml");
    std::fs::write(
        &flow,
        r#"name: routing
nodes:
  - id: route
    type: route
    settings:
      rules:
        - name: confirmed
          when: classify.label == "loose_wire"
        - name: cleared
          when: camera.verdict == && true
  - id: records
    type: report
    settings: { path: records.jsonl }
    auto_terminate: [failure]
connections:
  - { from: route.confirmed, to: records }
  - { from: route.cleared, to: records }
  - { from: route.unmatched, to: records }
  - { from: route.failure, to: records }
"#,
    )
    .unwrap();
    let out = loupe().arg("validate").arg(&flow).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hit = stderr
        .lines()
        .find(|l| l.contains("rules[1].when"))
        .unwrap_or_else(|| panic!("no error names the rule:\n{stderr}"));
    assert!(hit.contains("route.yaml:10:"), "{hit}");
    assert!(hit.contains("CEL syntax error"), "{hit}");
}
