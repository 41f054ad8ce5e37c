//! `loupe serve` types a setting given by `--set` or by a `LOUPE_SETTINGS__*` variable from the
//! node type's settings schema: a folder named `007` stays the text `007` (it used to become
//! the integer 7 and fail the capture node's `directory: String`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
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

fn capture(dir: &Path) -> Command {
    std::fs::create_dir(dir.join("007")).unwrap();
    let mut command = loupe();
    command
        .current_dir(dir)
        .args(["serve", "capture", "--listen", "127.0.0.1:0"]);
    command
}

#[test]
fn a_set_text_setting_stays_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = capture(dir.path());
    command.args(["--set", "settings.directory=007"]);
    let (line, stderr) = first_line(command);
    assert!(line.starts_with("listening on "), "{line:?}\n{stderr}");
}

#[test]
fn a_variable_text_setting_stays_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = capture(dir.path());
    command.env("LOUPE_SETTINGS__DIRECTORY", "007");
    let (line, stderr) = first_line(command);
    assert!(line.starts_with("listening on "), "{line:?}\n{stderr}");
}

#[test]
fn a_number_that_is_not_one_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = capture(dir.path());
    command.args([
        "--set",
        "settings.directory=007",
        "--set",
        "max_in_flight=many",
    ]);
    let (line, stderr) = first_line(command);
    assert!(line.is_empty(), "{line:?}");
    assert!(stderr.contains("max_in_flight"), "{stderr}");
}
