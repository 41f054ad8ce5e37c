//! Progress while a flow runs: a live line on a terminal, periodic plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A live bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr at the progress interval.
    Lines,
    /// Nothing.
    Off,
}

/// The running progress task.
pub(crate) struct ProgressTask {
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressTask {
    /// Stops the display and waits for its last line.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn line(shared: &Shared, started: Instant) -> String {
    let received: u64 = shared
        .nodes
        .iter()
        .filter(|n| n.source.is_some())
        .map(|n| n.stats.received.load(Ordering::Relaxed))
        .sum();
    let failed: u64 = shared
        .nodes
        .iter()
        .map(|n| n.stats.failed.load(Ordering::Relaxed))
        .sum();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    format!(
        "received {received} ({:.1}/s) | queued {} | unacknowledged {} | failed {failed}",
        received as f64 / secs,
        shared.queued(),
        shared.outstanding.get(),
    )
}

/// Starts showing progress.
pub(crate) fn spawn(shared: Arc<Shared>, mode: ProgressMode, interval: Duration) -> ProgressTask {
    let stop = tokio_util::sync::CancellationToken::new();
    let terminal = std::io::stderr().is_terminal();
    let task = match mode {
        ProgressMode::Off => None,
        ProgressMode::Auto if terminal => {
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(120));
                let started = Instant::now();
                loop {
                    bar.set_message(line(&shared, started));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                bar.finish_with_message(line(&shared, started));
            }))
        }
        _ => {
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => eprintln!("loupe: {}", line(&shared, started)),
                        _ = stop.cancelled() => break,
                    }
                }
            }))
        }
    };
    ProgressTask { stop, task }
}
