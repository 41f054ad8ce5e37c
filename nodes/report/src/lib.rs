//! # loupe-report
//!
//! The `report` node: the end of a flow. Each FlowFile becomes one inspection record
//! ([`loupe_store::record`]) in SQLite or PostgreSQL ([`loupe_store::Store`], idempotent by
//! uuid: at-least-once delivery makes one record) and/or a JSON-lines file
//! ([`JsonLinesSink`]); its image is kept by day ([`media`]). The angles of a product make
//! one verdict under the flow's product policy ([`policy`], [`product`]); the plant's figures
//! are per coil ([`coils`], [`summary`]). The node also sends notifications ([`notify`]) and
//! serves the dashboard ([`dashboard`], [`daily`]).
//!
//! On success nothing is output, and `process` returns only once everything it wrote is
//! durable (media synced, the record committed, the JSON line synced): the flow then
//! acknowledges the source, which deletes the photo.
//!
//! **Nothing lost.** Trouble that passes — a database that is down, hung or busy, a full disk,
//! a media directory that cannot be written — is a *retryable* error (`unavailable`): the flow
//! keeps the FlowFile and tries again, back pressure builds, the source stops being read, and
//! nothing is dropped. Every connect and statement has a timeout (`connect_timeout`,
//! `statement_timeout`), so a hung database is an error, not a hang. Each outage is logged
//! once ([`loupe_sdk::episode`]): a warning when it starts, an info line when it ends. Only a record that
//! can never be written (the database rejects its data) goes to `failure`, with the reason in
//! `error.message`. [`loupe_store::transient`] is where errors are sorted.
//!
//! What this crate holds: the node ([`Report`], [`ReportSettings`]), the JSON-lines sink,
//! media, retention, the product policy and the verdicts it decides, the plant's figures,
//! the daily report, notifications and the dashboard. The records, the SQLite/PostgreSQL
//! store, its queries and UTC days are `loupe-store`'s.
//!
//! ## Layout
//! - `settings` (the node's validated settings; a leaf), `error`;
//! - the write path: `sink` + [`recent`] (JSON lines, dedup by uuid), [`media`] (images by
//!   day), `retention`;
//! - verdicts: [`policy`] (the plant's angle rules, CEL) -> [`product`] (a product's verdict
//!   from its stored angles);
//! - the plant's figures: [`coils`], [`summary`] (run summaries), [`daily`] (per day and line,
//!   CSV);
//! - [`notify`]: webhook and MQTT notices, cooldown; [`dashboard`]: the web dashboard (pages,
//!   JSON API, live events, logins, uploads) reading the store.

pub mod coils;
pub mod daily;
pub mod dashboard;
mod error;
pub mod media;
pub mod notify;
pub mod policy;
pub mod product;
pub mod recent;
mod retention;
mod settings;
mod sink;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::episode::Episode;
use loupe_sdk::{
    BuildContext, ErrorKind, FlowFile, Node, NodeDescription, NodeError, NodeKind, Output,
    ProcessError, Processor, Relationship, SettingsError,
};
use loupe_store::product::{ProductVerdict, Verdict};
use loupe_store::{Disagreement, Inspection, Store, StoreError, Stored, Written, day};

pub use error::ReportError;
pub use media::MediaStore;
pub use settings::ReportSettings;
pub use sink::{DEFAULT_DEDUP_WINDOW, JsonLinesSink};
pub use summary::Summary;

/// The `report` node type (register it with `Registry::with::<Report>()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Report;

#[async_trait]
impl NodeKind for Report {
    const TYPE: &'static str = "report";
    type Settings = ReportSettings;

    fn relationships(_settings: &ReportSettings) -> Vec<Relationship> {
        // No `success`: a report is where a flow ends.
        vec![Relationship::new(
            loupe_sdk::FAILURE,
            "Writing the record failed: `error.kind` and `error.message` say why; content untouched",
        )]
    }

    fn validate(settings: &ReportSettings) -> Vec<SettingsError> {
        settings.problems()
    }

    async fn build(settings: ReportSettings, ctx: &BuildContext) -> Result<Node, NodeError> {
        let description = loupe_sdk::factory::describe::<Self>(&settings, ctx);
        let sink = match &settings.path {
            Some(path) => Some(
                JsonLinesSink::open(
                    ctx.resolve(path),
                    settings.include_content_size,
                    settings.dedup(),
                )
                .await?,
            ),
            None => None,
        };
        let store = match settings.database_url() {
            Some(url) => Some(Arc::new(
                Store::open_with(&url, &ctx.base_dir, &settings.table, settings.timeouts())
                    .await
                    .map_err(|e| NodeError::failed("report", e))?,
            )),
            None => None,
        };
        let media = settings
            .media_dir
            .as_ref()
            .map(|dir| MediaStore::new(ctx.resolve(dir)));
        if let Some(days) = settings.retention_days {
            retention::spawn(store.as_ref(), media.clone(), days, RETENTION_INTERVAL);
        }
        let notifier = match (&settings.notify, &store) {
            (Some(notify), Some(_)) => {
                // The webhook's CA file is relative to the flow file, like every path.
                let mut notify = notify.clone();
                if let Some(webhook) = &mut notify.webhook {
                    webhook.tls = webhook.tls.resolved(&ctx.base_dir);
                }
                Some(notify::Notifier::start(&notify)?)
            }
            (Some(_), None) => {
                return Err(NodeError::Other(
                    "report: `notify` needs `database`: product verdicts are made from the stored angles"
                        .to_string(),
                ));
            }
            _ => None,
        };
        let live = settings.dashboard.as_ref().map(|_| dashboard::Live::new());
        let dashboard = match (&settings.dashboard, &store, &live) {
            (Some(dashboard), Some(store), Some(live)) => {
                let sources = dashboard::Sources {
                    store: store.clone(),
                    media_dir: settings.media_dir.as_ref().map(|dir| ctx.resolve(dir)),
                    provenance: dashboard.provenance.as_ref().map(|p| ctx.resolve(p)),
                    disagreement: Disagreement {
                        camera_flag: settings.camera_flag.clone(),
                        defect_labels: settings.defect_labels.clone(),
                    },
                    users_file: dashboard.auth.users_file.as_ref().map(|p| ctx.resolve(p)),
                    secure_cookies: dashboard.tls.is_some(),
                    tls: dashboard.tls.as_ref().map(|t| t.resolved(&ctx.base_dir)),
                    upload_client: (
                        dashboard.upload_tls.resolved(&ctx.base_dir),
                        match &dashboard.upload_token_file {
                            Some(file) => {
                                let path = ctx.resolve(file);
                                let token =
                                    loupe_sdk::client::Secret::from_file(&path).map_err(|e| {
                                        NodeError::Settings(format!(
                                            "dashboard.upload_token_file {}: {e}",
                                            path.display()
                                        ))
                                    })?;
                                Some(token)
                            }
                            None => None,
                        },
                    ),
                };
                Some(
                    dashboard::Dashboard::start(dashboard, sources, live.clone())
                        .await
                        .map_err(|e| NodeError::failed("report", e))?,
                )
            }
            (Some(_), None, _) => {
                return Err(NodeError::Other(
                    "report: `dashboard` needs `database`".to_string(),
                ));
            }
            _ => None,
        };
        let health = Health::default();
        let products = store.as_ref().map(|store| {
            let products = Arc::new(Products {
                store: store.clone(),
                health: health.store.clone(),
                timeout: settings.product_timeout,
                policy: policy::Policy::new(&settings.product_policy, &settings.defect_labels)
                    .map_err(|e| NodeError::failed("report", e))?,
                camera_flag: settings.camera_flag.clone(),
                notifier,
            });
            products.spawn_sweeper();
            Ok::<_, NodeError>(products)
        });
        let products = products.transpose()?;
        Ok(Node::processor(ReportProcessor {
            description,
            sink,
            store,
            products,
            media,
            live,
            dashboard,
            health,
        }))
    }
}

/// One [`Episode`] per thing the report writes to.
#[derive(Debug)]
struct Health {
    /// The database (shared with the product sweeper).
    store: Arc<Episode>,
    /// The media directory.
    media: Episode,
    /// The JSON-lines file.
    sink: Episode,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            store: Arc::new(Episode::new("database")),
            media: Episode::new("media directory"),
            sink: Episode::new("JSON-lines report"),
        }
    }
}

/// The error `process` returns for a write that failed: retryable (`unavailable`, noted in
/// `episode`, which logs once per outage) when `transient`, else final — the FlowFile goes to
/// `failure` with `message` as `error.message` and `final_kind` as `error.kind`, and that is
/// logged.
fn write_failed(
    episode: &Episode,
    uuid: &str,
    transient: bool,
    final_kind: ErrorKind,
    message: String,
) -> ProcessError {
    if transient {
        episode.failed(&message);
        ProcessError::new(ErrorKind::Unavailable, message)
    } else {
        tracing::warn!(uuid, reason = %message, "record cannot be written; routed to failure");
        ProcessError::new(final_kind, message)
    }
}

/// Product verdicts from the stored angles (see [`product`]).
#[derive(Debug)]
struct Products {
    store: Arc<Store>,
    /// The database's episode (the sweeper's failures are the same outage).
    health: Arc<Episode>,
    timeout: Duration,
    policy: policy::Policy,
    camera_flag: String,
    notifier: Option<notify::Notifier>,
}

impl Products {
    /// Decides `product_id` if it can be (all angles in, or `timed_out`) and stores the
    /// verdict; logs the products this node decided.
    async fn check(&self, product_id: &str, timed_out: bool) -> Result<(), StoreError> {
        let rows = self.store.angles_of(product_id).await?;
        let now = loupe_sdk::flowfile::now_ms();
        let Some(verdict) = product::decide(
            product_id,
            &rows,
            &self.policy,
            &self.camera_flag,
            timed_out,
            now,
        ) else {
            return Ok(());
        };
        if self.store.record_product(&verdict).await? {
            match verdict.verdict {
                Verdict::Defective => {
                    tracing::info!(product = %product_id, line = ?verdict.line,
                        defects = %verdict.defects, angles = verdict.defect_angles,
                        "product confirmed defective");
                    self.notify(&verdict);
                }
                Verdict::Review => {
                    tracing::info!(product = %product_id, line = ?verdict.line,
                        reasons = %verdict.defects, "product sent to review");
                    self.notify(&verdict);
                }
                Verdict::Incomplete => {
                    tracing::warn!(product = %product_id,
                        angles = verdict.angles, expected = verdict.expected,
                        "product incomplete: angles missing after the timeout");
                }
                Verdict::Ok => tracing::debug!(product = %product_id, "product ok"),
            }
        }
        Ok(())
    }

    /// Tells the engineers (this node decided the verdict: exactly one notice per product).
    fn notify(&self, verdict: &ProductVerdict) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let mut notice = notify::Notice::new(
            verdict.product_id.clone(),
            verdict
                .line
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
            verdict.verdict.as_str(),
        );
        notice.defects = verdict
            .defects
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        notice.angles = verdict.angles.max(0) as u32;
        notice.camera_verdicts = verdict.camera_flagged.max(0) as u32;
        notice
            .details
            .insert("defect_angles".into(), verdict.defect_angles.into());
        notice
            .details
            .insert("expected_angles".into(), verdict.expected.into());
        let outcome = notifier.notify(&notice);
        tracing::debug!(product = %verdict.product_id, ?outcome, "notification");
    }

    /// Notes that deciding failed (it is tried again by the sweeper): a database outage is
    /// part of the database's episode (logged once); anything else is a warning.
    fn postponed(&self, product_id: Option<&str>, e: &StoreError) {
        if e.is_transient() {
            self.health
                .failed(&format_args!("product verdicts postponed: {e}"));
        } else {
            tracing::warn!(product = ?product_id, error = %e, "product verdict postponed");
        }
    }

    /// Decides the products whose angles stopped arriving, every quarter of the timeout (at
    /// most every 30 s), until the node is dropped.
    fn spawn_sweeper(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let every = (self.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(this) = this.upgrade() else { return };
                let cutoff = loupe_sdk::flowfile::now_ms() - this.timeout.as_millis() as i64;
                let stale = match this.store.undecided_before(cutoff, 1000).await {
                    Ok(stale) => stale,
                    Err(e) => {
                        this.postponed(None, &e);
                        continue;
                    }
                };
                for product_id in stale {
                    if let Err(e) = this.check(&product_id, true).await {
                        this.postponed(Some(&product_id), &e);
                    }
                }
            }
        });
    }
}

/// How often retention looks for old records.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// A built `report` node.
#[derive(Debug)]
pub struct ReportProcessor {
    description: NodeDescription,
    sink: Option<JsonLinesSink>,
    store: Option<Arc<Store>>,
    products: Option<Arc<Products>>,
    media: Option<MediaStore>,
    live: Option<dashboard::Live>,
    dashboard: Option<dashboard::Dashboard>,
    health: Health,
}

impl ReportProcessor {
    /// Where the dashboard listens, if this node serves one.
    pub fn dashboard_addr(&self) -> Option<std::net::SocketAddr> {
        self.dashboard.as_ref().map(dashboard::Dashboard::addr)
    }

    /// The JSON-lines sink records go to, if any.
    pub fn sink(&self) -> Option<&JsonLinesSink> {
        self.sink.as_ref()
    }

    /// The database records go to, if any.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_deref()
    }
}

#[async_trait]
impl Processor for ReportProcessor {
    fn describe(&self) -> NodeDescription {
        self.description.clone()
    }

    /// Writes one record; outputs nothing (a duplicate is not written, and is not an error).
    async fn process(&self, flow_file: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let now = loupe_sdk::flowfile::now_ms();
        let mut record = Inspection::from_flow_file(&flow_file, now);
        // `segment`'s overlay and mask belong to their parent's record: media only.
        let is_child = flow_file
            .attr("segment.output")
            .is_some_and(|o| !o.is_empty());
        let uuid = flow_file.uuid.clone();
        if let Some(media) = &self.media {
            // Synced before the record is committed; on error there is no record, so none
            // can point at a missing image.
            let (media, content, for_record) = (media.clone(), flow_file.clone(), record.clone());
            let path = tokio::task::spawn_blocking(move || {
                media.store(&content, &for_record, &day::day_of(now))
            })
            .await
            .map_err(|e| ProcessError::internal(format!("media store: {e}")))?
            .map_err(|e| {
                write_failed(
                    &self.health.media,
                    &uuid,
                    e.is_transient(),
                    ErrorKind::Internal,
                    e.to_string(),
                )
            })?;
            self.health.media.succeeded();
            record.media_path = Some(path);
        }
        if let Some(store) = self.store.as_ref().filter(|_| !is_child) {
            // The runner retries transient errors: a database restart or hang loses nothing.
            let written = store.insert(&record).await.map_err(|e| {
                // The database rejected the record for its data.
                write_failed(
                    &self.health.store,
                    &uuid,
                    e.is_transient(),
                    ErrorKind::InvalidInput,
                    e.to_string(),
                )
            })?;
            self.health.store.succeeded();
            if let (Some(live), Written::Recorded) = (&self.live, written) {
                live.publish(Stored {
                    record: record.clone(),
                    review: None,
                });
            }
            if let (Some(products), Some(product_id)) = (&self.products, &record.product_id)
                && record.fragment_count.is_some()
            {
                // The record is stored; a failure to decide now is retried by the sweeper.
                if let Err(e) = products.check(product_id, false).await {
                    products.postponed(Some(product_id), &e);
                }
            }
        }
        if let Some(sink) = &self.sink {
            sink.write(flow_file).await.map_err(|e| {
                let (transient, message) = (e.is_transient(), e.to_string());
                let kind = ProcessError::from(e).kind;
                write_failed(&self.health.sink, &uuid, transient, kind, message)
            })?;
            self.health.sink.succeeded();
        }
        Ok(Vec::new())
    }

    async fn stop(&self) {
        if let Some(sink) = &self.sink
            && let Err(e) = sink.sync().await
        {
            tracing::warn!(error = %e, "could not sync the report on stop");
        }
    }
}
