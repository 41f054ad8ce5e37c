//! The running `capture` node: scanning, offering, and settling acknowledgements.
//!
//! ## Bookkeeping
//! All state is in memory and only *narrows* what is offered; the filesystem is the truth.
//! A file is gone only after its FlowFile was accepted and the file deleted or moved, so a
//! node that stops at any point (crash included) simply offers the remaining files again
//! when it starts: delivery is at-least-once.
//!
//! - `seen`: every matching file present at the last scan, with its signature (size +
//!   mtime) and since when that signature is unchanged; a file is ready once unchanged for
//!   `min_age`. Rebuilt from each scan, so it never outgrows the directory.
//! - `in_flight`: offered and not yet acknowledged; never offered again meanwhile (unless
//!   unacknowledged for `redeliver_after`: then the offer is taken as lost).
//! - `warned`: files a warning was logged for (unreadable, could not be rejected) with the
//!   signature warned about, so a poll loop does not repeat it; they are retried, but after
//!   the healthy files, and do not keep a `--once` run from finishing.
//! - `stuck`: accepted files that could not be deleted or moved: never offered again by
//!   this process (the flow already has them); an error was logged.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use loupe_sdk::pb::Offer;
use loupe_sdk::{
    BuildContext, FlowFile, NodeDescription, NodeError, NodeKind, Output, ProcessError, Processor,
    Pulled, Relationship, Source, attr,
};

use crate::error::CaptureError;
use crate::files::{self, Committed, Entry, ReadOutcome, ScanSpec, Signature};
use crate::glob::Glob;
use crate::settings::{After, CaptureSettings, Order};

/// Attribute naming the captured directory (absolute), for flows fed by several captures.
pub const CAPTURE_DIRECTORY: &str = "capture.directory";
/// Attribute with the file's size in bytes (NiFi `file.size`).
pub const FILE_SIZE: &str = "file.size";
/// Attribute with the file's modification time, RFC 3339 (NiFi `file.lastModifiedTime`).
pub const FILE_LAST_MODIFIED: &str = "file.lastModifiedTime";

/// Resolved settings, shared with the blocking tasks.
#[derive(Debug)]
struct Config {
    spec: ScanSpec,
    move_to: Option<PathBuf>,
    min_age: Duration,
    poll_interval: Duration,
    redeliver_after: Duration,
    /// Effective size limit: `max_file_bytes`, capped by the node's largest message.
    limit: u64,
    order: Order,
    max_in_flight: usize,
    /// `capture.directory` value.
    directory_attr: String,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    sig: Signature,
    since: Instant,
}

#[derive(Debug, Clone)]
struct InFlight {
    path: PathBuf,
    rel: PathBuf,
    sig: Signature,
    offered_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    seen: HashMap<PathBuf, Seen>,
    in_flight: HashMap<String, InFlight>,
    in_flight_paths: HashSet<PathBuf>,
    warned: HashMap<PathBuf, Signature>,
    stuck: HashMap<PathBuf, Signature>,
    warned_dirs: HashSet<PathBuf>,
}

/// What one pass decided to do, made under the state lock and carried out outside it.
#[derive(Debug, Default)]
struct Plan {
    to_read: Vec<Entry>,
    oversize: Vec<Entry>,
    /// Nothing left to offer and nothing in flight.
    exhausted: bool,
}

#[derive(Debug, Default)]
struct Done {
    read: Vec<(Entry, ReadOutcome)>,
    rejected: Vec<(Entry, std::io::Result<PathBuf>)>,
}

/// A built `capture` node: a [`Source`] of the files of one directory, and a pass-through
/// [`Processor`].
pub struct CaptureSource {
    cfg: Arc<Config>,
    description: NodeDescription,
    /// Serializes passes, so two concurrent pulls can never offer the same file.
    scan_lock: tokio::sync::Mutex<()>,
    /// Held only briefly and never across an `.await`.
    state: Mutex<State>,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("directory", &self.cfg.spec.root)
            .finish_non_exhaustive()
    }
}

impl CaptureSource {
    /// Resolves and checks the settings against the filesystem (the directory must exist;
    /// `move_to` is created) and builds the node.
    pub async fn open(
        settings: CaptureSettings,
        ctx: &BuildContext,
        relationships: Vec<Relationship>,
    ) -> Result<Self, CaptureError> {
        let root = absolute(&ctx.resolve(&settings.directory));
        match tokio::fs::metadata(&root).await {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(CaptureError::NotADirectory(root)),
            Err(source) => return Err(CaptureError::DirectoryMissing { path: root, source }),
        }
        let root_canon = tokio::fs::canonicalize(&root).await.map_err(|source| {
            CaptureError::DirectoryMissing {
                path: root.clone(),
                source,
            }
        })?;

        let (move_to, excluded) = match (settings.after, &settings.move_to) {
            (After::Move, Some(dir)) => {
                let dir = absolute(&ctx.resolve(dir));
                let canon = async {
                    tokio::fs::create_dir_all(&dir).await?;
                    tokio::fs::canonicalize(&dir).await
                }
                .await
                .map_err(|source| CaptureError::MoveTo {
                    path: dir.clone(),
                    source,
                })?;
                if canon == root_canon {
                    return Err(CaptureError::MoveToIsDirectory(dir));
                }
                // Moved files must not be picked up again by a recursive scan.
                let excluded = canon.strip_prefix(&root_canon).ok().map(Path::to_path_buf);
                (Some(dir), excluded)
            }
            _ => (None, None),
        };

        let pattern = Glob::new(&settings.pattern)?;
        let mut limit = settings.max_file_bytes;
        if ctx.max_message_bytes > 0 {
            limit = limit.min(ctx.max_message_bytes as u64);
        }
        let cfg = Config {
            directory_attr: root.to_string_lossy().into_owned(),
            spec: ScanSpec {
                root,
                recursive: settings.recursive,
                pattern,
                ignore_hidden: settings.ignore_hidden,
                excluded,
            },
            move_to,
            min_age: settings.min_age.get(),
            poll_interval: settings.poll_interval.get(),
            redeliver_after: settings.redeliver_after.get(),
            limit,
            order: settings.order,
            max_in_flight: settings.max_in_flight,
        };
        let description = NodeDescription {
            node_type: <crate::Capture as NodeKind>::TYPE.to_string(),
            version: loupe_sdk::VERSION.to_string(),
            relationships,
            settings_schema: serde_json::to_string(&schemars::schema_for!(CaptureSettings))
                .unwrap_or_default(),
            readiness: 0,
            is_source: true,
            max_message_bytes: ctx.max_message_bytes as u64,
        };
        Ok(CaptureSource {
            cfg: Arc::new(cfg),
            description,
            scan_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough sets (each update is a
        // single insert/remove); keep serving rather than poisoning every later pull.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One scan: offers up to `max` ready files.
    async fn pass(&self, max: usize) -> Result<Pulled, CaptureError> {
        let _one_pass_at_a_time = self.scan_lock.lock().await;

        let cfg = self.cfg.clone();
        let scan = blocking(move || files::scan(&cfg.spec))
            .await?
            .map_err(|source| CaptureError::Scan {
                path: self.cfg.spec.root.clone(),
                source,
            })?;
        let plan = self.plan(scan, max);
        let exhausted = plan.exhausted;

        let cfg = self.cfg.clone();
        let done = blocking(move || execute(&cfg, plan)).await?;
        // No `.await` from here on: if the caller drops this future, it is either before the
        // files were marked in flight (they will be offered again) or after the offers were
        // returned; never in between, where offers would be lost but marked in flight.
        let offers = self.settle(done);
        Ok(Pulled {
            exhausted: exhausted && offers.is_empty(),
            offers,
        })
    }

    fn plan(&self, scan: files::Scan, max: usize) -> Plan {
        let now = Instant::now();
        let mut guard = self.state();
        let st = &mut *guard;

        for (dir, e) in scan.dir_errors {
            if st.warned_dirs.insert(dir.clone()) {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot list subdirectory; its files are not captured");
            }
        }

        // Offers unacknowledged for too long were lost on the way: offer their files again.
        let redeliver_after = self.cfg.redeliver_after;
        let in_flight_paths = &mut st.in_flight_paths;
        st.in_flight.retain(|id, f| {
            if now.saturating_duration_since(f.offered_at) < redeliver_after {
                return true;
            }
            tracing::warn!(delivery_id = %id, file = %f.path.display(),
                "offer not acknowledged within redeliver_after; offering the file again");
            in_flight_paths.remove(&f.path);
            false
        });

        // Rebuild `seen` from this scan: vanished files drop out, changed ones restart
        // their clock.
        let mut seen = HashMap::with_capacity(scan.files.len());
        for f in &scan.files {
            let since = match st.seen.get(&f.path) {
                Some(s) if s.sig == f.sig => s.since,
                _ => now,
            };
            seen.insert(f.path.clone(), Seen { sig: f.sig, since });
        }
        st.seen = seen;
        // A changed file is a new version: it deserves a fresh look (and a fresh warning).
        let current =
            |p: &PathBuf, sig: &mut Signature| st.seen.get(p).is_some_and(|s| s.sig == *sig);
        st.warned.retain(current);
        st.stuck.retain(current);

        let mut pending = 0usize;
        let mut ready: Vec<(bool, Entry)> = Vec::new();
        for f in scan.files {
            if st.in_flight_paths.contains(&f.path) || st.stuck.contains_key(&f.path) {
                continue;
            }
            let warned = st.warned.contains_key(&f.path);
            if !warned {
                pending += 1;
            }
            let stable_for = st
                .seen
                .get(&f.path)
                .map(|s| now.saturating_duration_since(s.since))
                .unwrap_or_default();
            if stable_for >= self.cfg.min_age {
                ready.push((warned, f));
            }
        }
        // Healthy files first, so a few unreadable ones can never starve the rest.
        match self.cfg.order {
            Order::Name => ready.sort_by(|a, b| (a.0, &a.1.rel).cmp(&(b.0, &b.1.rel))),
            Order::Mtime => ready.sort_by(|a, b| {
                (a.0, a.1.sig.mtime, &a.1.rel).cmp(&(b.0, b.1.sig.mtime, &b.1.rel))
            }),
        }

        let room = max.min(self.cfg.max_in_flight.saturating_sub(st.in_flight.len()));
        let mut plan = Plan {
            exhausted: pending == 0 && st.in_flight.is_empty(),
            ..Plan::default()
        };
        for (_, f) in ready {
            if f.sig.size > self.cfg.limit {
                plan.oversize.push(f);
            } else if plan.to_read.len() < room {
                plan.to_read.push(f);
            }
        }
        plan
    }

    fn settle(&self, done: Done) -> Vec<Offer> {
        let now = Instant::now();
        let mut guard = self.state();
        let st = &mut *guard;

        for (f, result) in done.rejected {
            match result {
                Ok(dest) => {
                    st.seen.remove(&f.path);
                    st.warned.remove(&f.path);
                    tracing::warn!(file = %f.path.display(), moved_to = %dest.display(),
                        size = f.sig.size, limit = self.cfg.limit,
                        "file larger than max_file_bytes: not offered, moved aside with a reason");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    st.seen.remove(&f.path);
                }
                Err(e) => {
                    if st.warned.insert(f.path.clone(), f.sig) != Some(f.sig) {
                        tracing::warn!(file = %f.path.display(), error = %e,
                            size = f.sig.size, limit = self.cfg.limit,
                            "file larger than max_file_bytes could not be moved to .rejected; \
                             left in place and not offered");
                    }
                }
            }
        }

        let mut offers = Vec::new();
        for (f, outcome) in done.read {
            match outcome {
                ReadOutcome::Read(content) => {
                    st.warned.remove(&f.path);
                    st.in_flight_paths.insert(f.path.clone());
                    let flow_file = flow_file(&self.cfg, &f, content);
                    let delivery_id = uuid::Uuid::new_v4().to_string();
                    st.in_flight.insert(
                        delivery_id.clone(),
                        InFlight {
                            path: f.path,
                            rel: f.rel,
                            sig: f.sig,
                            offered_at: now,
                        },
                    );
                    offers.push(Offer {
                        delivery_id,
                        flow_file: Some(flow_file),
                    });
                }
                // Vanished between scan and read (an uploader renamed it): nothing to say.
                ReadOutcome::Vanished => {
                    st.seen.remove(&f.path);
                }
                ReadOutcome::Failed(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    st.seen.remove(&f.path);
                }
                // Still being written after all: restart its clock.
                ReadOutcome::Changed(sig) => {
                    st.seen.insert(f.path, Seen { sig, since: now });
                }
                ReadOutcome::Failed(e) => {
                    if st.warned.insert(f.path.clone(), f.sig) != Some(f.sig) {
                        tracing::warn!(file = %f.path.display(), error = %e,
                            "cannot read file; skipped (retried on later scans)");
                    }
                }
            }
        }
        offers
    }
}

/// Carries out a plan: rejects over-size files, reads the others.
fn execute(cfg: &Config, plan: Plan) -> Done {
    let mut done = Done::default();
    for f in plan.oversize {
        let reason = format!(
            "rejected by loupe capture: the file is {} bytes, larger than the limit of {} bytes \
             (setting `max_file_bytes`, capped by the node's largest message)",
            f.sig.size, cfg.limit
        );
        let result = files::reject(&cfg.spec.root, &f, &reason);
        done.rejected.push((f, result));
    }
    for f in plan.to_read {
        let outcome = files::read(&f, cfg.limit);
        done.read.push((f, outcome));
    }
    done
}

/// The FlowFile for a file read by a pass.
fn flow_file(cfg: &Config, f: &Entry, content: Bytes) -> FlowFile {
    let name = f
        .rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let absolute_dir = f
        .path
        .parent()
        .map(files::with_trailing_slash)
        .unwrap_or_default();
    let modified = f
        .sig
        .mtime
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
        .unwrap_or_default();
    FlowFile::create(content, HashMap::new())
        .with_attr(attr::MIME_TYPE, files::mime_type(&name))
        .with_attr(attr::FILENAME, name)
        .with_attr(attr::PATH, files::nifi_relative_dir(&f.rel))
        .with_attr(attr::ABSOLUTE_PATH, absolute_dir)
        .with_attr(FILE_SIZE, f.sig.size.to_string())
        .with_attr(FILE_LAST_MODIFIED, modified)
        .with_attr(CAPTURE_DIRECTORY, cfg.directory_attr.clone())
}

#[async_trait]
impl Source for CaptureSource {
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let pulled = self.pass(max).await?;
            let now = tokio::time::Instant::now();
            if !pulled.offers.is_empty() || pulled.exhausted || max == 0 || now >= deadline {
                return Ok(pulled);
            }
            tokio::time::sleep(self.cfg.poll_interval.min(deadline - now)).await;
        }
    }

    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError> {
        let jobs: Vec<(String, InFlight)> = {
            let mut st = self.state();
            for id in &rejected {
                match st.in_flight.remove(id) {
                    Some(f) => {
                        st.in_flight_paths.remove(&f.path);
                    }
                    None => tracing::debug!(delivery_id = %id, "rejected delivery not in flight"),
                }
            }
            accepted
                .iter()
                .filter_map(|id| match st.in_flight.get(id) {
                    Some(f) => Some((id.clone(), f.clone())),
                    None => {
                        // An id from before a restart of this node: the file, if still
                        // there, is offered again (at-least-once).
                        tracing::debug!(delivery_id = %id, "accepted delivery not in flight");
                        None
                    }
                })
                .collect()
        };
        if jobs.is_empty() {
            return Ok(());
        }

        let cfg = self.cfg.clone();
        let results = blocking(move || {
            jobs.into_iter()
                .map(|(id, f)| {
                    let r = files::commit(&f.path, &f.rel, f.sig, cfg.move_to.as_deref());
                    (id, f, r)
                })
                .collect::<Vec<_>>()
        })
        .await?;

        // Only now, with the files deleted or moved, do they leave the in-flight set: a scan
        // in between still sees them in flight, so they are never offered twice.
        let mut first_error = None;
        let mut st = self.state();
        for (id, f, result) in results {
            if st.in_flight.remove(&id).is_none() {
                continue; // settled concurrently by another ack
            }
            st.in_flight_paths.remove(&f.path);
            match result {
                Ok(Committed::Done(moved_to)) => {
                    tracing::debug!(file = %f.path.display(), moved_to = ?moved_to, "committed");
                    st.seen.remove(&f.path);
                }
                Ok(Committed::Gone) => {
                    st.seen.remove(&f.path);
                }
                Ok(Committed::Changed) => tracing::warn!(file = %f.path.display(),
                    "file was rewritten after it was offered; left in place, \
                     its new version will be offered"),
                Err(source) => {
                    tracing::error!(file = %f.path.display(), error = %source,
                        "accepted file could not be deleted/moved; it will not be offered \
                         again by this process, but would be after a restart");
                    st.stuck.insert(f.path.clone(), f.sig);
                    first_error.get_or_insert(CaptureError::Commit {
                        action: if self.cfg.move_to.is_some() {
                            "move"
                        } else {
                            "delete"
                        },
                        path: f.path,
                        source,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Passes each FlowFile through unchanged to `success`: `capture` only brings files in, so
/// as a processor (e.g. called remotely with `Process`) it is the identity.
#[async_trait]
impl Processor for CaptureSource {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![flow_file.to(loupe_sdk::SUCCESS)])
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CaptureError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CaptureError::Task(e.to_string()))
}

/// `path` made absolute against the current directory, without resolving symbolic links
/// (attributes show the directory as configured).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
