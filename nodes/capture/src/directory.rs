//! The `directory` input: scanning, offering, and settling acknowledgements of files.
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
//! - the backlog: files the last scan found ready but no pull had room for, in offering
//!   order. A pull within `poll_interval` of that scan takes from it instead of listing and
//!   stat-ing the whole directory again (each file is still read with its scanned signature
//!   checked), so draining an inbox of N files costs one scan per `poll_interval`, not one
//!   per pull. A file given back by the flow (rejected) waits for the next scan.
//! - the watch: filesystem events (inotify, through `notify`) on the directory. While none
//!   came since the last scan — a file created, written, renamed into it, its metadata
//!   changed; the input's own deletes and moves do not count — a scan would find what the
//!   last one found minus what was taken, so the backlog serves pulls for up to
//!   [`RESCAN_AFTER`] instead of `poll_interval`, and draining N files costs a few scans, not
//!   one per `poll_interval`. A file given back, a lost watch (overflowed or failed) or the
//!   safety interval brings a scan. Without a watch (inotify unavailable) the input polls as
//!   before.
//!
//! A file's sidecar (with `metadata.sidecar`) is part of its signature: the file is ready
//! once both are unchanged for `min_age`, and the sidecar is committed right after its
//! file (file first: a crash in between leaves an orphan sidecar, never a file without
//! its metadata).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use loupe_sdk::pb::Offer;
use loupe_sdk::{BuildContext, FlowFile, NodeError, Pulled, attr};

use crate::error::CaptureError;
use crate::files::{self, Committed, Entry, ReadOutcome, ScanSpec, Sidecar, Signature, Stamp};
use crate::glob::Glob;
use crate::metadata::{self, CAPTURE_INPUT, FILE_SIZE, Manifest, Metadata};
use crate::settings::{After, CaptureSettings, Order};

/// Attribute naming the captured directory (absolute), for flows fed by several captures.
pub const CAPTURE_DIRECTORY: &str = "capture.directory";
/// Attribute with the absolute path of the sidecar a file came with.
pub const SIDECAR: &str = "capture.sidecar";
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
    metadata: Arc<Metadata>,
    manifest: Option<ManifestFile>,
}

/// The manifest, re-read whenever its size or mtime changes.
#[derive(Debug)]
struct ManifestFile {
    path: PathBuf,
    cache: Mutex<(Option<Signature>, Manifest)>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: Stamp,
    since: Instant,
}

#[derive(Debug, Clone)]
struct InFlight {
    path: PathBuf,
    rel: PathBuf,
    sig: Signature,
    sidecar: Option<Sidecar>,
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

/// Attributes from metadata for one read file (all layers but the file's own).
#[derive(Debug, Default)]
struct Extra {
    attrs: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Done {
    read: Vec<(Entry, ReadOutcome, Extra)>,
    rejected: Vec<(Entry, std::io::Result<PathBuf>)>,
}

/// Longest the backlog serves pulls without a scan while the watch saw no change: the safety
/// net for an event the kernel did not deliver.
pub const RESCAN_AFTER: Duration = Duration::from_secs(30);

/// Filesystem events on the directory since the last scan.
struct Watch {
    /// Kept alive: dropping it ends the watch.
    _watcher: notify::RecommendedWatcher,
    /// Set by an event that may bring a file to offer; cleared when a scan starts.
    changed: Arc<std::sync::atomic::AtomicBool>,
}

impl Watch {
    /// Watches `root` (and below it when `recursive`); events only under `ignored` (where
    /// files are moved to, `.rejected`) do not count. `None` when the platform or its limits
    /// refuse (then the input polls).
    fn start(root: &Path, recursive: bool, ignored: Vec<PathBuf>) -> Option<Watch> {
        use notify::Watcher;
        let changed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = changed.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let counts = match event {
                Ok(event) => brings_work(&event, &ignored),
                // The watch lost track (queue overflow, ...): scan to be sure.
                Err(_) => true,
            };
            if counts {
                flag.store(true, std::sync::atomic::Ordering::Release);
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::info!(dir = %root.display(), error = %e, "no filesystem events; polling");
                return None;
            }
        };
        let mode = if recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(root, mode) {
            tracing::info!(dir = %root.display(), error = %e, "no filesystem events; polling");
            return None;
        }
        Some(Watch {
            _watcher: watcher,
            changed,
        })
    }
}

/// Whether an event may bring a file to offer: anything but reading, removing and renaming
/// away, outside the ignored folders.
fn brings_work(event: &notify::Event, ignored: &[PathBuf]) -> bool {
    use notify::EventKind;
    use notify::event::{ModifyKind, RenameMode};
    let kind_counts = !matches!(
        event.kind,
        EventKind::Access(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(RenameMode::From))
    );
    kind_counts
        && (event.paths.is_empty()
            || event
                .paths
                .iter()
                .any(|p| !ignored.iter().any(|dir| p.starts_with(dir))))
}

/// Ready files of the last scan that were not offered yet (the pull had no room for them),
/// in offering order: later pulls within `poll_interval` take from here instead of scanning
/// the whole directory again, so an inbox of N files costs a scan per `poll_interval`, not
/// one per pull.
#[derive(Debug, Default)]
struct Backlog {
    scanned_at: Option<Instant>,
    /// When the first file the scan found not yet stable for `min_age` becomes ready: a scan
    /// is due then even without an event.
    next_ready: Option<Instant>,
    files: std::collections::VecDeque<Entry>,
}

/// The files of one directory, offered once stable and committed once accepted.
pub(crate) struct DirectoryInput {
    cfg: Arc<Config>,
    /// Serializes passes, so two concurrent pulls can never offer the same file.
    scan_lock: tokio::sync::Mutex<()>,
    /// Held only briefly and never across an `.await`.
    state: Mutex<State>,
    /// Only touched while `scan_lock` is held.
    backlog: Mutex<Backlog>,
    /// Filesystem events, where the platform gives them.
    watch: Option<Watch>,
}

impl std::fmt::Debug for DirectoryInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryInput")
            .field("directory", &self.cfg.spec.root)
            .finish_non_exhaustive()
    }
}

impl DirectoryInput {
    /// Resolves and checks the settings against the filesystem (the directory must exist;
    /// `move_to` is created).
    pub(crate) async fn open(
        directory: &Path,
        settings: &CaptureSettings,
        ctx: &BuildContext,
        metadata: Arc<Metadata>,
    ) -> Result<Self, CaptureError> {
        let root = absolute(&ctx.resolve(directory));
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
        let manifest = settings.metadata.manifest.as_ref().map(|m| ManifestFile {
            path: metadata::normalize(&root.join(m)),
            cache: Mutex::new((None, Manifest::default())),
        });
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
                sidecars: metadata.sidecar,
                skip: manifest.iter().map(|m| m.path.clone()).collect(),
            },
            move_to,
            min_age: settings.min_age.get(),
            poll_interval: settings.poll_interval.get(),
            redeliver_after: settings.redeliver_after.get(),
            limit,
            order: settings.order,
            max_in_flight: settings.max_in_flight,
            metadata,
            manifest,
        };
        let watch = {
            let mut ignored = vec![cfg.spec.root.join(files::REJECTED_DIR)];
            ignored.extend(cfg.move_to.clone());
            let (root, recursive) = (cfg.spec.root.clone(), cfg.spec.recursive);
            tokio::task::spawn_blocking(move || Watch::start(&root, recursive, ignored))
                .await
                .ok()
                .flatten()
        };
        Ok(DirectoryInput {
            cfg: Arc::new(cfg),
            scan_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            backlog: Mutex::new(Backlog::default()),
            watch,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough sets (each update is a
        // single insert/remove); keep serving rather than poisoning every later pull.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How often the directory is scanned while a pull waits.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.cfg.poll_interval
    }

    /// One scan: offers up to `max` ready files. Cancel-safe: dropped before it returns,
    /// nothing is marked in flight.
    pub(crate) async fn pass(&self, max: usize) -> Result<Pulled, CaptureError> {
        let _one_pass_at_a_time = self.scan_lock.lock().await;

        // Files the last scan found ready and no pull had room for yet: no rescan needed.
        // Each is read with its scanned signature checked (`files::read`), so a file changed
        // or gone since is handled as after a fresh scan.
        if let Some(plan) = self.plan_from_backlog(max) {
            let cfg = self.cfg.clone();
            let done = blocking(move || execute(&cfg, plan)).await?;
            let offers = self.settle(done);
            return Ok(Pulled {
                exhausted: false,
                offers,
            });
        }

        // Cleared before the scan: a change during it brings the next one.
        if let Some(watch) = &self.watch {
            watch
                .changed
                .store(false, std::sync::atomic::Ordering::Release);
        }
        let cfg = self.cfg.clone();
        let scan = blocking(move || {
            refresh_manifest(&cfg);
            files::scan(&cfg.spec)
        })
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

    /// A plan from the backlog, when it is fresh (scanned within `poll_interval`) and holds
    /// files and the flow has room; `None`: scan.
    fn plan_from_backlog(&self, max: usize) -> Option<Plan> {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        // Without a change since the scan, its backlog is as good as a new scan's.
        let quiet = self
            .watch
            .as_ref()
            .is_some_and(|w| !w.changed.load(std::sync::atomic::Ordering::Acquire));
        let now = Instant::now();
        let quiet = quiet && backlog.next_ready.is_none_or(|t| now < t);
        let fresh = backlog.scanned_at.is_some_and(|at| {
            let age = now.saturating_duration_since(at);
            age < self.cfg.poll_interval || (quiet && age < RESCAN_AFTER)
        });
        if !fresh || backlog.files.is_empty() {
            return None;
        }
        let st = self.state();
        let room = max.min(self.cfg.max_in_flight.saturating_sub(st.in_flight.len()));
        if room == 0 {
            return None;
        }
        let mut plan = Plan::default();
        while plan.to_read.len() < room {
            let Some(f) = backlog.files.pop_front() else {
                break;
            };
            if !st.in_flight_paths.contains(&f.path) && !st.stuck.contains_key(&f.path) {
                plan.to_read.push(f);
            }
        }
        (!plan.to_read.is_empty()).then_some(plan)
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
            let stamp = f.stamp();
            let since = match st.seen.get(&f.path) {
                Some(s) if s.stamp == stamp => s.since,
                _ => now,
            };
            seen.insert(f.path.clone(), Seen { stamp, since });
        }
        st.seen = seen;
        // A changed file is a new version: it deserves a fresh look (and a fresh warning).
        let current =
            |p: &PathBuf, sig: &mut Signature| st.seen.get(p).is_some_and(|s| s.stamp.0 == *sig);
        st.warned.retain(current);
        st.stuck.retain(current);

        let mut pending = 0usize;
        let mut next_ready: Option<Instant> = None;
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
            } else {
                let at = now + (self.cfg.min_age - stable_for);
                next_ready = Some(next_ready.map_or(at, |t: Instant| t.min(at)));
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
        let mut backlog = std::collections::VecDeque::new();
        for (warned, f) in ready {
            if f.sig.size > self.cfg.limit {
                plan.oversize.push(f);
            } else if plan.to_read.len() < room {
                plan.to_read.push(f);
            } else if !warned {
                backlog.push_back(f);
            }
        }
        *self.backlog.lock().unwrap_or_else(|e| e.into_inner()) = Backlog {
            scanned_at: Some(now),
            next_ready,
            files: backlog,
        };
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
        for (f, outcome, extra) in done.read {
            match outcome {
                ReadOutcome::Read(content) => {
                    st.warned.remove(&f.path);
                    st.in_flight_paths.insert(f.path.clone());
                    let flow_file = flow_file(&self.cfg, &f, content, extra);
                    let delivery_id = uuid::Uuid::new_v4().to_string();
                    st.in_flight.insert(
                        delivery_id.clone(),
                        InFlight {
                            path: f.path,
                            rel: f.rel,
                            sig: f.sig,
                            sidecar: f.sidecar,
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
                    let stamp = (sig, f.sidecar.map(|s| s.sig));
                    st.seen.insert(f.path, Seen { stamp, since: now });
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
        if let (Ok(_), Some(side)) = (&result, &f.sidecar) {
            // The sidecar follows its file, so it is not left behind as an orphan.
            let dest = cfg.spec.root.join(files::REJECTED_DIR).join(&side.rel);
            if let Err(e) = files::move_file(&side.path, &dest) {
                tracing::warn!(sidecar = %side.path.display(), error = %e,
                    "could not move the sidecar of a rejected file");
            }
        }
        done.rejected.push((f, result));
    }
    for f in plan.to_read {
        let outcome = files::read(&f, cfg.limit);
        let extra = match outcome {
            ReadOutcome::Read(_) => extra(cfg, &f),
            _ => Extra::default(),
        };
        done.read.push((f, outcome, extra));
    }
    done
}

/// Re-reads the manifest if it changed since the last scan. Blocking.
fn refresh_manifest(cfg: &Config) {
    let Some(m) = &cfg.manifest else { return };
    let sig = std::fs::metadata(&m.path)
        .ok()
        .map(|meta| Signature::of(&meta));
    let mut cache = m.cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 == sig && sig.is_some() {
        return;
    }
    let loaded = match sig {
        None => Ok(Manifest::default()),
        Some(_) => Manifest::load(&m.path, &cfg.metadata),
    };
    match loaded {
        Ok(manifest) => {
            if sig.is_none() && cache.0.is_some() {
                tracing::warn!(manifest = %m.path.display(),
                    "manifest is gone; files are offered without its attributes");
            }
            for problem in manifest.problems.iter().take(20) {
                tracing::warn!(manifest = %m.path.display(), "skipping manifest {problem}");
            }
            if manifest.problems.len() > 20 {
                tracing::warn!(manifest = %m.path.display(), skipped = manifest.problems.len(),
                    "more manifest lines could not be used");
            }
            tracing::debug!(manifest = %m.path.display(), records = manifest.records.len(),
                "manifest loaded");
            *cache = (sig, manifest);
        }
        Err(e) => {
            // Keep what was loaded before; try again at the next scan (no repeated warning
            // for the same version).
            if cache.0 != sig {
                tracing::warn!(manifest = %m.path.display(), error = %e,
                    "cannot read the manifest; files are offered without its new attributes");
            }
            cache.0 = sig;
        }
    }
}

/// The metadata layers of one file: static, file name, manifest, sidecar. Blocking.
fn extra(cfg: &Config, f: &Entry) -> Extra {
    let name = f.rel.file_name().map(|n| n.to_string_lossy());
    let mut attrs = cfg.metadata.base(name.as_deref());
    if let Some(m) = &cfg.manifest {
        let cache = m.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = cache.1.records.get(&metadata::normalize(&f.path)) {
            attrs.extend(record.iter().cloned());
        }
    }
    if let Some(side) = &f.sidecar {
        let parsed = files::read_small(&side.path, metadata::MAX_SIDECAR_BYTES)
            .map_err(|e| format!("cannot read sidecar: {e}"))
            .and_then(|bytes| metadata::parse_sidecar(&cfg.metadata, &bytes));
        match parsed {
            Ok(record) => attrs.extend(record),
            Err(e) => {
                tracing::warn!(file = %f.path.display(), sidecar = %side.path.display(),
                    error = %e, "sidecar not used; the file is offered without it");
                attrs.insert(
                    metadata::METADATA_ERROR.into(),
                    format!("sidecar `{}`: {e}", side.rel.display()),
                );
            }
        }
    }
    Extra { attrs }
}

/// The FlowFile for a file read by a pass.
fn flow_file(cfg: &Config, f: &Entry, content: Bytes, extra: Extra) -> FlowFile {
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
    let mut flow_file = FlowFile::create(content, extra.attrs)
        .with_attr(attr::MIME_TYPE, files::mime_type(&name))
        .with_attr(attr::FILENAME, name)
        .with_attr(attr::PATH, files::nifi_relative_dir(&f.rel))
        .with_attr(attr::ABSOLUTE_PATH, absolute_dir)
        .with_attr(FILE_SIZE, f.sig.size.to_string())
        .with_attr(FILE_LAST_MODIFIED, modified)
        .with_attr(CAPTURE_DIRECTORY, cfg.directory_attr.clone())
        .with_attr(CAPTURE_INPUT, "directory");
    if let Some(side) = &f.sidecar {
        flow_file = flow_file.with_attr(SIDECAR, side.path.to_string_lossy());
    }
    cfg.metadata.finish(&mut flow_file.attributes);
    flow_file.uuid = file_uuid(&cfg.directory_attr, &f.rel, f.sig);
    flow_file
}

/// The FlowFile uuid of one version of a file: derived from the captured directory, the
/// file's relative path, size and modification time (UUID v5), so a file offered again —
/// after a lost acknowledgement, or by a node restarted after a crash before the file was
/// deleted — carries the same uuid, and idempotent sinks (`report`) record it once: no double
/// ingest. A file rewritten in place (new size or time) is a new FlowFile.
fn file_uuid(directory: &str, rel: &Path, sig: Signature) -> String {
    let mtime = sig
        .mtime
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let name = format!("{directory}\0{}\0{}\0{mtime}", rel.display(), sig.size);
    uuid::Uuid::new_v5(&FILE_NAMESPACE, name.as_bytes()).to_string()
}

/// UUID v5 namespace of captured files (a fixed random UUID; changing it changes every id).
const FILE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c6f_7570_6561_4e8a_9b1e_35c2_d04f_7a11);

impl DirectoryInput {
    /// Settles this input's delivery ids: accepted files (and their sidecars) are deleted or
    /// moved, rejected ones are offered again.
    pub(crate) async fn ack(
        &self,
        accepted: Vec<String>,
        rejected: Vec<String>,
    ) -> Result<(), NodeError> {
        if !rejected.is_empty()
            && let Some(watch) = &self.watch
        {
            // Given back: offered again after the next scan, which this brings.
            watch
                .changed
                .store(true, std::sync::atomic::Ordering::Release);
        }
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
                    let move_to = cfg.move_to.as_deref();
                    let r = files::commit(&f.path, &f.rel, f.sig, move_to);
                    if let (Ok(Committed::Done(_) | Committed::Gone), Some(side)) = (&r, &f.sidecar)
                    {
                        commit_sidecar(side, move_to);
                    }
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

/// Deletes or moves an accepted file's sidecar (after the file). Blocking.
fn commit_sidecar(side: &Sidecar, move_to: Option<&Path>) {
    match files::commit(&side.path, &side.rel, side.sig, move_to) {
        Ok(Committed::Done(_) | Committed::Gone) => {}
        Ok(Committed::Changed) => tracing::warn!(sidecar = %side.path.display(),
            "sidecar was rewritten after its file was offered; left in place"),
        Err(e) => tracing::warn!(sidecar = %side.path.display(), error = %e,
            "sidecar of an accepted file could not be deleted/moved; left in place"),
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
