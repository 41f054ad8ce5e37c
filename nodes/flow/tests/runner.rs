//! Runner behaviour with small node kinds defined here: ordering under a slow consumer,
//! back pressure, failure routing, panics, and a remote node killed and restarted mid-run.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loupe_flow::runner::{RunOptions, RunSummary, run};
use loupe_sdk::pb::{NodeDescription, Offer};
use loupe_sdk::{
    BuildContext, FlowFile, Node, NodeError, NodeKind, Output, ProcessError, Processor, Pulled,
    Registry, Relationship, Source,
};
use serde::Deserialize;

/// FlowFiles each `collect` node saw, by its `name` setting.
static COLLECTED: LazyLock<Mutex<HashMap<String, Vec<FlowFile>>>> = LazyLock::new(Default::default);
/// Set when the `list` source of that name has offered everything.
static OFFERED_ALL: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

fn collected(name: &str) -> Vec<FlowFile> {
    COLLECTED
        .lock()
        .unwrap()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

fn describe(node_type: &str, rels: &[&str]) -> NodeDescription {
    NodeDescription {
        node_type: node_type.into(),
        relationships: rels.iter().map(|r| Relationship::new(*r, "")).collect(),
        ..Default::default()
    }
}

// ---- `list`: a source of `count` FlowFiles ----

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListSettings {
    name: String,
    count: usize,
    #[serde(default)]
    priorities: Vec<String>,
    #[serde(default)]
    size: usize,
}

struct ListSource {
    s: ListSettings,
    next: AtomicUsize,
    acked: AtomicUsize,
}

#[async_trait]
impl Processor for ListSource {
    fn describe(&self) -> NodeDescription {
        describe("list", &["success"])
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![ff.to("success")])
    }
}

#[async_trait]
impl Source for ListSource {
    async fn pull(&self, max: usize, wait: Duration) -> Result<Pulled, NodeError> {
        let mut offers = Vec::new();
        while offers.len() < max {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= self.s.count {
                self.next.store(self.s.count, Ordering::SeqCst);
                break;
            }
            let mut ff = FlowFile::create(vec![b'x'; self.s.size], HashMap::new())
                .with_attr("n", i.to_string());
            if !self.s.priorities.is_empty() {
                let p = &self.s.priorities[i % self.s.priorities.len()];
                if !p.is_empty() {
                    ff = ff.with_attr("priority", p.clone());
                }
            }
            offers.push(Offer {
                delivery_id: i.to_string(),
                flow_file: Some(ff),
            });
        }
        if self.next.load(Ordering::SeqCst) >= self.s.count {
            OFFERED_ALL.lock().unwrap().insert(self.s.name.clone());
        }
        let exhausted = offers.is_empty() && self.acked.load(Ordering::SeqCst) >= self.s.count;
        if offers.is_empty() && !exhausted {
            tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
        }
        Ok(Pulled { offers, exhausted })
    }
    async fn ack(&self, accepted: Vec<String>, rejected: Vec<String>) -> Result<(), NodeError> {
        assert!(rejected.is_empty());
        self.acked.fetch_add(accepted.len(), Ordering::SeqCst);
        Ok(())
    }
}

struct List;
#[async_trait]
impl NodeKind for List {
    const TYPE: &'static str = "list";
    const IS_SOURCE: bool = true;
    type Settings = ListSettings;
    fn relationships(_: &ListSettings) -> Vec<Relationship> {
        vec![Relationship::success()]
    }
    async fn build(s: ListSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::source(ListSource {
            s,
            next: AtomicUsize::new(0),
            acked: AtomicUsize::new(0),
        }))
    }
}

// ---- `collect`: a sink that remembers what it saw ----

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CollectSettings {
    name: String,
    #[serde(default)]
    delay_ms: u64,
    /// Hold the first FlowFile until this source has offered everything.
    #[serde(default)]
    hold_first_until: Option<String>,
}

struct Collector {
    s: CollectSettings,
    first: AtomicBool,
}

#[async_trait]
impl Processor for Collector {
    fn describe(&self) -> NodeDescription {
        describe("collect", &[])
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        if let Some(source) = &self.s.hold_first_until
            && self.first.swap(false, Ordering::SeqCst)
        {
            while !OFFERED_ALL.lock().unwrap().contains(source) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Let the runner move the last offers into the queue.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.s.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.s.delay_ms)).await;
        }
        COLLECTED
            .lock()
            .unwrap()
            .entry(self.s.name.clone())
            .or_default()
            .push(ff);
        Ok(vec![])
    }
}

struct Collect;
#[async_trait]
impl NodeKind for Collect {
    const TYPE: &'static str = "collect";
    type Settings = CollectSettings;
    fn relationships(_: &CollectSettings) -> Vec<Relationship> {
        Vec::new()
    }
    async fn build(s: CollectSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::processor(Collector {
            s,
            first: AtomicBool::new(true),
        }))
    }
}

// ---- `tag`: adds an attribute; fails, panics on request ----

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TagSettings {
    /// FlowFiles whose `n` is a multiple of this fail (0: never).
    #[serde(default)]
    fail_every: usize,
    /// FlowFiles whose `n` is a multiple of this panic (0: never).
    #[serde(default)]
    panic_every: usize,
    /// Written to `tagged.by` when set (tells which server did the work).
    #[serde(default)]
    label: Option<String>,
}

struct Tagger(TagSettings);

#[async_trait]
impl Processor for Tagger {
    fn describe(&self) -> NodeDescription {
        describe("tag", &["success", "failure"])
    }
    async fn process(&self, ff: FlowFile) -> Result<Vec<Output>, ProcessError> {
        let n: usize = ff.attr("n").and_then(|v| v.parse().ok()).unwrap_or(1);
        if self.0.panic_every > 0 && n.is_multiple_of(self.0.panic_every) {
            panic!("tag panics on {n}");
        }
        if self.0.fail_every > 0 && n.is_multiple_of(self.0.fail_every) {
            return Err(ProcessError::invalid_input(format!("{n} is unacceptable")));
        }
        let ff = match &self.0.label {
            Some(label) => ff.with_attr("tagged.by", label.clone()),
            None => ff,
        };
        Ok(vec![ff.with_attr("tagged", "yes").to("success")])
    }
}

struct Tag;
#[async_trait]
impl NodeKind for Tag {
    const TYPE: &'static str = "tag";
    type Settings = TagSettings;
    fn relationships(_: &TagSettings) -> Vec<Relationship> {
        vec![Relationship::success(), Relationship::failure()]
    }
    async fn build(s: TagSettings, _: &BuildContext) -> Result<Node, NodeError> {
        Ok(Node::processor(Tagger(s)))
    }
}

fn registry() -> Registry {
    Registry::new()
        .with::<List>()
        .with::<Collect>()
        .with::<Tag>()
}

async fn run_flow(yaml: &str) -> RunSummary {
    let flow = loupe_flow::compile_str(yaml, Path::new("test-flow.yaml"), &registry())
        .unwrap_or_else(|errors| {
            panic!(
                "flow does not compile: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    let options = RunOptions {
        once: true,
        ..Default::default()
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        run(&flow, &registry(), options, std::future::pending()),
    )
    .await
    .expect("run finishes")
    .expect("run succeeds")
}

fn numbers(ffs: &[FlowFile]) -> Vec<usize> {
    ffs.iter()
        .map(|f| f.attr("n").unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_gets_priority_attribute_order() {
    // NiFi's PriorityAttributePrioritizer: present beats absent, integers beat text, lower
    // integers first, text in lexical order ("A-100" before "A-99").
    let priorities = [
        "5", "", "A-99", "-3", "10", "A-100", " 7 ", "zeta", "0", "5",
    ];
    let yaml = format!(
        r#"
nodes:
  - id: src
    type: list
    settings: {{ name: prio-src, count: 100, priorities: {priorities:?} }}
  - id: sink
    type: collect
    settings: {{ name: prio, delay_ms: 1, hold_first_until: prio-src }}
connections:
  - from: src.success
    to: sink
    prioritizer: priority-attribute
"#
    );
    let summary = run_flow(&yaml).await;
    let got = collected("prio");
    assert_eq!(got.len(), 100);
    assert_eq!(summary.node("sink").unwrap().received, 100);
    // The first FlowFile was taken before the rest arrived; the other 99 waited together.
    let rank = |p: Option<&str>| -> (u8, i128, String) {
        match p {
            None => (3, 0, String::new()),
            Some(v) => match v.trim().parse::<i128>() {
                Ok(i) => (0, i, String::new()),
                Err(_) => (1, 0, v.to_string()),
            },
        }
    };
    let rest = &got[1..];
    for w in rest.windows(2) {
        let (a, b) = (rank(w[0].attr("priority")), rank(w[1].attr("priority")));
        assert!(
            a <= b,
            "out of order: {:?} before {:?}",
            w[0].attr("priority"),
            w[1].attr("priority")
        );
    }
    let order: Vec<Option<&str>> = rest.iter().map(|f| f.attr("priority")).collect();
    let first_of = |p: Option<&str>| order.iter().position(|x| *x == p).unwrap();
    assert!(first_of(Some("-3")) < first_of(Some("0")));
    assert!(first_of(Some("0")) < first_of(Some(" 7 ")));
    assert!(first_of(Some(" 7 ")) < first_of(Some("10")));
    assert!(first_of(Some("10")) < first_of(Some("A-100")));
    assert!(first_of(Some("A-100")) < first_of(Some("A-99")));
    assert!(first_of(Some("zeta")) < first_of(None));
    // Ties keep FIFO order.
    let fives: Vec<usize> = numbers(rest)
        .into_iter()
        .zip(&order)
        .filter(|(_, p)| **p == Some("5"))
        .map(|(n, _)| n)
        .collect();
    assert!(
        fives.windows(2).all(|w| w[0] < w[1]),
        "ties must stay FIFO: {fives:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_producer_never_overfills_a_queue() {
    let yaml = r#"
nodes:
  - id: src
    type: list
    settings: { name: bp-src, count: 600, size: 1000 }
  - id: sink
    type: collect
    settings: { name: bp, delay_ms: 1 }
connections:
  - from: src.success
    to: sink
    back_pressure: { objects: 25 }
"#;
    let summary = run_flow(yaml).await;
    let q = &summary.queues[0];
    assert!(
        q.peak_len <= 25,
        "queue reached {} over its threshold 25",
        q.peak_len
    );
    assert!(
        q.peak_len >= 20,
        "the producer did fill the queue ({})",
        q.peak_len
    );
    let mut got = numbers(&collected("bp"));
    got.sort_unstable();
    assert_eq!(
        got,
        (0..600).collect::<Vec<_>>(),
        "each FlowFile exactly once"
    );
    assert_eq!(summary.left_in_queues, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_panics_are_routed_and_nothing_is_lost() {
    let yaml = r#"
nodes:
  - id: src
    type: list
    settings: { name: fail-src, count: 200 }
  - id: tag
    type: tag
    concurrency: 3
    settings: { fail_every: 10, panic_every: 25 }
  - id: ok
    type: collect
    settings: { name: fail-ok }
  - id: bad
    type: collect
    settings: { name: fail-bad }
connections:
  - { from: src.success, to: tag }
  - { from: tag.success, to: ok }
  - { from: tag.failure, to: bad }
"#;
    let summary = run_flow(yaml).await;
    let ok = collected("fail-ok");
    let bad = collected("fail-bad");
    assert_eq!(ok.len() + bad.len(), 200);
    assert!(ok.iter().all(|f| f.attr("tagged") == Some("yes")));
    for f in &bad {
        let n: usize = f.attr("n").unwrap().parse().unwrap();
        let kind = f.attr("error.kind").unwrap();
        if n.is_multiple_of(25) {
            assert_eq!(kind, "panic");
        } else {
            assert_eq!(kind, "invalid_input");
            assert!(f.attr("error.message").unwrap().contains("unacceptable"));
        }
    }
    let expected_bad = (0..200).filter(|n| n % 10 == 0 || n % 25 == 0).count();
    assert_eq!(bad.len(), expected_bad);
    let tag = summary.node("tag").unwrap();
    assert_eq!(tag.failed as usize, expected_bad);
    assert_eq!(
        tag.out.get("success").copied().unwrap_or(0) as usize,
        200 - expected_bad
    );
}

async fn serve_tag(
    listener: tokio::net::TcpListener,
    stop: tokio_util::sync::CancellationToken,
    label: Option<String>,
) {
    let node = Node::processor(Tagger(TagSettings {
        fail_every: 0,
        panic_every: 0,
        label,
    }));
    let options = loupe_sdk::serve::ServeOptions {
        node_id: "tag".into(),
        max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
        max_in_flight: 16,
        drain_timeout: Duration::from_secs(1),
        attributes: Default::default(),
        security: Default::default(),
    };
    loupe_sdk::serve::serve(node, options, listener, stop.cancelled_owned(), vec![])
        .await
        .unwrap();
}

fn strip_volatile(ffs: &[FlowFile]) -> Vec<Vec<(String, String)>> {
    let mut all: Vec<Vec<(String, String)>> = ffs
        .iter()
        .map(|f| {
            let mut a: Vec<_> = f
                .attributes
                .iter()
                .filter(|(k, _)| *k != "traceparent" && *k != "tracestate")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            a.sort();
            a
        })
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_node_gives_the_same_outputs_and_survives_a_restart() {
    let in_process = r#"
nodes:
  - { id: src, type: list, settings: { name: same-a-src, count: 300 } }
  - { id: tag, type: tag, settings: {} }
  - { id: sink, type: collect, settings: { name: same-a } }
connections:
  - { from: src.success, to: tag }
  - { from: tag.success, to: sink }
  - { from: tag.failure, to: sink }
"#;
    run_flow(in_process).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve_tag(listener, stop.clone(), None));
    // Kill the remote node (abort: connections drop, in-flight calls fail) once the run is
    // under way, then start it again on the same port. The slow sink's small queue keeps the
    // tag node from running ahead, so most FlowFiles still need it after the kill.
    let restarter = tokio::spawn(async move {
        while collected("same-b").len() < 50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.abort();
        let _ = server.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let stop2 = tokio_util::sync::CancellationToken::new();
        tokio::spawn(serve_tag(listener, stop2.clone(), None));
        stop2
    });
    let remote = format!(
        r#"
nodes:
  - {{ id: src, type: list, settings: {{ name: same-b-src, count: 300 }} }}
  - {{ id: tag, type: tag, endpoint: "http://{addr}", retry: {{ max_attempts: 100, initial_backoff: 20ms, max_backoff: 200ms }} }}
  - {{ id: sink, type: collect, settings: {{ name: same-b, delay_ms: 1 }} }}
connections:
  - {{ from: src.success, to: tag }}
  - {{ from: tag.success, to: sink, back_pressure: {{ objects: 5 }} }}
  - {{ from: tag.failure, to: sink }}
"#
    );
    let summary = run_flow(&remote).await;
    let stop2 = restarter.await.unwrap();
    stop2.cancel();
    stop.cancel();

    let a = collected("same-a");
    let b = collected("same-b");
    assert_eq!(b.len(), 300, "nothing lost, nothing duplicated");
    assert_eq!(
        strip_volatile(&a),
        strip_volatile(&b),
        "same outputs in-process and remote"
    );
    assert!(b.iter().all(|f| f.attr("error.kind").is_none()));
    assert!(
        summary.node("tag").unwrap().retries > 0,
        "the restart was noticed and retried"
    );
    let prov = summary
        .provenance
        .get(&loupe_flow::runner::provenance::EventType::RemoteInvocation);
    assert_eq!(prov.copied(), Some(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_share_the_load() {
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    for i in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(format!("http://{}", listener.local_addr().unwrap()));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(serve_tag(
            listener,
            stop.clone(),
            Some(format!("server-{i}")),
        ));
        stops.push(stop);
    }
    let yaml = format!(
        r#"
nodes:
  - {{ id: src, type: list, settings: {{ name: lb-src, count: 200 }} }}
  - {{ id: tag, type: tag, concurrency: 4, endpoints: ["{}", "{}"] }}
  - {{ id: sink, type: collect, settings: {{ name: lb }} }}
connections:
  - {{ from: src.success, to: tag }}
  - {{ from: tag.success, to: sink }}
  - {{ from: tag.failure, to: sink }}
"#,
        addrs[0], addrs[1]
    );
    let summary = run_flow(&yaml).await;
    for stop in stops {
        stop.cancel();
    }
    let got = collected("lb");
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|f| f.attr("tagged") == Some("yes")));
    assert_eq!(summary.node("tag").unwrap().received, 200);
    for label in ["server-0", "server-1"] {
        let n = got
            .iter()
            .filter(|f| f.attr("tagged.by") == Some(label))
            .count();
        assert!(
            n > 0,
            "{label} did no work: the endpoints were not balanced"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_failure_carries_its_reason_into_the_provenance() {
    let yaml = r#"
nodes:
  - { id: src, type: list, settings: { name: drop-src, count: 20 } }
  - { id: tag, type: tag, auto_terminate: [failure], settings: { fail_every: 10 } }
  - { id: sink, type: collect, settings: { name: drop-ok } }
connections:
  - { from: src.success, to: tag }
  - { from: tag.success, to: sink }
"#;
    let dir = tempfile::tempdir().unwrap();
    let provenance = dir.path().join("prov.jsonl");
    let flow = loupe_flow::compile_str(yaml, Path::new("drop.yaml"), &registry()).unwrap();
    let options = RunOptions {
        once: true,
        provenance_file: Some(provenance.clone()),
        ..Default::default()
    };
    run(&flow, &registry(), options, std::future::pending())
        .await
        .unwrap();
    let drops: Vec<String> = std::fs::read_to_string(&provenance)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"DROP\""))
        .map(str::to_string)
        .collect();
    assert_eq!(drops.len(), 2, "n = 0 and 10 fail");
    for d in &drops {
        assert!(
            d.contains("auto-terminated; invalid_input:") && d.contains("unacceptable"),
            "{d}"
        );
    }
}
