//! The upload spool: an upload is on disk, synced, before its request is answered `202`.
//!
//! One file per upload, `<uuid>.upload`: a first line of JSON (uuid, attributes, times), then
//! the content bytes. It is written as `<uuid>.part`, synced, renamed, and the directory
//! synced, so after a crash a spool file is either whole or absent (a leftover `.part` is an
//! upload never answered `202`, and is removed). The file is removed when the flow
//! acknowledges the upload — its record is durable — so a restarted node offers every
//! spooled upload again, under the same uuid: idempotent sinks record it once.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use loupe_sdk::FlowFile;
use serde::{Deserialize, Serialize};

/// Extension of a committed spool file.
const COMMITTED: &str = "upload";
/// Extension of a spool file being written.
const PARTIAL: &str = "part";
/// Extension a spool file that cannot be read is renamed to (kept for a person to look at).
const CORRUPT: &str = "corrupt";
/// Longest first line accepted (the attributes are bounded well below this).
const MAX_HEADER_BYTES: u64 = 16 * 1024 * 1024;

/// The first line of a spool file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    uuid: String,
    attributes: HashMap<String, String>,
    entry_time_ms: i64,
    lineage_start_ms: i64,
}

/// A spool directory.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating) the spool directory.
    pub(crate) fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Spool { dir })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, uuid: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{uuid}.{ext}"))
    }

    /// Writes `flow_file` durably. Blocking.
    pub(crate) fn write(&self, flow_file: &FlowFile) -> std::io::Result<()> {
        let header = Header {
            uuid: flow_file.uuid.clone(),
            attributes: flow_file.attributes.clone(),
            entry_time_ms: flow_file.entry_time_ms,
            lineage_start_ms: flow_file.lineage_start_ms,
        };
        let partial = self.path(&flow_file.uuid, PARTIAL);
        let result = (|| {
            let mut file = std::fs::File::create(&partial)?;
            serde_json::to_writer(&mut file, &header)?;
            file.write_all(b"\n")?;
            file.write_all(&flow_file.content)?;
            file.sync_all()?;
            std::fs::rename(&partial, self.path(&flow_file.uuid, COMMITTED))?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Removes the spool file of an acknowledged upload. Blocking.
    pub(crate) fn remove(&self, uuid: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(uuid, COMMITTED)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every committed upload, oldest first; leftover partial files are removed and
    /// unreadable ones renamed `.corrupt` with a warning. Blocking.
    pub(crate) fn recover(&self) -> std::io::Result<Vec<FlowFile>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some(PARTIAL) => {
                    let _ = std::fs::remove_file(&path);
                }
                Some(COMMITTED) => match read(&path) {
                    Ok(ff) => found.push(ff),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e,
                            "unreadable upload spool file: renamed .corrupt, not offered");
                        let _ = std::fs::rename(&path, path.with_extension(CORRUPT));
                    }
                },
                _ => {}
            }
        }
        found.sort_by_key(|f| f.entry_time_ms);
        Ok(found)
    }
}

fn read(path: &Path) -> std::io::Result<FlowFile> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no header line",
        ));
    }
    let header: Header = serde_json::from_slice(&line)?;
    let mut content = Vec::new();
    reader.read_to_end(&mut content)?;
    Ok(FlowFile {
        uuid: header.uuid,
        attributes: header.attributes,
        content: content.into(),
        entry_time_ms: header.entry_time_ms,
        lineage_start_ms: header.lineage_start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_uploads_come_back_whole_and_removed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let a = FlowFile::create(b"\x89PNG\n\nbytes".to_vec(), Default::default())
            .with_attr("filename", "a.png");
        let b = FlowFile::create(b"second".to_vec(), Default::default());
        spool.write(&a).unwrap();
        spool.write(&b).unwrap();
        std::fs::write(spool.dir().join("torn.part"), b"half").unwrap();
        std::fs::write(spool.dir().join("bad.upload"), b"no header").unwrap();

        let back = spool.recover().unwrap();
        assert_eq!(back.len(), 2);
        let a_back = back.iter().find(|f| f.uuid == a.uuid).unwrap();
        assert_eq!(a_back, &a);
        assert!(
            !spool.dir().join("torn.part").exists(),
            "partial files are removed"
        );
        assert!(
            spool.dir().join("bad.corrupt").exists(),
            "kept aside for a person"
        );

        spool.remove(&a.uuid).unwrap();
        spool.remove(&a.uuid).unwrap(); // twice is fine
        let back = spool.recover().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].uuid, b.uuid);
    }
}
