//! `loupe serve` types a setting given by `--set` or by a `LOUPE_SETTINGS__*` variable from the
//! node type's settings schema: a folder named `007` stays the text `007` (it used to become
//! the integer 7 and fail the capture node's `directory: String`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::loupe;

/// Starts the command, returns its first stdout line (the port line, or nothing when it
/// failed) and its stderr, and stops it.
fn first_line(mut command: Command) -> (String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start loupe serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().ok();
    let out = child.wait_with_output().unwrap();
    (line, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A capture node served in a scratch folder holding `007`, configured by `configure`.
fn capture(configure: impl FnOnce(&mut Command)) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("007")).unwrap();
    let mut command = loupe();
    command
        .current_dir(dir.path())
        .args(["serve", "capture", "--listen", "127.0.0.1:0"]);
    configure(&mut command);
    first_line(command)
}

#[test]
fn a_set_text_setting_stays_text() {
    let (line, stderr) = capture(|c| {
        c.args(["--set", "settings.directory=007"]);
    });
    assert!(line.starts_with("listening on "), "{line:?}\n{stderr}");
}

#[test]
fn a_variable_text_setting_stays_text() {
    let (line, stderr) = capture(|c| {
        c.env("LOUPE_SETTINGS__DIRECTORY", "007");
    });
    assert!(line.starts_with("listening on "), "{line:?}\n{stderr}");
}

#[test]
fn a_number_that_is_not_one_is_refused_with_its_key() {
    let (line, stderr) = capture(|c| {
        c.args([
            "--set",
            "settings.directory=007",
            "--set",
            "max_in_flight=many",
        ]);
    });
    assert!(line.is_empty(), "{line:?}");
    assert!(stderr.contains("max_in_flight"), "{stderr}");
}
