//! The tasks that move FlowFiles: source loops and processor workers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_sdk::pb::Output;
use loupe_sdk::{ErrorKind, FlowFile, ProcessError};

use super::provenance::{EventType, event};
use super::{NodeRuntime, Shared};
use crate::queue::QueuedFlowFile;

/// Most offers asked of a source at once.
const MAX_PULL: usize = 64;
/// How long one pull waits for the source to have something.
const PULL_WAIT: Duration = Duration::from_millis(250);
/// Longest a worker sleeps before re-checking its queues (penalties, shutdown).
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// Waits until no outgoing queue of `node` is full (NiFi does not schedule a processor whose
/// outgoing connection is under back pressure). Returns false when `cancel` fires first.
async fn wait_for_room(
    shared: &Shared,
    node: &NodeRuntime,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    for &q in &node.outgoing {
        tokio::select! {
            _ = shared.queues[q].wait_not_full() => {}
            _ = cancel.cancelled() => return false,
        }
    }
    true
}

/// Pulls offers from a source node, enqueues them, then acknowledges them.
pub(crate) async fn source_loop(shared: Arc<Shared>, index: usize) {
    let node = &shared.nodes[index];
    let source = node
        .source
        .clone()
        .expect("source loop runs only for sources");
    let cancel = shared.stop_sources.clone();
    loop {
        if cancel.is_cancelled() || !wait_for_room(&shared, node, &cancel).await {
            break;
        }
        let room = node
            .outgoing
            .iter()
            .map(|&q| shared.queues[q].room())
            .min()
            .unwrap_or(MAX_PULL)
            .clamp(1, MAX_PULL);
        // Counted in flight from before the pull until the offers are queued, so a `--once`
        // run cannot end between the two.
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let pulled = tokio::select! {
            r = source.pull(room, PULL_WAIT) => r,
            _ = cancel.cancelled() => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                break;
            }
        };
        let pulled = match pulled {
            Ok(p) => p,
            Err(e) => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(node = %node.id, error = %e, "source pull failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
        };
        let mut accepted = Vec::with_capacity(pulled.offers.len());
        let had_offers = !pulled.offers.is_empty();
        for offer in pulled.offers {
            let Some(flow_file) = offer.flow_file else {
                continue;
            };
            node.stats.received.fetch_add(1, Ordering::Relaxed);
            shared
                .provenance
                .record(event(EventType::Receive, &flow_file.uuid, &node.id))
                .await;
            let input = flow_file.clone();
            route(
                &shared,
                node,
                &input,
                vec![flow_file.to(loupe_sdk::SUCCESS)],
            )
            .await;
            accepted.push(offer.delivery_id);
        }
        if !accepted.is_empty() {
            // Only now may the source delete its input. If the acknowledgement is lost the
            // source offers the same input again: at-least-once, never lost.
            if let Err(e) = source.ack(accepted, Vec::new()).await {
                tracing::warn!(node = %node.id, error = %e, "acknowledgement failed; the source will offer again");
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if pulled.exhausted && !had_offers && shared.once {
            break;
        }
    }
    shared.sources_active.fetch_sub(1, Ordering::SeqCst);
}

/// Takes the next ready FlowFile from the node's incoming queues, round-robin.
async fn take(
    shared: &Shared,
    node: &NodeRuntime,
    next: &mut usize,
) -> Option<(usize, QueuedFlowFile)> {
    let n = node.incoming.len();
    for k in 0..n {
        let q = node.incoming[(*next + k) % n];
        let popped = shared.queues[q].try_pop();
        for expired in popped.expired {
            let mut e = event(EventType::Expire, &expired.flow_file.uuid, &node.id);
            e.details = Some(format!("expired in connection {}", shared.queues[q].id()));
            shared.provenance.record(e).await;
        }
        if let Some(item) = popped.item {
            *next = (*next + k + 1) % n;
            return Some((q, item));
        }
    }
    None
}

/// One worker of a processor node.
pub(crate) async fn processor_loop(shared: Arc<Shared>, index: usize) {
    let node = &shared.nodes[index];
    let finished = shared.finished.clone();
    let mut next = 0;
    loop {
        if finished.is_cancelled() || !wait_for_room(&shared, node, &finished).await {
            break;
        }
        // Register for wake-ups before looking, so a push between the look and the wait is
        // not missed.
        let notified = node.wakeup.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        match take(&shared, node, &mut next).await {
            Some((queue, item)) => {
                handle(&shared, node, queue, item).await;
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            None => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                let now = tokio::time::Instant::now();
                let wake = node
                    .incoming
                    .iter()
                    .filter_map(|&q| shared.queues[q].next_ready_at())
                    .min()
                    .unwrap_or(now + IDLE_RECHECK)
                    .min(now + IDLE_RECHECK);
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = finished.cancelled() => break,
                }
            }
        }
    }
}

async fn handle(shared: &Shared, node: &NodeRuntime, queue: usize, mut item: QueuedFlowFile) {
    if item.attempts == 0 {
        node.stats.received.fetch_add(1, Ordering::Relaxed);
    }
    let input = item.flow_file.clone();
    let started = Instant::now();
    match node.invoker.invoke(item.flow_file.clone(), None).await {
        Ok(outputs) => {
            node.stats.record_latency(started.elapsed());
            if let Some(endpoints) = &node.remote {
                let mut e = event(EventType::RemoteInvocation, &input.uuid, &node.id);
                e.details = Some(endpoints.clone());
                shared.provenance.record(e).await;
            }
            route(shared, node, &input, outputs).await;
        }
        Err(err) => {
            item.attempts += 1;
            node.stats.retries.fetch_add(1, Ordering::Relaxed);
            if item.attempts >= node.retry.max_attempts {
                tracing::error!(node = %node.id, uuid = %input.uuid, error = %err, "giving up");
                let reason = ProcessError::new(
                    ErrorKind::RetriesExhausted,
                    format!("gave up after {} attempts: {}", item.attempts, err.message),
                );
                let failed = input.clone().with_error(&reason);
                route(shared, node, &input, vec![failed.to(loupe_sdk::FAILURE)]).await;
            } else {
                let penalty = node.retry.backoff(item.attempts);
                tracing::warn!(
                    node = %node.id, uuid = %input.uuid, attempt = item.attempts,
                    retry_in = ?penalty, error = %err, "transport error; will retry"
                );
                shared.queues[queue].penalize(item, penalty);
            }
        }
    }
}

/// Records provenance for the outputs of `node` and pushes them into the connections of their
/// relationships (waiting while a queue is full).
async fn route(shared: &Shared, node: &NodeRuntime, input: &FlowFile, outputs: Vec<Output>) {
    for output in outputs {
        let Some(flow_file) = output.flow_file else {
            continue;
        };
        let mut relationship = output.relationship;
        let mut flow_file = flow_file;
        if flow_file.uuid == input.uuid {
            if flow_file.attributes != input.attributes {
                let e = event(EventType::AttributesModified, &flow_file.uuid, &node.id);
                shared.provenance.record(e).await;
            }
            if flow_file.content != input.content {
                let e = event(EventType::ContentModified, &flow_file.uuid, &node.id);
                shared.provenance.record(e).await;
            }
        } else {
            let mut e = event(EventType::Fork, &flow_file.uuid, &node.id);
            e.parent = Some(input.uuid.clone());
            shared.provenance.record(e).await;
        }
        let declared =
            node.routes.contains_key(&relationship) || node.auto_terminate.contains(&relationship);
        if !declared && relationship != loupe_sdk::FAILURE {
            // A node routed somewhere the flow does not know: keep the FlowFile, as a failure.
            let reason = ProcessError::internal(format!(
                "node `{}` routed to undeclared relationship `{relationship}`",
                node.id
            ));
            tracing::error!("{}", reason.message);
            flow_file = flow_file.with_error(&reason);
            relationship = loupe_sdk::FAILURE.to_string();
        }
        node.stats.count_out(&relationship);
        let mut e = event(EventType::Route, &flow_file.uuid, &node.id);
        e.relationship = Some(relationship.clone());
        shared.provenance.record(e).await;

        let targets = node
            .routes
            .get(&relationship)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if targets.is_empty() {
            let mut e = event(EventType::Drop, &flow_file.uuid, &node.id);
            e.relationship = Some(relationship.clone());
            e.details = Some(if node.auto_terminate.contains(&relationship) {
                "auto-terminated".into()
            } else {
                format!("relationship `{relationship}` has no connection")
            });
            shared.provenance.record(e).await;
            continue;
        }
        // The original goes to the last connection; the others get clones (NiFi's CLONE).
        for &q in &targets[..targets.len() - 1] {
            let mut copy = flow_file.clone();
            copy.uuid = uuid::Uuid::new_v4().to_string();
            let mut e = event(EventType::Clone, &copy.uuid, &node.id);
            e.parent = Some(flow_file.uuid.clone());
            shared.provenance.record(e).await;
            shared.queues[q].push(QueuedFlowFile::new(copy)).await;
        }
        let last = targets[targets.len() - 1];
        shared.queues[last]
            .push(QueuedFlowFile::new(flow_file))
            .await;
    }
}
