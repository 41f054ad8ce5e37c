//! The JSON-lines sink: one record per FlowFile, appended, and on disk before `write` returns.
//!
//! **Durable.** Each record is written and then `fdatasync`ed before [`JsonLinesSink::write`]
//! returns, so a FlowFile the flow acknowledges (and whose photo the source then deletes)
//! survives a crash or power loss. Concurrent writers share syncs (group commit): a writer
//! whose line is covered by a sync that another writer started after it wrote needs no sync
//! of its own, so the cost is about one `fdatasync` per batch of concurrent records, never
//! less durability. The file's directory is synced once when the file is opened.
//!
//! **Idempotent within a window.** With `idempotent`, the sink remembers the uuids of the
//! last `window` records it wrote (or found in the file when it opened — the file is read
//! once, in full, but only the newest `window` uuids are kept), and a FlowFile whose uuid is
//! among them is not written again. Redelivery (a retry, a source that re-offers after a
//! crash) comes soon after the first delivery, so a window far larger than what can be in
//! flight at once — queues, retries, in-flight work — catches every redelivery while memory
//! stays bounded (about 100 bytes per uuid: 10 MB for the default 100 000). A uuid that comes
//! back after `window` newer records is written again.
//!
//! **Errors.** A write or sync that fails (disk full, I/O error, ...) returns
//! [`ReportError::Write`]; the uuid is not remembered, so the retry writes the record again
//! (when a failed sync had already put the line in the file, the file holds it twice — the
//! price of never losing it).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use loupe_sdk::FlowFile;
use loupe_sdk::flowfile::now_ms;
use loupe_store::Written;
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::recent::RecentSet;

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

struct Inner {
    file: Arc<std::fs::File>,
    /// Uuids of the newest records, when idempotent.
    recorded: Option<RecentSet>,
    /// The file may end in a partial line (a crash or failed write mid-record): start the
    /// next record on a fresh line so it is not glued to the torn one.
    torn: bool,
}

/// Group commit: how far the file is known to be on disk.
#[derive(Debug, Default)]
struct Synced {
    /// Every record up to this sequence number is synced.
    upto: std::sync::Mutex<u64>,
    /// Records appended so far (the sequence number of the last one).
    appended: AtomicU64,
}

/// An append-only JSON-lines file of FlowFile records.
pub struct JsonLinesSink {
    path: PathBuf,
    include_size: bool,
    inner: Arc<tokio::sync::Mutex<Inner>>,
    synced: Arc<Synced>,
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
    uuids: Option<RecentSet>,
    ends_with_newline: bool,
}

/// The default de-duplication window of the JSON-lines sink (uuids remembered).
pub const DEFAULT_DEDUP_WINDOW: usize = 100_000;

impl JsonLinesSink {
    /// Opens (creating it and its parent directories if needed) the report at `path`; with a
    /// `dedup_window`, remembers the uuids of that many newest records (reading those the
    /// file already holds) and writes no uuid among them again. `None`: every delivery is
    /// written.
    pub async fn open(
        path: PathBuf,
        include_size: bool,
        dedup_window: Option<usize>,
    ) -> Result<Self, ReportError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| ReportError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let open_path = path.clone();
        let (file, existing) = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&open_path)
                .map_err(|source| ReportError::Open {
                    path: open_path.clone(),
                    source,
                })?;
            // The file's name must be on disk too, not only its lines.
            if let Some(parent) = open_path.parent() {
                sync_dir(parent);
            }
            let existing =
                read_existing(&open_path, dedup_window).map_err(|source| ReportError::Read {
                    path: open_path.clone(),
                    source,
                })?;
            Ok::<_, ReportError>((file, existing))
        })
        .await
        .map_err(|e| ReportError::Task(e.to_string()))??;
        Ok(JsonLinesSink {
            path,
            include_size,
            inner: Arc::new(tokio::sync::Mutex::new(Inner {
                file: Arc::new(file),
                recorded: existing.uuids,
                torn: !existing.ends_with_newline,
            })),
            synced: Arc::new(Synced::default()),
        })
    }

    /// The report file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many uuids the sink remembers now, and at most (`None` when not idempotent).
    pub async fn remembered(&self) -> Option<(usize, usize)> {
        let inner = self.inner.lock().await;
        inner.recorded.as_ref().map(|r| (r.len(), r.capacity()))
    }

    /// Appends one record for `flow_file` (unless its uuid is among the remembered ones) and
    /// returns once it is on disk (written and `fdatasync`ed).
    ///
    /// The write runs on the blocking pool holding the lock: if the caller gives up (a
    /// timeout drops this future), the record is still either wholly written and remembered
    /// or not written at all, and no other record can start in between.
    pub async fn write(&self, flow_file: FlowFile) -> Result<Written, ReportError> {
        let guard = self.inner.clone().lock_owned().await;
        let path = self.path.clone();
        let include_size = self.include_size;
        let synced = self.synced.clone();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut appending = guard;
            if appending.append(&path, &flow_file, include_size)? == Written::Duplicate {
                return Ok(Written::Duplicate);
            }
            let seq = synced.appended.fetch_add(1, Ordering::SeqCst) + 1;
            let file = appending.file.clone();
            // Others may append while this one syncs (and share its sync).
            drop(appending);
            if let Err(source) = synced.sync_up_to(seq, &file) {
                // Not known to be on disk: the retry must write it again.
                if let Some(recorded) = &mut inner.blocking_lock().recorded {
                    recorded.remove(&flow_file.uuid);
                }
                return Err(ReportError::Write { path, source });
            }
            Ok(Written::Recorded)
        })
        .await
        .map_err(|e| ReportError::Task(e.to_string()))?
    }

    /// Syncs the file to disk (every record is synced when written already; this is for
    /// `stop`).
    pub async fn sync(&self) -> Result<(), ReportError> {
        let file = self.inner.lock().await.file.clone();
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| ReportError::Task(e.to_string()))?
            .map_err(|source| ReportError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

impl Synced {
    /// Returns once record `seq` is on disk: at once if a sync already covered it, else by
    /// syncing everything appended so far. Blocking.
    fn sync_up_to(&self, seq: u64, file: &std::fs::File) -> io::Result<()> {
        let mut upto = self.upto.lock().unwrap_or_else(|p| p.into_inner());
        if *upto >= seq {
            return Ok(());
        }
        // Everything appended before the sync starts is covered by it.
        let target = self.appended.load(Ordering::SeqCst).max(seq);
        file.sync_data()?;
        *upto = target;
        Ok(())
    }
}

impl Inner {
    /// Writes the line of `flow_file` (not synced yet). Blocking.
    fn append(
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

        // `O_APPEND`: one write call per line; `write_all` only loops on a short write.
        match (&*self.file).write_all(&line) {
            Ok(()) => {
                self.torn = false;
                if dedupe && let Some(recorded) = &mut self.recorded {
                    recorded.insert(uuid);
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

/// Syncs a directory so that a file created in it survives a power loss; best effort (some
/// file systems cannot open or sync a directory).
pub(crate) fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync the directory");
    }
}

#[derive(Deserialize)]
struct UuidOnly {
    uuid: String,
}

/// Whether the file ends with a newline (or is empty), and, with a `window`, the uuids of
/// its newest `window` records. Lines that are not records (a torn last line after a crash) are skipped
/// with a warning: the FlowFile they started is written again, whole.
fn read_existing(path: &Path, window: Option<usize>) -> io::Result<Existing> {
    let mut file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        // A device or a pipe (`/dev/full`, a FIFO): nothing to read back, and reading could
        // block or never end.
        return Ok(Existing {
            uuids: window.map(RecentSet::new),
            ends_with_newline: true,
        });
    }
    let len = metadata.len();
    let ends_with_newline = len == 0 || {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        file.seek(SeekFrom::Start(0))?;
        last[0] == b'\n'
    };
    let Some(window) = window else {
        return Ok(Existing {
            uuids: None,
            ends_with_newline,
        });
    };
    let mut uuids = RecentSet::new(window);
    let mut bad = 0usize;
    for line in io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<UuidOnly>(&line) {
            Ok(r) => {
                uuids.insert(&r.uuid);
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
