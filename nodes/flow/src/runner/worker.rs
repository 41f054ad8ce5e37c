//! The tasks that move FlowFiles: source loops, acknowledgement loops and processor workers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_sdk::pb::Output;
use loupe_sdk::{ErrorKind, FlowFile, ProcessError};

use super::provenance::{EventType, event};
use super::{NodeRuntime, Shared};
use crate::ack::Claim;
use crate::queue::QueuedFlowFile;

/// Most offers asked of a source at once.
const MAX_PULL: usize = 64;
/// How long one pull waits for the source to have something.
const PULL_WAIT: Duration = Duration::from_millis(250);
/// Longest a worker sleeps before re-checking its queues (penalties, shutdown).
const IDLE_RECHECK: Duration = Duration::from_millis(100);
/// Pause after a pull that offered nothing.
const EMPTY_PULL_PAUSE: Duration = Duration::from_millis(10);
/// Longest the last acknowledgements of a run may take.
const FINAL_ACK_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Pulls offers from a source node and sends each into the flow with a claim on its offer.
/// The source is told about an offer by [`ack_loop`] only when the claims are settled.
pub(crate) async fn source_loop(shared: Arc<Shared>, index: usize) {
    let node = &shared.nodes[index];
    let (Some(source), Some(ledger)) = (node.source.clone(), node.ledger.clone()) else {
        unreachable!("source loop runs only for sources");
    };
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
        let pulled = tokio::select! {
            r = source.pull(room, PULL_WAIT) => r,
            _ = cancel.cancelled() => break,
        };
        let pulled = match pulled {
            Ok(p) => {
                node.trouble.succeeded();
                p
            }
            Err(e) => {
                node.trouble.failed(&format_args!("source pull: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = cancel.cancelled() => break,
                }
            }
        };
        let had_offers = !pulled.offers.is_empty();
        for offer in pulled.offers {
            // An offer without a FlowFile is not opened: the source offers it again after its
            // redelivery time.
            let Some(flow_file) = offer.flow_file else {
                continue;
            };
            let claim = ledger.open(offer.delivery_id);
            node.stats.received.fetch_add(1, Ordering::Relaxed);
            shared
                .provenance
                .record(event(EventType::Receive, &flow_file.uuid, &node.id))
                .await;
            let input = flow_file.clone();
            let outputs = vec![flow_file.to(loupe_sdk::SUCCESS)];
            route(&shared, node, &input, outputs, claim).await;
        }
        if pulled.exhausted && !had_offers && shared.once {
            break;
        }
        if !had_offers {
            // A source that answers "nothing yet" at once (not waiting as asked) must not
            // make this task spin: it would hold its worker thread and starve the tasks
            // whose acknowledgements it is waiting for.
            tokio::select! {
                _ = tokio::time::sleep(EMPTY_PULL_PAUSE) => {}
                _ = cancel.cancelled() => break,
            }
        }
    }
    shared.sources_active.fetch_sub(1, Ordering::SeqCst);
    shared.outstanding.poke();
}

/// Tells a source which of its offers are settled: accepted ones (every descendant reached a
/// final state; the source may delete its input) and rejected ones (offered again). Runs until
/// the flow is finished; what is settled after that is told by [`flush_settlements`].
pub(crate) async fn ack_loop(shared: Arc<Shared>, index: usize) {
    let node = &shared.nodes[index];
    loop {
        if !tell_source(node).await {
            tokio::select! {
                _ = node.ledger.as_ref().expect("sources have a ledger").wait() => {}
                _ = shared.finished.cancelled() => break,
            }
        }
    }
}

/// Tells every source what is settled now; called once the workers have stopped.
pub(crate) async fn flush_settlements(shared: &Shared) {
    for node in shared.nodes.iter().filter(|n| n.source.is_some()) {
        let told = tokio::time::timeout(FINAL_ACK_TIMEOUT, tell_source(node)).await;
        if told.is_err() {
            tracing::warn!(node = %node.id,
                "the last acknowledgements timed out; their inputs are offered again");
        }
    }
}

/// Sends the ledger's settlements to the source; false when there was nothing to send.
async fn tell_source(node: &NodeRuntime) -> bool {
    let (Some(source), Some(ledger)) = (&node.source, &node.ledger) else {
        return false;
    };
    let batch = ledger.take();
    let n = batch.len();
    if n == 0 {
        return false;
    }
    if let Err(e) = source.ack(batch.accepted, batch.rejected).await {
        // Not lost: the source offers an unacknowledged input again (after its redelivery
        // time, or when it restarts), and sinks are idempotent by uuid.
        node.trouble.failed(&format_args!(
            "acknowledgement: {e} (the source offers those inputs again)"
        ));
    } else {
        node.trouble.succeeded();
    }
    ledger.told(n);
    true
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
            // Expiration is a final state the flow asked for.
            expired.claim.settle();
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
        match take(&shared, node, &mut next).await {
            Some((queue, item)) => handle(&shared, node, queue, item).await,
            None => {
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
            node.trouble.succeeded();
            if let Some(endpoints) = &node.remote {
                let mut e = event(EventType::RemoteInvocation, &input.uuid, &node.id);
                e.details = Some(endpoints.clone());
                shared.provenance.record(e).await;
            }
            route(shared, node, &input, outputs, item.claim).await;
        }
        Err(err) => {
            item.attempts += 1;
            node.stats.retries.fetch_add(1, Ordering::Relaxed);
            if node.retry.exhausted(item.attempts) {
                tracing::error!(node = %node.id, uuid = %input.uuid, error = %err, "giving up");
                let reason = ProcessError::new(
                    ErrorKind::RetriesExhausted,
                    format!("gave up after {} attempts: {}", item.attempts, err.message),
                );
                let failed = input.clone().with_error(&reason);
                let outputs = vec![failed.to(loupe_sdk::FAILURE)];
                route(shared, node, &input, outputs, item.claim).await;
            } else {
                let penalty = node.retry.backoff(item.attempts);
                node.trouble.failed(&format_args!(
                    "{err} (FlowFiles wait in their queue and are retried)"
                ));
                tracing::debug!(
                    node = %node.id, uuid = %input.uuid, attempt = item.attempts,
                    retry_in = ?penalty, error = %err, "will retry"
                );
                shared.queues[queue].penalize(item, penalty);
            }
        }
    }
}

/// Records provenance for the outputs of `node` and pushes them into the connections of their
/// relationships (waiting while a queue is full).
///
/// `claim` is the input's share of its source offer: split once per FlowFile queued, or
/// settled when every output reached a final state here (auto-terminated, dropped).
async fn route(
    shared: &Shared,
    node: &NodeRuntime,
    input: &FlowFile,
    outputs: Vec<Output>,
    claim: Claim,
) {
    let mut pushes: Vec<(usize, FlowFile)> = Vec::new();
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
            let mut details = if node.auto_terminate.contains(&relationship) {
                "auto-terminated".to_string()
            } else {
                format!("relationship `{relationship}` has no connection")
            };
            // A failure dropped here says why, in the provenance and in the log.
            if let Some(kind) = flow_file.attr(loupe_sdk::attr::ERROR_KIND) {
                let message = flow_file
                    .attr(loupe_sdk::attr::ERROR_MESSAGE)
                    .unwrap_or_default();
                details = format!("{details}; {kind}: {message}");
                tracing::warn!(node = %node.id, uuid = %flow_file.uuid, %relationship,
                    "dropped a failed FlowFile: {kind}: {message}");
            }
            e.details = Some(details);
            shared.provenance.record(e).await;
            continue;
        }
        // The original goes to the last connection; the others get clones (NiFi's CLONE),
        // whose uuids derive from the original's and the connection's, so a redelivered
        // FlowFile's clones are the same FlowFiles again and idempotent sinks stay
        // exactly-once.
        for &q in &targets[..targets.len() - 1] {
            let mut copy = flow_file.clone();
            copy.uuid = clone_uuid(&flow_file.uuid, shared.queues[q].id());
            let mut e = event(EventType::Clone, &copy.uuid, &node.id);
            e.parent = Some(flow_file.uuid.clone());
            shared.provenance.record(e).await;
            pushes.push((q, copy));
        }
        pushes.push((targets[targets.len() - 1], flow_file));
    }
    if pushes.is_empty() {
        // Every output reached a final state here.
        claim.settle();
        return;
    }
    let mut claims: Vec<Claim> = (1..pushes.len()).map(|_| claim.split()).collect();
    claims.push(claim);
    for ((q, flow_file), claim) in pushes.into_iter().zip(claims) {
        shared.queues[q]
            .push(QueuedFlowFile::claimed(flow_file, claim))
            .await;
    }
}

/// The uuid of the clone of FlowFile `parent` sent into connection `connection`.
fn clone_uuid(parent: &str, connection: &str) -> String {
    let name = format!("{parent}\n{connection}");
    uuid::Uuid::new_v5(&CLONE_NAMESPACE, name.as_bytes()).to_string()
}

/// Namespace of clone uuids (random, fixed: changing it would change every clone's uuid).
const CLONE_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2f6e_51c4_8d0a_4b7e_a3c9_60d1_7e5b_9c42);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_uuids_are_stable_and_distinct_per_connection() {
        let a = clone_uuid("u1", "a.success->b");
        assert_eq!(a, clone_uuid("u1", "a.success->b"));
        assert_ne!(a, clone_uuid("u1", "a.success->c"));
        assert_ne!(a, clone_uuid("u2", "a.success->b"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
