//! Secure by default, through the binary: `loupe certs` makes a CA, a node certificate and a
//! token; `loupe serve` with them answers `loupe describe` / `loupe call` over TLS with the
//! token and refuses them without; beyond loopback with neither it refuses to start, naming
//! what is missing; `https://` against a plaintext node names TLS.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{Served, loupe};

fn run(args: &[&str], dir: &Path) -> Output {
    loupe()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run loupe")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_node_with_certs_and_a_token_answers_only_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(&["certs", "ca", "--out", "tls"], d));
    ok(&run(
        &["certs", "issue", "route", "--ca", "tls", "--out", "tls"],
        d,
    ));
    ok(&run(&["certs", "token", "--out", "tls/runner.token"], d));
    ok(&run(&["certs", "token", "--out", "tls/other.token"], d));
    let token = std::fs::read_to_string(d.join("tls/runner.token")).unwrap();
    assert_eq!(token.trim().len(), 64, "256 bits, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("tls/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "keys are private");
    }
    let config = d.join("route.yaml");
    std::fs::write(
        &config,
        "tls:\n  cert: tls/route.crt\n  key: tls/route.key\nauth:\n  tokens:\n    - name: runner\n      file: tls/runner.token\n      rights: [process, source]\nsettings:\n  rules:\n    - name: all\n      when: \"true\"\n",
    )
    .unwrap();
    // Beyond loopback: TLS and a token make it acceptable.
    let served = Served::start("route", &config, "0.0.0.0:0");
    let port = served.addr.rsplit(':').next().unwrap();
    let endpoint = format!("https://localhost:{port}");

    let described = ok(&run(
        &[
            "describe",
            &endpoint,
            "--ca",
            "tls/ca.crt",
            "--token-file",
            "tls/runner.token",
        ],
        d,
    ));
    assert!(
        described.contains("\"node_type\": \"route\""),
        "{described}"
    );

    let mut call = loupe()
        .args([
            "call",
            &endpoint,
            "--ca",
            "tls/ca.crt",
            "--token-file",
            "tls/runner.token",
        ])
        .args(["--output", "json"])
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    call.stdin.take().unwrap().write_all(b"photo").unwrap();
    let answer = call.wait_with_output().unwrap();
    assert!(answer.status.success(), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer.stdout).contains("\"all\""));

    // A wrong token, or none: refused, saying so.
    for extra in [&["--token-file", "tls/other.token"][..], &[][..]] {
        let mut args = vec!["describe", endpoint.as_str(), "--ca", "tls/ca.crt"];
        args.extend_from_slice(extra);
        let out = run(&args, d);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused"), "{err}");
    }
    // A client that does not trust the node's CA stops at the handshake.
    ok(&run(&["certs", "ca", "--out", "other-ca"], d));
    let out = run(
        &[
            "describe",
            &endpoint,
            "--ca",
            "other-ca/ca.crt",
            "--token-file",
            "tls/runner.token",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}

/// A `route` node's configuration with one rule and nothing else (no TLS, no credentials).
fn route_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("route.yaml");
    std::fs::write(
        &config,
        "settings:\n  rules:\n    - name: all\n      when: \"true\"\n",
    )
    .unwrap();
    config
}

#[test]
fn beyond_loopback_without_tls_or_credentials_serve_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = route_config(dir.path());
    let out = loupe()
        .args(["serve", "route", "--config"])
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0")
            && err.contains("without TLS and credentials"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing served: {:?}", out.stdout);
}

#[test]
fn https_to_a_plaintext_node_names_tls() {
    let dir = tempfile::tempdir().unwrap();
    let config = route_config(dir.path());
    let served = Served::start("route", &config, "127.0.0.1:0");
    let out = run(
        &["describe", &format!("https://{}", served.addr)],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS"), "{err}");
}
