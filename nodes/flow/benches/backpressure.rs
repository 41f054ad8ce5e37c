//! Load test: a producer far faster than its consumer, through a bounded queue.
//!
//! A source offers 1 MiB FlowFiles as fast as it is asked; the sink takes ~1 ms each. With a
//! back-pressure threshold of 50 objects the queue holds at most ~50 MiB of content, so the
//! process's peak memory stays flat however much data passes. Prints throughput, the queue's
//! peak length and the process's peak RSS (Linux `VmHWM`).
//!
//! Run: `cargo bench -p loupe-flow --bench backpressure` (env `LOUPE_BENCH_ITEMS`, default 2000).
//!
//! The same flow measures the runner's own cost per FlowFile (queues, end-to-end
//! acknowledgement, provenance counting) when the sink does nothing:
//! `LOUPE_BENCH_ITEMS=200000 LOUPE_BENCH_SIZE=64 LOUPE_BENCH_SINK_US=0 cargo bench -p loupe-flow --bench backpressure`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use loupe_flow::runner::{RunOptions, run};
use loupe_sdk::pb::{NodeDescription, Offer};
use loupe_sdk::{
    BuildContext, FlowFile, Node, NodeError, NodeKind, Output, ProcessError, Processor, Pulled,
    Registry, Relationship, Source,
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GenSettings {
    count: usize,
    size: usize,
}

struct Generator {
    s: GenSettings,
    next: AtomicUsize,
    acked: AtomicUsize,
    payload: Bytes,
}

#[async_trait]
impl Processor for Generator {
    fn describe(&self) -> NodeDescription {
        NodeDescription {
            node_type: "gen".into(),
            ..Default::default()
        }
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![ff.to("success")])
    }
}

#[async_trait]
impl Source for Generator {
    async fn pull(&self, max: usize, _wait: Duration) -> Result<Pulled, NodeError> {
        let mut offers = Vec::new();
        while offers.len() < max {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= self.s.count {
                self.next.store(self.s.count, Ordering::SeqCst);
                break;
            }
            // A fresh copy per FlowFile, as a camera file read from disk would be.
            let content = Bytes::copy_from_slice(&self.payload);
            offers.push(Offer {
                delivery_id: i.to_string(),
                flow_file: Some(FlowFile::create(content, Default::default())),
            });
        }
        let exhausted = offers.is_empty() && self.acked.load(Ordering::SeqCst) >= self.s.count;
        Ok(Pulled { offers, exhausted })
    }
    async fn ack(&self, accepted: Vec<String>, _: Vec<String>) -> Result<(), NodeError> {
        self.acked.fetch_add(accepted.len(), Ordering::SeqCst);
        Ok(())
    }
}

struct Gen;
#[async_trait]
impl NodeKind for Gen {
    const TYPE: &'static str = "gen";
    const IS_SOURCE: bool = true;
    type Settings = GenSettings;
    fn relationships(_: &GenSettings) -> Vec<Relationship> {
        vec![Relationship::success()]
    }
    async fn build(s: GenSettings, _: &BuildContext) -> Result<Node, NodeError> {
        let payload = Bytes::from(vec![7u8; s.size]);
        Ok(Node::source(Generator {
            s,
            next: AtomicUsize::new(0),
            acked: AtomicUsize::new(0),
            payload,
        }))
    }
}

/// The sink's time per FlowFile.
struct SlowSink(Duration);
#[async_trait]
impl Processor for SlowSink {
    fn describe(&self) -> NodeDescription {
        NodeDescription {
            node_type: "slow".into(),
            ..Default::default()
        }
    }
    async fn process(&self, _ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        if !self.0.is_zero() {
            tokio::time::sleep(self.0).await;
        }
        Ok(vec![])
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SlowSettings {
    micros: u64,
}

struct Slow;
#[async_trait]
impl NodeKind for Slow {
    const TYPE: &'static str = "slow";
    type Settings = SlowSettings;
    fn relationships(_: &SlowSettings) -> Vec<Relationship> {
        Vec::new()
    }
    async fn build(s: SlowSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::processor(SlowSink(Duration::from_micros(s.micros))))
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let items = env_or("LOUPE_BENCH_ITEMS", 2000);
    let size = env_or("LOUPE_BENCH_SIZE", 1024 * 1024);
    let micros = env_or("LOUPE_BENCH_SINK_US", 1000);
    let registry = Registry::new().with::<Gen>().with::<Slow>();
    let yaml = format!(
        r#"
nodes:
  - {{ id: gen, type: gen, settings: {{ count: {items}, size: {size} }} }}
  - {{ id: sink, type: slow, settings: {{ micros: {micros} }} }}
connections:
  - {{ from: gen.success, to: sink, back_pressure: {{ objects: 50, bytes: 1 GB }} }}
"#
    );
    let flow = loupe_flow::compile_str(&yaml, Path::new("bench.yaml"), &registry)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = RunOptions {
        once: true,
        ..Default::default()
    };
    let summary = rt
        .block_on(run(&flow, &registry, options, std::future::pending()))
        .expect("run");
    let total_mib = (items * size) as f64 / 1048576.0;
    println!(
        "backpressure: {items} x {size} B ({total_mib:.0} MiB), sink {micros} us each, in {:.2}s = {:.0} FlowFiles/s; queue peak {} (threshold {}); peak RSS {:.1} MiB",
        summary.elapsed_s,
        items as f64 / summary.elapsed_s,
        summary.queues[0].peak_len,
        summary.queues[0].objects_threshold,
        summary.peak_rss_bytes as f64 / 1048576.0
    );
    assert!(summary.queues[0].peak_len <= 50);
}
