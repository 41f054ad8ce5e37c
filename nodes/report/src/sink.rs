//! The JSON-lines sink: one record per FlowFile, appended and flushed one at a time.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_sdk::FlowFile;
use loupe_sdk::flowfile::now_ms;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::ReportError;

/// One line of the report.
#[derive(Debug, Serialize)]
struct Record<'a> {
    uuid: &'a str,
    /// When the record was written, Unix epoch milliseconds.
    time_ms: i64,
    /// A BTreeMap serializes sorted whatever serde_json features the workspace enables
    /// (`preserve_order` would keep a `serde_json::Map` in insertion order).
    attributes: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

/// What writing one FlowFile did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A record was appended.
    Recorded,
    /// The uuid was already in the report: nothing written.
    Duplicate,
}

struct Inner {
    file: tokio::fs::File,
    /// Uuids in the report, when idempotent.
    recorded: Option<HashSet<String>>,
    /// The file may end in a partial line (a crash or failed write mid-record): start the
    /// next record on a fresh line so it is not glued to the torn one.
    torn: bool,
}

/// An append-only JSON-lines file of FlowFile records.
pub struct JsonLinesSink {
    path: PathBuf,
    include_size: bool,
    inner: Arc<tokio::sync::Mutex<Inner>>,
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a look at the existing file found.
struct Existing {
    uuids: Option<HashSet<String>>,
    ends_with_newline: bool,
}

impl JsonLinesSink {
    /// Opens (creating it and its parent directories if needed) the report at `path`; when
    /// `idempotent`, first reads the uuids it already holds.
    pub async fn open(
        path: PathBuf,
        include_size: bool,
        idempotent: bool,
    ) -> Result<Self, ReportError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| ReportError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|source| ReportError::Open {
                path: path.clone(),
                source,
            })?;
        let read_path = path.clone();
        let existing = tokio::task::spawn_blocking(move || read_existing(&read_path, idempotent))
            .await
            .map_err(|e| ReportError::Task(e.to_string()))?
            .map_err(|source| ReportError::Read {
                path: path.clone(),
                source,
            })?;
        Ok(JsonLinesSink {
            path,
            include_size,
            inner: Arc::new(tokio::sync::Mutex::new(Inner {
                file,
                recorded: existing.uuids,
                torn: !existing.ends_with_newline,
            })),
        })
    }

    /// The report file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record for `flow_file` (unless its uuid is already recorded) and flushes.
    ///
    /// The write runs in its own task holding the lock: if the caller gives up (a timeout
    /// drops this future), the record is still either wholly written and remembered or not
    /// written at all, and no other record can start in between.
    pub async fn write(&self, flow_file: FlowFile) -> Result<Written, ReportError> {
        let guard = self.inner.clone().lock_owned().await;
        let path = self.path.clone();
        let include_size = self.include_size;
        tokio::spawn(async move {
            let mut inner = guard;
            inner.append(&path, &flow_file, include_size).await
        })
        .await
        .map_err(|e| ReportError::Task(e.to_string()))?
    }

    /// Flushes and syncs the file to disk.
    pub async fn sync(&self) -> Result<(), ReportError> {
        let mut inner = self.inner.lock().await;
        let result = match inner.file.flush().await {
            Ok(()) => inner.file.sync_all().await,
            Err(e) => Err(e),
        };
        result.map_err(|source| ReportError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

impl Inner {
    async fn append(
        &mut self,
        path: &Path,
        flow_file: &FlowFile,
        include_size: bool,
    ) -> Result<Written, ReportError> {
        // An empty uuid identifies nothing: always write it, never remember it.
        let uuid = flow_file.uuid.as_str();
        let dedupe = !uuid.is_empty();
        if dedupe && self.recorded.as_ref().is_some_and(|r| r.contains(uuid)) {
            tracing::debug!(uuid, "already in the report; not written again");
            return Ok(Written::Duplicate);
        }

        let record = Record {
            uuid,
            time_ms: now_ms(),
            attributes: flow_file
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            size: include_size.then(|| flow_file.size()),
        };
        let mut line = Vec::with_capacity(256);
        if self.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &record)?;
        line.push(b'\n');

        let written = async {
            self.file.write_all(&line).await?;
            // tokio's File writes in the background; flush waits until the OS has the line.
            self.file.flush().await
        }
        .await;
        match written {
            Ok(()) => {
                self.torn = false;
                if dedupe && let Some(recorded) = &mut self.recorded {
                    recorded.insert(uuid.to_string());
                }
                Ok(Written::Recorded)
            }
            Err(source) => {
                // Part of the line may be in the file.
                self.torn = true;
                Err(ReportError::Write {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[derive(Deserialize)]
struct UuidOnly {
    uuid: String,
}

/// Whether the file ends with a newline (or is empty), and, when `idempotent`, the uuids
/// of its records. Lines that are not records (a torn last line after a crash) are skipped
/// with a warning: the FlowFile they started is written again, whole.
fn read_existing(path: &Path, idempotent: bool) -> io::Result<Existing> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let ends_with_newline = len == 0 || {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        file.seek(SeekFrom::Start(0))?;
        last[0] == b'\n'
    };
    if !idempotent {
        return Ok(Existing {
            uuids: None,
            ends_with_newline,
        });
    }
    let mut uuids = HashSet::new();
    let mut bad = 0usize;
    for line in io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<UuidOnly>(&line) {
            Ok(r) => {
                uuids.insert(r.uuid);
            }
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(path = %path.display(), lines = bad,
            "report has lines that are not records (torn by a crash?); they are ignored");
    }
    Ok(Existing {
        uuids: Some(uuids),
        ends_with_newline,
    })
}
