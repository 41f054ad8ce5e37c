//! `loupe setup`: makes sure the ONNX Runtime shared library is available.
//!
//! The library comes from the package index's `onnxruntime` wheel, installed into the
//! repository's `.venv` (nothing else is downloaded, and never at inference time).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The pinned wheel that carries the library `ort` is built against.
pub const ONNXRUNTIME_WHEEL: &str = "onnxruntime==1.31.1";

/// Finds the library, installing the wheel into `./.venv` when it is missing.
pub fn setup() -> anyhow::Result<PathBuf> {
    if let Ok(path) = loupe_sdk::onnx::find_library() {
        eprintln!("loupe: ONNX Runtime library: {}", path.display());
        return Ok(path);
    }
    let venv = std::env::current_dir()?.join(".venv");
    if !venv.join("bin/python").exists() {
        eprintln!("loupe: creating {} (python3 -m venv)", venv.display());
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    eprintln!(
        "loupe: installing {ONNXRUNTIME_WHEEL} into {}",
        venv.display()
    );
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        ONNXRUNTIME_WHEEL,
    ]))?;
    let path = loupe_sdk::onnx::find_in_venv(&venv)
        .context("the onnxruntime wheel installed, but its library was not found in .venv")?;
    eprintln!("loupe: ONNX Runtime library: {}", path.display());
    Ok(path)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}
