//! The media store: the original image, the prediction as JSON, and the overlay and mask the
//! `segment` node makes, laid out by day so that people can browse them and retention can drop
//! whole days:
//!
//! ```text
//! MEDIA_DIR/2026-11-21/p00042_a3_1f2e3d4c.png            the original
//! MEDIA_DIR/2026-11-21/p00042_a3_1f2e3d4c.json           the inspection record (prediction)
//! MEDIA_DIR/2026-11-21/sheet-7_9a8b7c6d.overlay.png      segment's overlay (named by its parent)
//! MEDIA_DIR/2026-11-21/sheet-7_9a8b7c6d.mask.png         segment's class mask
//! ```
//!
//! File names come from attributes (`filename`, `mime.type`), which anyone upstream can set:
//! they are sanitized to `[A-Za-z0-9._-]` (no separators, no leading dot, at most 80
//! characters), and the FlowFile's uuid makes them unique, so nothing can escape the
//! directory or overwrite another image.
//!
//! **Durable before the record.** Each file is written under a temporary name, `fsync`ed,
//! renamed into place, and its day directory (and, for a new day, the media directory) is
//! `fsync`ed, all before [`MediaStore::store`] returns — so the record committed after it never
//! points at an image a power loss could take away. A write that fails leaves no file under
//! the final name (the temporary one is removed) and returns a [`MediaError`], whose
//! [`MediaError::is_transient`] tells a full disk or an unwritable directory (retried) from
//! the rare error that retrying cannot fix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use loupe_sdk::FlowFile;
use loupe_store::Inspection;
use loupe_store::day::is_day;

/// Writing media failed.
#[derive(Debug, thiserror::Error)]
#[error("media store {}: {source}", path.display())]
pub struct MediaError {
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl MediaError {
    /// Whether writing may work later (a full disk, a directory that cannot be written now):
    /// the FlowFile is retried, not routed to `failure` (see [`loupe_store::transient`]).
    pub fn is_transient(&self) -> bool {
        loupe_store::transient::io_is_transient(&self.source)
    }
}

/// A media directory.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    /// The day directory known to be created and synced into the media directory.
    synced_day: Arc<Mutex<Option<String>>>,
}

impl MediaStore {
    /// Media under `dir` (created when the first file is written).
    pub fn new(dir: PathBuf) -> MediaStore {
        MediaStore {
            dir,
            synced_day: Arc::default(),
        }
    }

    /// Stores what `flow_file` carries: a `segment` overlay or mask next to its parent's
    /// name, else the image and its record, each synced to disk. Returns the image's path,
    /// relative to the media directory. Blocking.
    pub fn store(
        &self,
        flow_file: &FlowFile,
        record: &Inspection,
        day: &str,
    ) -> Result<String, MediaError> {
        let dir = self.day_dir(day)?;
        let output = flow_file.attr("segment.output").filter(|o| !o.is_empty());
        let (base, owner) = match output {
            Some(_) => (
                base_name(flow_file.attr("filename"), &[".overlay.png", ".mask.png"]),
                flow_file.attr("segment.parent").unwrap_or(&flow_file.uuid),
            ),
            None => (
                base_name(flow_file.attr("filename"), &[]),
                flow_file.uuid.as_str(),
            ),
        };
        let stem = format!("{base}_{}", short(owner));
        let name = match output {
            Some(kind) => format!("{stem}.{}.png", sanitize(kind)),
            None => format!("{stem}.{}", extension(flow_file)),
        };
        write_atomically(&dir.join(&name), &flow_file.content)?;
        if output.is_none() {
            let json = serde_json::to_vec_pretty(record).unwrap_or_default();
            write_atomically(&dir.join(format!("{stem}.json")), &json)?;
        }
        // The renames are durable once the directory is.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| MediaError {
                path: dir.clone(),
                source,
            })?;
        Ok(format!("{day}/{name}"))
    }

    /// The folder of `day`, created, and its entry in the media directory synced (once per
    /// day).
    fn day_dir(&self, day: &str) -> Result<PathBuf, MediaError> {
        let dir = self.dir.join(day);
        let mut synced = self
            .synced_day
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if synced.as_deref() == Some(day) && dir.is_dir() {
            return Ok(dir);
        }
        let error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MediaError { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(error(&dir))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(error(&self.dir))?;
        *synced = Some(day.to_string());
        Ok(dir)
    }

    /// Deletes the day folders before `day` (`YYYY-MM-DD`); returns how many. Blocking.
    pub fn delete_days_before(&self, day: &str) -> Result<usize, MediaError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(MediaError {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_day(&name) && name.as_str() < day {
                std::fs::remove_dir_all(entry.path()).map_err(|source| MediaError {
                    path: entry.path(),
                    source,
                })?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The file name without its extension (and without any of `suffixes`), sanitized.
fn base_name(filename: Option<&str>, suffixes: &[&str]) -> String {
    let mut name = filename.unwrap_or("image").to_string();
    // Only the last path component: a `filename` of `../../etc/passwd` is `passwd`.
    if let Some(last) = name.rsplit(['/', '\\']).next() {
        name = last.to_string();
    }
    for suffix in suffixes {
        if let Some(stripped) = name.strip_suffix(suffix) {
            name = stripped.to_string();
        }
    }
    let stem = Path::new(&name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean = sanitize(&stem);
    if clean.is_empty() {
        "image".to_string()
    } else {
        clean
    }
}

/// `[A-Za-z0-9._-]` only, no leading dots, at most 80 characters.
pub fn sanitize(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    clean.trim_start_matches('.').chars().take(80).collect()
}

fn short(uuid: &str) -> String {
    sanitize(&uuid.replace('-', "")).chars().take(8).collect()
}

/// The extension from `mime.type`, else from `filename`, else `bin`.
fn extension(flow_file: &FlowFile) -> String {
    let from_mime = match flow_file.attr("mime.type") {
        Some("image/png") => Some("png"),
        Some("image/jpeg") => Some("jpg"),
        Some("image/bmp") => Some("bmp"),
        Some("image/tiff") => Some("tiff"),
        _ => None,
    };
    from_mime
        .map(str::to_string)
        .or_else(|| {
            flow_file
                .attr("filename")
                .and_then(|f| Path::new(f).extension())
                .map(|e| sanitize(&e.to_string_lossy()).to_lowercase())
                .filter(|e| !e.is_empty() && e.len() <= 5)
        })
        .unwrap_or_else(|| "bin".to_string())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it to `path`: the
/// file under `path` is whole or absent (the directory still needs a sync for the rename to
/// survive a power loss). On error the temporary file is removed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MediaError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique, so that two deliveries of one FlowFile at once do not share a temporary file.
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        MediaError {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn flow_file(attrs: &[(&str, &str)]) -> FlowFile {
        FlowFile::create(
            b"pixels".to_vec(),
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn names_are_sanitized_and_cannot_escape() {
        assert_eq!(base_name(Some("../../etc/passwd"), &[]), "passwd");
        assert_eq!(base_name(Some("..\\..\\boot.ini"), &[]), "boot");
        assert_eq!(base_name(Some(".hidden.png"), &[]), "hidden");
        assert_eq!(base_name(Some("p 1;rm -rf.png"), &[]), "p_1_rm_-rf");
        assert_eq!(base_name(None, &[]), "image");
        assert_eq!(
            base_name(Some("sheet.overlay.png"), &[".overlay.png"]),
            "sheet"
        );
        assert!(is_day("2026-11-21") && !is_day("2026-11-2x") && !is_day("other"));
    }

    #[test]
    fn originals_records_and_overlays_are_laid_out_by_day() {
        let dir = tempfile::tempdir().unwrap();
        let media = MediaStore::new(dir.path().join("media"));
        let original = flow_file(&[("filename", "../sheet 7.png"), ("mime.type", "image/png")]);
        let record = Inspection::from_flow_file(&original, 0);
        let path = media.store(&original, &record, "2026-11-20").unwrap();
        let short = short(&original.uuid);
        assert_eq!(path, format!("2026-11-20/sheet_7_{short}.png"));
        let json = std::fs::read_to_string(
            dir.path()
                .join(format!("media/2026-11-20/sheet_7_{short}.json")),
        )
        .unwrap();
        assert!(json.contains(&original.uuid));

        let overlay = flow_file(&[
            ("filename", "sheet 7.overlay.png"),
            ("segment.output", "overlay"),
            ("segment.parent", &original.uuid),
        ]);
        let path = media.store(&overlay, &record, "2026-11-21").unwrap();
        assert_eq!(path, format!("2026-11-21/sheet_7_{short}.overlay.png"));
        assert!(dir.path().join("media").join(&path).is_file());

        assert_eq!(media.delete_days_before("2026-11-21").unwrap(), 1);
        assert!(!dir.path().join("media/2026-11-20").exists());
        assert!(dir.path().join("media/2026-11-21").exists());
    }
}
