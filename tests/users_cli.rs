//! `loupe users`: the dashboard's users file from the command line — a password from standard
//! input or a variable (never empty), a file only its owner reads, names and roles listed but
//! never a hash.

mod common;

use std::io::Write as _;
use std::process::{Output, Stdio};

use common::loupe;

fn users(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = loupe()
        .arg("users")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn users_are_added_listed_and_removed_without_showing_a_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("users");
    let file = file.to_str().unwrap();
    let out = users(
        &["add", "anna", "--role", "reviewer", "--file", file],
        "anna's password\n",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = users(
        &[
            "add",
            "ben",
            "--role",
            "viewer",
            "--file",
            file,
            "--password-env",
            "BEN_PW",
        ],
        "",
        &[("BEN_PW", "ben's password")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = users(
        &["add", "carl", "--role", "admin", "--file", file],
        "\n",
        &[],
    );
    assert!(!out.status.success(), "an empty password is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let out = users(
        &["add", "anna", "--role", "admin", "--file", file],
        "x\n",
        &[],
    );
    assert!(!out.status.success(), "a name already there is refused");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("anna:reviewer:$argon2id$"), "{text}");
    assert!(!text.contains("password"), "only hashes are stored");

    let out = users(&["list", "--file", file], "", &[]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed, "anna\treviewer\nben\tviewer\n");
    let out = users(&["remove", "ben", "--file", file], "", &[]);
    assert!(out.status.success());
    let out = users(&["remove", "ben", "--file", file], "", &[]);
    assert!(!out.status.success(), "removing someone not there says so");
    let out = users(&["list", "--file", file], "", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "anna\treviewer\n");
}
