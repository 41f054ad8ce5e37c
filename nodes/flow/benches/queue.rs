//! Throughput of one connection queue: push N FlowFiles, then pop them all.
//!
//! `cargo bench -p loupe-flow --bench queue`. Results and machine: `benches/README.md`.
//!
//! The FlowFiles are built in the untimed setup of each batch, so the figures are the queue's
//! own cost (sort key, heap, lock, wake-ups), not FlowFile construction.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loupe_flow::Prioritizer;
use loupe_flow::queue::{FlowQueue, QueuedFlowFile};
use loupe_sdk::FlowFile;
use loupe_sdk::attr::PRIORITY;
use tokio::sync::Notify;

const SIZES: [usize; 2] = [1_000, 10_000];

/// `n` small FlowFiles; for the priority prioritizer each carries a pseudo-random integer
/// `priority` (a few non-integers too, as real flows have), so the heap really reorders.
fn items(n: usize, with_priority: bool) -> Vec<QueuedFlowFile> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            let mut f = FlowFile::create(bytes::Bytes::from_static(&[0u8; 64]), Default::default());
            if with_priority {
                // xorshift: deterministic, cheap, spread out.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let value = if i % 10 == 9 {
                    format!("batch-{}", x % 100)
                } else {
                    (x % 1_000).to_string()
                };
                f = f.with_attr(PRIORITY, value);
            }
            QueuedFlowFile::new(f)
        })
        .collect()
}

fn queue(prioritizer: Prioritizer, n: usize) -> FlowQueue {
    FlowQueue::new(
        "bench",
        prioritizer,
        n,
        u64::MAX,
        None,
        Arc::new(Notify::new()),
    )
}

fn cases() -> [(&'static str, Prioritizer); 2] {
    [
        ("fifo", Prioritizer::Fifo),
        ("priority-attribute", Prioritizer::PriorityAttribute),
    ]
}

/// `try_push` all, then `try_pop` all: the synchronous path the runner's consumers use.
fn push_then_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue/push_then_pop");
    for (name, prioritizer) in cases() {
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                let with_priority = prioritizer == Prioritizer::PriorityAttribute;
                b.iter_batched(
                    || (queue(prioritizer, n), items(n, with_priority)),
                    |(q, items)| {
                        for item in items {
                            q.try_push(item).expect("threshold is n");
                        }
                        let mut popped = 0;
                        while let Some(item) = q.try_pop().item {
                            black_box(&item);
                            popped += 1;
                        }
                        assert_eq!(popped, n);
                        // Dropping the emptied queue is part of the batch, not the setup:
                        // returning it keeps that out of the timing.
                        q
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

/// One producer task `push`ing (async, back pressure at 100) while a consumer task pops,
/// sleeping on its `Notify` when the queue is empty: the hand-off path with wake-ups, on a
/// 2-worker runtime.
fn producer_consumer(c: &mut Criterion) {
    const THRESHOLD: usize = 100;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("queue/producer_consumer_bp100");
    for (name, prioritizer) in cases() {
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                let with_priority = prioritizer == Prioritizer::PriorityAttribute;
                b.to_async(&rt).iter_batched(
                    || items(n, with_priority),
                    |items| async move {
                        let wakeup = Arc::new(Notify::new());
                        let q = Arc::new(FlowQueue::new(
                            "bench",
                            prioritizer,
                            THRESHOLD,
                            u64::MAX,
                            None,
                            wakeup.clone(),
                        ));
                        let producer = tokio::spawn({
                            let q = q.clone();
                            async move {
                                for item in items {
                                    q.push(item).await;
                                }
                            }
                        });
                        let mut popped = 0;
                        while popped < n {
                            let notified = wakeup.notified();
                            match q.try_pop().item {
                                Some(item) => {
                                    black_box(&item);
                                    popped += 1;
                                }
                                None => notified.await,
                            }
                        }
                        producer.await.expect("producer");
                        assert!(q.peak_len() <= THRESHOLD);
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, push_then_pop, producer_consumer);
criterion_main!(benches);
