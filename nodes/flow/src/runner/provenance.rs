//! Provenance: what happened to every FlowFile, as NiFi records it.
//!
//! Events go through a bounded channel to a writer task (JSON lines, when a file is given);
//! a full channel slows the flow rather than growing memory. Counts per event type are kept
//! for the run summary.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// NiFi's provenance event types (those the runner emits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A source brought the FlowFile in.
    Receive,
    /// A node changed attributes.
    AttributesModified,
    /// A node changed content.
    ContentModified,
    /// A node routed the FlowFile to a relationship.
    Route,
    /// A relationship feeding several connections: a copy was made.
    Clone,
    /// A node produced a new FlowFile from this one.
    Fork,
    /// The FlowFile was sent to a remote node.
    RemoteInvocation,
    /// Auto-terminated: the FlowFile left the flow.
    Drop,
    /// The FlowFile was older than its connection's expiration.
    Expire,
}

/// One provenance event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When, Unix epoch milliseconds.
    pub time_ms: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The FlowFile.
    pub uuid: String,
    /// The node where it happened.
    pub node: String,
    /// Relationship, for ROUTE/DROP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// The parent FlowFile, for CLONE/FORK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Free text (the reason of a DROP, the endpoint of a REMOTE_INVOCATION, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// Where events go.
pub struct Provenance {
    tx: Option<mpsc::Sender<Event>>,
    counts: Mutex<BTreeMap<EventType, u64>>,
}

/// The writer task of a provenance file.
pub type WriterTask = tokio::task::JoinHandle<std::io::Result<()>>;

impl Provenance {
    /// Records counts only.
    pub fn counting() -> Self {
        Provenance {
            tx: None,
            counts: Mutex::default(),
        }
    }

    /// Records counts and appends events as JSON lines to `path`.
    pub async fn to_file(path: &Path) -> std::io::Result<(Self, WriterTask)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        let (tx, mut rx) = mpsc::channel::<Event>(4096);
        let task = tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(file);
            while let Some(event) = rx.recv().await {
                let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
                line.push(b'\n');
                out.write_all(&line).await?;
                if rx.is_empty() {
                    out.flush().await?;
                }
            }
            out.flush().await
        });
        Ok((
            Provenance {
                tx: Some(tx),
                counts: Mutex::default(),
            },
            task,
        ))
    }

    /// Records one event.
    pub async fn record(&self, event: Event) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.event_type)
            .or_default() += 1;
        if let Some(tx) = &self.tx {
            // A closed writer (disk error) must not stop the flow; the error surfaces at the end.
            let _ = tx.send(event).await;
        }
    }

    /// Events recorded so far, per type.
    pub fn counts(&self) -> BTreeMap<EventType, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the channel so the writer task finishes.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// An event now.
pub fn event(event_type: EventType, uuid: &str, node: &str) -> Event {
    Event {
        time_ms: loupe_sdk::flowfile::now_ms(),
        event_type,
        uuid: uuid.to_string(),
        node: node.to_string(),
        relationship: None,
        parent: None,
        details: None,
    }
}
