//! Blocking filesystem work: scanning, reading, committing and rejecting files.
//!
//! Everything here runs on tokio's blocking pool (see [`crate::source`]); nothing here keeps
//! state between calls, so the bookkeeping lives in one place.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use crate::glob::Glob;

/// Name of the directory, inside the captured directory, that over-size files go to.
pub const REJECTED_DIR: &str = ".rejected";

/// What identifies one version of a file: a writer that is still busy changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, where the filesystem has one.
    pub mtime: Option<SystemTime>,
}

impl Signature {
    /// The signature of a file's metadata.
    pub fn of(meta: &fs::Metadata) -> Self {
        Signature {
            size: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// A file's signature together with its sidecar's: a change in either restarts the
/// stability clock.
pub type Stamp = (Signature, Option<Signature>);

/// A regular file found by a scan.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the captured directory, file name included.
    pub rel: PathBuf,
    /// Size and mtime when scanned.
    pub sig: Signature,
    /// Its JSON sidecar, when sidecars are on and one is there.
    pub sidecar: Option<Sidecar>,
}

impl Entry {
    /// The file's and its sidecar's signatures.
    pub fn stamp(&self) -> Stamp {
        (self.sig, self.sidecar.as_ref().map(|s| s.sig))
    }
}

/// A JSON sidecar beside a file (`a.png.json`, else `a.json`).
#[derive(Debug, Clone)]
pub struct Sidecar {
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the captured directory.
    pub rel: PathBuf,
    /// Size and mtime when scanned.
    pub sig: Signature,
}

/// What to scan and what to leave out.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// The captured directory (absolute).
    pub root: PathBuf,
    /// Descend into subdirectories.
    pub recursive: bool,
    /// File-name glob.
    pub pattern: Glob,
    /// Skip dot-files and dot-directories.
    pub ignore_hidden: bool,
    /// Subdirectory (relative to `root`) never scanned: where accepted files are moved.
    pub excluded: Option<PathBuf>,
    /// `*.json` files are sidecars of the file they are named after, never files to offer.
    pub sidecars: bool,
    /// Files (absolute, lexically normalized) never offered: the manifest.
    pub skip: Vec<PathBuf>,
}

/// Whether `name` is a sidecar's name (`*.json`, any case).
pub fn is_sidecar_name(name: &str) -> bool {
    name.len() > 5 && name[name.len() - 5..].eq_ignore_ascii_case(".json")
}

/// Result of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Matching regular files.
    pub files: Vec<Entry>,
    /// Subdirectories that could not be listed (the root failing is an `Err` instead).
    pub dir_errors: Vec<(PathBuf, io::Error)>,
}

/// Lists the matching files under `spec.root`. Entries that vanish while listing are
/// skipped: a camera's uploader may rename or delete at any time.
pub fn scan(spec: &ScanSpec) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel_dir) = dirs.pop() {
        let abs_dir = spec.root.join(&rel_dir);
        let listing = match fs::read_dir(&abs_dir) {
            Ok(listing) => listing,
            Err(e) if rel_dir.as_os_str().is_empty() => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.dir_errors.push((abs_dir, e));
                continue;
            }
        };
        let first_here = out.files.len();
        let mut sidecars: HashMap<String, PathBuf> = HashMap::new();
        for entry in listing {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                // Attribute values are strings; a name that is not UTF-8 cannot be described.
                tracing::debug!(path = %entry.path().display(), "skipping non-UTF-8 file name");
                continue;
            };
            if spec.ignore_hidden && name_str.starts_with('.') {
                continue;
            }
            let rel = rel_dir.join(&name);
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            // Symbolic links to directories are not followed: they can form cycles.
            if file_type.is_dir() {
                let never = (rel_dir.as_os_str().is_empty() && name_str == REJECTED_DIR)
                    || spec.excluded.as_deref() == Some(rel.as_path());
                if spec.recursive && !never {
                    dirs.push(rel);
                }
                continue;
            }
            if spec.sidecars && is_sidecar_name(name_str) {
                sidecars.insert(name_str.to_string(), rel);
                continue;
            }
            if !spec.pattern.matches(name_str) {
                continue;
            }
            // `fs::metadata` follows a symbolic link to a file, so a linked file is captured.
            let path = entry.path();
            if !spec.skip.is_empty() && spec.skip.contains(&crate::metadata::normalize(&path)) {
                continue;
            }
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => out.files.push(Entry {
                    path,
                    rel,
                    sig: Signature::of(&meta),
                    sidecar: None,
                }),
                _ => {}
            }
        }
        if !sidecars.is_empty() {
            for f in &mut out.files[first_here..] {
                f.sidecar = find_sidecar(&spec.root, f, &sidecars);
            }
        }
    }
    Ok(out)
}

/// The sidecar of `f` among the `*.json` names of its directory: `NAME.json`, else
/// `STEM.json`.
fn find_sidecar(root: &Path, f: &Entry, sidecars: &HashMap<String, PathBuf>) -> Option<Sidecar> {
    let name = f.rel.file_name()?.to_str()?;
    let stem = f.rel.file_stem()?.to_str()?;
    [format!("{name}.json"), format!("{stem}.json")]
        .iter()
        .find_map(|candidate| {
            let rel = sidecars.get(candidate)?;
            let path = root.join(rel);
            let meta = fs::metadata(&path).ok().filter(fs::Metadata::is_file)?;
            Some(Sidecar {
                path,
                rel: rel.clone(),
                sig: Signature::of(&meta),
            })
        })
}

/// Reads a small file whole, refusing one larger than `limit` bytes.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut content = Vec::new();
    fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut content)?;
    if content.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(content)
}

/// What reading a file found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// The content, as scanned.
    Read(Bytes),
    /// The file is gone.
    Vanished,
    /// The file changed since it was scanned (a writer is still at it).
    Changed(Signature),
    /// The file could not be read.
    Failed(io::Error),
}

/// Reads `entry` if it still has the scanned signature, never more than `limit` bytes.
pub fn read(entry: &Entry, limit: u64) -> ReadOutcome {
    let mut file = match fs::File::open(&entry.path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReadOutcome::Vanished,
        Err(e) => return ReadOutcome::Failed(e),
    };
    let sig = match file.metadata() {
        Ok(meta) => Signature::of(&meta),
        Err(e) => return ReadOutcome::Failed(e),
    };
    if sig != entry.sig {
        return ReadOutcome::Changed(sig);
    }
    let mut content = Vec::with_capacity(sig.size.min(limit) as usize);
    // `take` bounds memory even if the file grows after the metadata check.
    if let Err(e) = (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut content)
    {
        return ReadOutcome::Failed(e);
    }
    if content.len() as u64 != sig.size {
        let now = file
            .metadata()
            .map(|m| Signature::of(&m))
            .unwrap_or(Signature {
                size: content.len() as u64,
                mtime: None,
            });
        return ReadOutcome::Changed(now);
    }
    ReadOutcome::Read(Bytes::from(content))
}

/// What settling an accepted file did.
#[derive(Debug)]
pub enum Committed {
    /// Deleted, or moved to this path.
    Done(Option<PathBuf>),
    /// Already gone (someone else removed it): nothing to do.
    Gone,
    /// The file was rewritten after it was offered: left in place so the new version is
    /// offered in turn rather than destroyed unread.
    Changed,
}

/// Deletes `path`, or moves it to `move_to/rel`, if it still has signature `sig`.
pub fn commit(
    path: &Path,
    rel: &Path,
    sig: Signature,
    move_to: Option<&Path>,
) -> io::Result<Committed> {
    match fs::metadata(path) {
        Ok(meta) if Signature::of(&meta) != sig => return Ok(Committed::Changed),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Committed::Gone),
        Err(e) => return Err(e),
    }
    let result = match move_to {
        None => fs::remove_file(path).map(|()| None),
        Some(dir) => move_file(path, &dir.join(rel)).map(Some),
    };
    match result {
        Ok(dest) => Ok(Committed::Done(dest)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => Ok(Committed::Gone),
        Err(e) => Err(e),
    }
}

/// Moves an over-size file to `<root>/.rejected/<rel>` and writes `<name>.reason.txt` beside
/// it. Returns where the file went.
pub fn reject(root: &Path, entry: &Entry, reason: &str) -> io::Result<PathBuf> {
    let dest = move_file(&entry.path, &root.join(REJECTED_DIR).join(&entry.rel))?;
    let mut reason_path = dest.clone().into_os_string();
    reason_path.push(".reason.txt");
    let text = format!(
        "{reason}\noriginal path: {}\nrejected at: {}\n",
        entry.path.display(),
        humantime::format_rfc3339_seconds(SystemTime::now()),
    );
    // The file itself is already safe in `.rejected`; a missing note is not worth failing for.
    if let Err(e) = fs::write(&reason_path, text) {
        tracing::warn!(path = %PathBuf::from(&reason_path).display(), error = %e,
            "could not write the rejection reason");
    }
    Ok(dest)
}

/// Moves `src` to `dest` (or a `-N`-suffixed sibling if `dest` exists: nothing is ever
/// overwritten), creating parent directories, copying across filesystems. Returns the path
/// the file ended up at.
pub fn move_file(src: &Path, dest: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    let dest = free_name(dest);
    match fs::rename(src, &dest) {
        Ok(()) => Ok(dest),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(rename_error) => {
            // Most likely another filesystem (EXDEV): copy, make it durable, then remove.
            let copied = fs::copy(src, &dest).and_then(|_| fs::File::open(&dest)?.sync_all());
            match copied {
                Ok(()) => {
                    fs::remove_file(src)?;
                    Ok(dest)
                }
                Err(_) => {
                    let _ = fs::remove_file(&dest);
                    Err(rename_error)
                }
            }
        }
    }
}

/// `path` if nothing is there, else the first free `stem-N.ext` beside it.
fn free_name(path: &Path) -> PathBuf {
    if fs::symlink_metadata(path).is_err() {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1u32..)
        .map(|n| path.with_file_name(format!("{stem}-{n}{ext}")))
        .find(|p| fs::symlink_metadata(p).is_err())
        .unwrap_or_else(|| path.to_path_buf())
}

/// The MIME type of a file name, from its extension.
pub fn mime_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "json" => "application/json",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// NiFi's `path` attribute for a file at `rel`: `./` at the top level, else the relative
/// directory with a trailing `/` (always `/`-separated).
pub fn nifi_relative_dir(rel: &Path) -> String {
    let parts: Vec<_> = rel
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        "./".to_string()
    } else {
        format!("{}/", parts.join("/"))
    }
}

/// A directory path with a trailing separator, as NiFi writes `absolute.path`.
pub fn with_trailing_slash(dir: &Path) -> String {
    let mut s = dir.to_string_lossy().into_owned();
    if !s.ends_with(std::path::MAIN_SEPARATOR) {
        s.push(std::path::MAIN_SEPARATOR);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types() {
        assert_eq!(mime_type("a.JPG"), "image/jpeg");
        assert_eq!(mime_type("a.tiff"), "image/tiff");
        assert_eq!(mime_type("a.json"), "application/json");
        assert_eq!(mime_type("README"), "application/octet-stream");
    }

    #[test]
    fn relative_dirs() {
        assert_eq!(nifi_relative_dir(Path::new("a.jpg")), "./");
        assert_eq!(nifi_relative_dir(Path::new("x/y/a.jpg")), "x/y/");
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let dest = dir.path().join("out/a.txt");
        fs::write(&a, "1").unwrap();
        assert_eq!(move_file(&a, &dest).unwrap(), dest);
        fs::write(&a, "2").unwrap();
        let second = move_file(&a, &dest).unwrap();
        assert_eq!(second, dir.path().join("out/a-1.txt"));
        assert_eq!(fs::read_to_string(&dest).unwrap(), "1");
        assert_eq!(fs::read_to_string(&second).unwrap(), "2");
    }
}
