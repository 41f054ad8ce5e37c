//! The running `capture` node: one [`Source`] over its inputs (directory, upload,
//! snapshot), and a pass-through [`Processor`].
//!
//! A pull offers, in this order, uploads (a client is waiting), snapshots, then directory
//! files, up to `max` in all. Delivery ids tell the inputs apart (`upload-...`,
//! `snapshot-...`, anything else is a directory file), so an acknowledgement reaches the
//! input that made the offer. Only a capture with a directory ever reports `exhausted`: when
//! the directory is, and no upload or snapshot is waiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loupe_sdk::{
    BuildContext, FlowFile, NodeDescription, NodeError, Output, ProcessError, Processor, Pulled,
    Source,
};
use tokio::sync::Notify;

use crate::directory::DirectoryInput;
use crate::error::CaptureError;
use crate::metadata::Metadata;
use crate::settings::CaptureSettings;
use crate::snapshot::SnapshotInput;
use crate::spool::Spool;
use crate::upload::UploadInput;

/// A built `capture` node: a [`Source`] of the files of its inputs, and a pass-through
/// [`Processor`]. Dropping it stops the upload endpoint and the snapshot poller.
pub struct CaptureSource {
    description: NodeDescription,
    directory: Option<DirectoryInput>,
    upload: Option<UploadInput>,
    snapshot: Option<SnapshotInput>,
    /// Woken when an upload or snapshot becomes ready, so a waiting pull returns at once.
    notify: Arc<Notify>,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("directory", &self.directory)
            .field("upload", &self.upload_addr())
            .field("snapshot", &self.snapshot.is_some())
            .finish_non_exhaustive()
    }
}

impl CaptureSource {
    /// Resolves and checks the settings against the world (the directory must exist,
    /// `move_to` is created, the upload address is bound, the snapshot poller starts) and
    /// builds the node. Must run inside a tokio runtime.
    pub async fn open(settings: CaptureSettings, ctx: &BuildContext) -> Result<Self, CaptureError> {
        let metadata = Arc::new(Metadata::new(&settings.metadata)?);
        let notify = Arc::new(Notify::new());
        let directory = match &settings.directory {
            Some(dir) => Some(DirectoryInput::open(dir, &settings, ctx, metadata.clone()).await?),
            None => None,
        };
        let redeliver_after = settings.redeliver_after.get();
        let upload = match &settings.upload {
            Some(upload) => {
                let dir = match &upload.spool {
                    Some(dir) => ctx.resolve(dir),
                    None => ctx.resolve(".loupe/spool").join(&ctx.node_id),
                };
                let spool = Spool::open(dir.clone())
                    .map_err(|source| CaptureError::Spool { path: dir, source })?;
                Some(
                    UploadInput::start(
                        upload,
                        &ctx.base_dir,
                        ctx.max_message_bytes,
                        redeliver_after,
                        metadata.clone(),
                        notify.clone(),
                        spool,
                    )
                    .await?,
                )
            }
            None => None,
        };
        let snapshot = match &settings.snapshot {
            Some(snapshot) => {
                let started = SnapshotInput::start(
                    snapshot,
                    &ctx.base_dir,
                    ctx.max_message_bytes,
                    redeliver_after,
                    metadata,
                    notify.clone(),
                );
                match started {
                    Ok(s) => Some(s),
                    Err(e) => {
                        if let Some(u) = &upload {
                            u.stop();
                        }
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let description = loupe_sdk::factory::describe::<crate::Capture>(&settings, ctx);
        Ok(CaptureSource {
            description,
            directory,
            upload,
            snapshot,
            notify,
        })
    }

    /// The address the upload endpoint is bound to (its real port when `listen` asked for
    /// port 0), if uploads are on.
    pub fn upload_addr(&self) -> Option<SocketAddr> {
        self.upload.as_ref().map(UploadInput::addr)
    }

    fn shutdown(&self) {
        if let Some(u) = &self.upload {
            u.stop();
        }
        if let Some(s) = &self.snapshot {
            s.stop();
        }
    }

    /// Uploads and snapshots waiting for a pull.
    fn ready_in_memory(&self) -> usize {
        self.upload.as_ref().map_or(0, |u| u.queue.ready())
            + self.snapshot.as_ref().map_or(0, |s| s.queue.ready())
    }

    /// One round over every input; cancel-safe (nothing is taken after the last `.await`).
    async fn round(&self, max: usize) -> Result<Pulled, NodeError> {
        let mut pulled = Pulled::default();
        if let Some(dir) = &self.directory {
            let room = max.saturating_sub(self.ready_in_memory());
            let only_input = self.upload.is_none() && self.snapshot.is_none();
            // With nothing else to offer, a failing scan is the answer; otherwise it is
            // logged and the other inputs are still served.
            if room > 0 || only_input {
                match dir.pass(room).await {
                    Ok(p) => {
                        pulled.exhausted = p.exhausted && self.ready_in_memory() == 0;
                        pulled.offers = p.offers;
                    }
                    Err(e) if only_input || self.ready_in_memory() == 0 => {
                        return Err(e.into());
                    }
                    Err(e) => tracing::warn!(error = %e, "directory scan failed"),
                }
            }
        }
        // From here on, no `.await`.
        let mut offers = Vec::new();
        if let Some(u) = &self.upload {
            offers.extend(u.queue.take(max.saturating_sub(pulled.offers.len())));
        }
        if let Some(s) = &self.snapshot {
            let room = max.saturating_sub(pulled.offers.len() + offers.len());
            offers.extend(s.queue.take(room));
        }
        offers.append(&mut pulled.offers);
        pulled.offers = offers;
        Ok(pulled)
    }
}

impl Drop for CaptureSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[async_trait]
impl Source for CaptureSource {
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let woken = self.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let pulled = self.round(max).await?;
            let now = tokio::time::Instant::now();
            if !pulled.offers.is_empty() || pulled.exhausted || max == 0 || now >= deadline {
                return Ok(pulled);
            }
            let nap = match &self.directory {
                Some(dir) => dir.poll_interval().min(deadline - now),
                None => deadline - now,
            };
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError> {
        let mut dir_accepted = Vec::new();
        let mut dir_rejected = Vec::new();
        let in_memory = [
            self.upload.as_ref().map(|u| &u.queue),
            self.snapshot.as_ref().map(|s| &s.queue),
        ];
        let owner = |id: &str| in_memory.iter().flatten().find(|q| q.owns(id));
        for id in accepted {
            match owner(&id) {
                Some(q) => q.settle(std::slice::from_ref(&id), &[]),
                None => dir_accepted.push(id),
            }
        }
        for id in rejected {
            match owner(&id) {
                Some(q) => q.settle(&[], std::slice::from_ref(&id)),
                None => dir_rejected.push(id),
            }
        }
        match &self.directory {
            Some(dir) if !(dir_accepted.is_empty() && dir_rejected.is_empty()) => {
                dir.ack(dir_accepted, dir_rejected).await
            }
            _ => {
                for id in dir_accepted.iter().chain(&dir_rejected) {
                    tracing::debug!(delivery_id = %id, "acknowledged delivery not known");
                }
                Ok(())
            }
        }
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

    async fn stop(&self) {
        self.shutdown();
    }
}
