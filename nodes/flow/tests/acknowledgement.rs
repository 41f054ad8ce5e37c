//! End-to-end acknowledgement: a source's offer is accepted only when every FlowFile
//! descended from it reached a final state; a drain leaves what it did not finish
//! unacknowledged; a failed start stops the nodes already started.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loupe_flow::runner::{RunError, RunOptions, run};
use loupe_sdk::pb::{NodeDescription, Offer};
use loupe_sdk::{
    BuildContext, FlowFile, Node, NodeError, NodeKind, Output, ProcessError, Processor, Pulled,
    Registry, Relationship, Source,
};
use serde::Deserialize;

/// Per test (by `name`): what the source was told, what the sinks saw.
#[derive(Default, Clone)]
struct Log {
    accepted: BTreeSet<usize>,
    rejected: BTreeSet<usize>,
    /// Sink name -> offers (`n`) it recorded.
    recorded: HashMap<String, Vec<usize>>,
    /// Uuids the sinks recorded.
    uuids: HashMap<String, Vec<String>>,
    /// A sink saw a FlowFile whose offer was already accepted.
    early: Vec<usize>,
    stopped: BTreeSet<String>,
}

static LOGS: LazyLock<Mutex<HashMap<String, Log>>> = LazyLock::new(Default::default);

fn log(name: &str) -> Log {
    LOGS.lock().unwrap().get(name).cloned().unwrap_or_default()
}

fn with_log(name: &str, f: impl FnOnce(&mut Log)) {
    f(LOGS.lock().unwrap().entry(name.to_string()).or_default());
}

fn description(node_type: &str, rels: &[&str]) -> NodeDescription {
    NodeDescription {
        node_type: node_type.into(),
        relationships: rels.iter().map(|r| Relationship::new(*r, "")).collect(),
        ..Default::default()
    }
}

// ---- `offers`: a source of `count` FlowFiles that offers rejected ones again ----

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OffersSettings {
    name: String,
    count: usize,
    /// Answer an empty pull at once instead of waiting as asked.
    #[serde(default)]
    impatient: bool,
}

struct Offers {
    s: OffersSettings,
    state: Mutex<(usize, VecDeque<usize>)>,
}

#[async_trait]
impl Processor for Offers {
    fn describe(&self) -> NodeDescription {
        description("offers", &["success"])
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![ff.to("success")])
    }
}

#[async_trait]
impl Source for Offers {
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError> {
        let mut offers = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            while offers.len() < max {
                let n = match st.1.pop_front() {
                    Some(n) => n,
                    None if st.0 < self.s.count => {
                        st.0 += 1;
                        st.0 - 1
                    }
                    None => break,
                };
                let mut ff = FlowFile::create(vec![1u8; 16], HashMap::new());
                ff.uuid = format!("00000000-0000-4000-8000-{n:012}");
                offers.push(Offer {
                    delivery_id: n.to_string(),
                    flow_file: Some(ff.with_attr("n", n.to_string())),
                });
            }
        }
        let l = log(&self.s.name);
        let exhausted = offers.is_empty() && l.accepted.len() + l.rejected.len() >= self.s.count;
        if offers.is_empty() && !exhausted && !self.s.impatient {
            tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
        }
        Ok(Pulled { offers, exhausted })
    }
    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError> {
        let n =
            |ids: Vec<String>| -> Vec<usize> { ids.iter().map(|i| i.parse().unwrap()).collect() };
        with_log(&self.s.name, |l| {
            l.accepted.extend(n(accepted));
            l.rejected.extend(n(rejected));
        });
        Ok(())
    }
}

struct OffersKind;
#[async_trait]
impl NodeKind for OffersKind {
    const TYPE: &'static str = "offers";
    const IS_SOURCE: bool = true;
    type Settings = OffersSettings;
    fn relationships(_: &OffersSettings) -> Vec<Relationship> {
        vec![Relationship::success()]
    }
    async fn build(s: OffersSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::source(Offers {
            s,
            state: Mutex::new((0, VecDeque::new())),
        }))
    }
}

// ---- `record`: a sink; notes a FlowFile whose offer was accepted before it got here ----

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecordSettings {
    /// The test's log.
    name: String,
    /// This sink's name in the log.
    sink: String,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    fail_start: bool,
}

struct Record {
    s: RecordSettings,
}

#[async_trait]
impl Processor for Record {
    fn describe(&self) -> NodeDescription {
        description("record", &[])
    }
    async fn start(&self) -> Result<(), NodeError> {
        if self.s.fail_start {
            return Err(NodeError::Other("cannot start".into()));
        }
        Ok(())
    }
    async fn stop(&self) {
        with_log(&self.s.name, |l| {
            l.stopped.insert(self.s.sink.clone());
        });
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        if self.s.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.s.delay_ms)).await;
        }
        let n: usize = ff.attr("n").unwrap().parse().unwrap();
        with_log(&self.s.name, |l| {
            if l.accepted.contains(&n) {
                l.early.push(n);
            }
            l.recorded.entry(self.s.sink.clone()).or_default().push(n);
            l.uuids
                .entry(self.s.sink.clone())
                .or_default()
                .push(ff.uuid.clone());
        });
        Ok(vec![])
    }
}

struct RecordKind;
#[async_trait]
impl NodeKind for RecordKind {
    const TYPE: &'static str = "record";
    type Settings = RecordSettings;
    fn relationships(_: &RecordSettings) -> Vec<Relationship> {
        Vec::new()
    }
    async fn build(s: RecordSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::processor(Record { s }))
    }
}

fn registry() -> Registry {
    Registry::new().with::<OffersKind>().with::<RecordKind>()
}

fn compile(yaml: &str) -> loupe_flow::CompiledFlow {
    loupe_flow::compile_str(yaml, Path::new("ack-flow.yaml"), &registry())
        .unwrap_or_else(|e| panic!("flow does not compile: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_is_accepted_only_after_every_clone_reached_its_sink() {
    let yaml = r#"
nodes:
  - { id: src, type: offers, settings: { name: fan, count: 300 } }
  - { id: fast, type: record, concurrency: 2, settings: { name: fan, sink: fast } }
  - { id: slow, type: record, settings: { name: fan, sink: slow, delay_ms: 2 } }
connections:
  - { from: src.success, to: fast, back_pressure: { objects: 50 } }
  - { from: src.success, to: slow, back_pressure: { objects: 50 } }
"#;
    let options = RunOptions {
        once: true,
        ..Default::default()
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run(&compile(yaml), &registry(), options, std::future::pending()),
    )
    .await
    .expect("a --once run ends when every offer is settled")
    .unwrap();
    let l = log("fan");
    assert!(
        l.early.is_empty(),
        "accepted before a sink had it: {:?}",
        l.early
    );
    assert_eq!(l.accepted, (0..300).collect::<BTreeSet<_>>());
    assert!(l.rejected.is_empty());
    for sink in ["fast", "slow"] {
        let mut seen = l.recorded[sink].clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..300).collect::<Vec<_>>(), "{sink} saw each once");
    }
    // The clone carries a uuid derived from its original's: distinct, and not random.
    let fast: BTreeSet<_> = l.uuids["fast"].iter().collect();
    let slow: BTreeSet<_> = l.uuids["slow"].iter().collect();
    assert!(fast.is_disjoint(&slow));
    assert_eq!(summary.left_in_queues, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_in_time_and_leaves_what_it_did_not_finish_unacknowledged() {
    let yaml = r#"
nodes:
  - { id: src, type: offers, settings: { name: drain, count: 100000 } }
  - { id: sink, type: record, settings: { name: drain, sink: sink, delay_ms: 20 } }
connections:
  - { from: src.success, to: sink, back_pressure: { objects: 500 } }
"#;
    let options = RunOptions {
        drain_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let shutdown = tokio::time::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let flow = compile(yaml);
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        run(&flow, &registry(), options, shutdown),
    )
    .await
    .expect("the drain is bounded")
    .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "drain took {took:?}");
    let l = log("drain");
    let recorded: BTreeSet<usize> = l.recorded["sink"].iter().copied().collect();
    assert!(!recorded.is_empty());
    assert_eq!(
        l.accepted, recorded,
        "exactly the recorded offers are accepted; the rest stay with the source"
    );
    assert!(l.rejected.is_disjoint(&l.accepted));
    assert!(
        summary.left_in_queues > 0,
        "the drain did not wait for the queue"
    );
    assert!(l.stopped.contains("sink"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_stops_the_nodes_already_started() {
    let yaml = r#"
nodes:
  - { id: src, type: offers, settings: { name: start, count: 1 } }
  - { id: first, type: record, settings: { name: start, sink: first } }
  - { id: second, type: record, settings: { name: start, sink: second, fail_start: true } }
connections:
  - { from: src.success, to: first }
  - { from: src.success, to: second }
"#;
    let options = RunOptions {
        once: true,
        ..Default::default()
    };
    let err = run(&compile(yaml), &registry(), options, std::future::pending())
        .await
        .expect_err("the second node cannot start");
    assert!(
        matches!(err, RunError::Start { ref node, .. } if node == "second"),
        "{err}"
    );
    let l = log("start");
    assert!(
        l.stopped.contains("first"),
        "started before the failure: stopped again"
    );
    assert!(l.accepted.is_empty() && l.recorded.is_empty());
}

#[test]
fn a_source_that_does_not_wait_does_not_starve_its_acknowledgements() {
    let yaml = r#"
nodes:
  - { id: src, type: offers, settings: { name: eager, count: 20000, impatient: true } }
  - { id: sink, type: record, settings: { name: eager, sink: sink } }
connections:
  - { from: src.success, to: sink, back_pressure: { objects: 50 } }
"#;
    // On a runtime of its own, in a thread of its own: a starved runtime could not even
    // fire a timeout of its own.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = RunOptions {
            once: true,
            ..Default::default()
        };
        let result = rt.block_on(run(
            &compile(yaml),
            &registry(),
            options,
            std::future::pending(),
        ));
        let _ = done.send(result.is_ok());
    });
    let ok = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ends: the source task yields while its offers are outstanding");
    assert!(ok);
    assert_eq!(log("eager").accepted.len(), 20000);
}
