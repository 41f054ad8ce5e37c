//! Dynamic batching: concurrent requests to one model share an inference.
//!
//! Each request prepares its own image ([`super::tensor::prepare`], in parallel on the
//! blocking pool), then hands it to the [`Batcher`] through a bounded queue. One collector task
//! takes the first waiting image and, for at most `max_delay`, more — up to `max_batch` — then
//! fills one `[n, ...]` tensor in place (each image written once, straight into its slot),
//! runs the model once on the blocking pool and answers every request with its own output.
//! While a batch runs, the next one gathers in the queue.
//!
//! The collector only waits for more images when requests are on their way (counted from
//! [`Batcher::ticket`] to submission), so a lone request is never delayed by `max_delay`.
//!
//! Bounded: at most `queue` prepared images wait; a request that finds the queue full waits for
//! room (back pressure on its caller), memory does not grow. A request that gives up (its
//! caller went away) before its batch runs is left out of the batch.
//!
//! A batch holds images prepared for one model: after a hot reload ([`super::reload`]) images
//! prepared for the old model finish on the old model.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ndarray::{Array4, Axis};
use tokio::sync::{mpsc, oneshot};

use super::input::InputSpec;
use super::tensor::{self, Prepared};

/// A model that runs on a batch of images.
pub trait BatchModel: Send + Sync + 'static {
    /// What one image yields.
    type Output: Send + 'static;

    /// The model's input contract (how images are prepared and the batch tensor shaped).
    fn input(&self) -> &InputSpec;

    /// Runs the model on `batch` (`[n, ...]`, one image per slot); one output per image, in
    /// order. An `Err` fails every request of the batch with its message.
    fn run_batch(&self, batch: &Array4<f32>) -> Result<Vec<Self::Output>, String>;

    /// The largest batch the model takes (a graph exported with a fixed batch size takes only
    /// that many); `None`: any. Batches never exceed it, whatever `max_batch` says.
    fn max_batch(&self) -> Option<usize> {
        None
    }
}

/// How a [`Batcher`] groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most images in one inference (1 disables batching).
    pub max_batch: usize,
    /// Longest the first image of a batch waits for others.
    pub max_delay: Duration,
    /// Most prepared images waiting for a batch.
    pub queue: usize,
    /// Most batches running at once (the model's sessions); the next batch gathers while
    /// they run.
    pub parallel: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_millis(2),
            queue: 64,
            parallel: 1,
        }
    }
}

/// Why a batched inference gave no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The model failed on the batch holding this image.
    #[error("{0}")]
    Model(String),
    /// The model panicked on the batch holding this image.
    #[error("the model panicked: {0}")]
    Panic(String),
    /// The batcher stopped (the node is shutting down).
    #[error("the model's batcher has stopped")]
    Stopped,
}

struct Job<M: BatchModel> {
    model: Arc<M>,
    prepared: Prepared,
    reply: oneshot::Sender<Result<M::Output, BatchError>>,
    /// Dropped by the collector as soon as it holds the job, so the job no longer counts as
    /// "on its way" when the collector decides whether to wait for more.
    ticket: Option<Ticket>,
}

/// Groups concurrent requests into batched inferences; cheap to clone.
pub struct Batcher<M: BatchModel> {
    jobs: mpsc::Sender<Job<M>>,
    /// Requests between [`Batcher::ticket`] and submission.
    arriving: Arc<AtomicUsize>,
    config: BatchConfig,
}

impl<M: BatchModel> Clone for Batcher<M> {
    fn clone(&self) -> Self {
        Batcher {
            jobs: self.jobs.clone(),
            arriving: self.arriving.clone(),
            config: self.config,
        }
    }
}

impl<M: BatchModel> std::fmt::Debug for Batcher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A request on its way to the batcher (see [`Batcher::ticket`]).
#[derive(Debug)]
pub struct Ticket {
    arriving: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.arriving.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<M: BatchModel> Batcher<M> {
    /// Starts the collector task (within a Tokio runtime). It ends when every clone of the
    /// batcher is dropped.
    pub fn spawn(config: BatchConfig) -> Self {
        let config = BatchConfig {
            max_batch: config.max_batch.max(1),
            queue: config.queue.max(1),
            parallel: config.parallel.max(1),
            ..config
        };
        let (jobs, rx) = mpsc::channel(config.queue);
        let arriving = Arc::new(AtomicUsize::new(0));
        tokio::spawn(collect(rx, arriving.clone(), config));
        Batcher {
            jobs,
            arriving,
            config,
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// Announces a request that will [`Batcher::infer`] soon (take it before preparing the
    /// image): while tickets are out, a batch waits up to `max_delay` for them.
    pub fn ticket(&self) -> Ticket {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Ticket {
            arriving: self.arriving.clone(),
        }
    }

    /// Runs `model` on one image prepared for it, batched with concurrent requests.
    pub async fn infer(
        &self,
        model: Arc<M>,
        prepared: Prepared,
        ticket: Ticket,
    ) -> Result<M::Output, BatchError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                model,
                prepared,
                reply,
                ticket: Some(ticket),
            })
            .await
            .map_err(|_| BatchError::Stopped)?;
        answer.await.map_err(|_| BatchError::Stopped)?
    }
}

/// The collector: forms batches and runs up to `config.parallel` of them at once.
async fn collect<M: BatchModel>(
    mut rx: mpsc::Receiver<Job<M>>,
    arriving: Arc<AtomicUsize>,
    config: BatchConfig,
) {
    let mut carry: Option<Job<M>> = None;
    let running = Arc::new(tokio::sync::Semaphore::new(config.parallel));
    loop {
        // A free session first: while all run, the next batch gathers in the queue.
        let Ok(slot) = running.clone().acquire_owned().await else {
            return;
        };
        let mut first = match carry.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        first.ticket = None;
        let deadline = tokio::time::Instant::now() + config.max_delay;
        let limit = config
            .max_batch
            .min(first.model.max_batch().unwrap_or(usize::MAX))
            .max(1);
        let mut jobs = vec![first];
        while jobs.len() < limit {
            let mut next = match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if arriving.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(job)) => job,
                        _ => break,
                    }
                }
            };
            next.ticket = None;
            if !Arc::ptr_eq(&next.model, &jobs[0].model) {
                // Prepared for another model (a reload happened): it starts the next batch.
                carry = Some(next);
                break;
            }
            jobs.push(next);
        }
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        tokio::spawn(async move {
            run(jobs).await;
            drop(slot);
        });
    }
}

/// Fills the batch tensor, runs the model on the blocking pool and answers every job.
async fn run<M: BatchModel>(jobs: Vec<Job<M>>) {
    let model = jobs[0].model.clone();
    let (prepared, replies): (Vec<Prepared>, Vec<_>) = jobs
        .into_iter()
        .map(|job| (job.prepared, job.reply))
        .unzip();
    let n = prepared.len();
    let outcome = tokio::task::spawn_blocking(move || {
        let input = model.input();
        let mut batch = Array4::<f32>::zeros(tensor::batch_dims(input, n));
        for (image, slot) in prepared.iter().zip(batch.axis_iter_mut(Axis(0))) {
            tensor::fill(image, input, slot);
        }
        model.run_batch(&batch)
    })
    .await;
    match outcome {
        Ok(Ok(outputs)) if outputs.len() == n => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        Ok(Ok(outputs)) => answer_all(
            replies,
            BatchError::Model(format!(
                "the model gave {} outputs for a batch of {n} images",
                outputs.len()
            )),
        ),
        Ok(Err(message)) => answer_all(replies, BatchError::Model(message)),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            answer_all(replies, BatchError::Panic(message));
        }
        Err(_) => answer_all(replies, BatchError::Stopped),
    }
}

fn answer_all<O>(replies: Vec<oneshot::Sender<Result<O, BatchError>>>, error: BatchError) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use image::{DynamicImage, GrayImage, Luma};

    /// Sums each image's pixels; records batch sizes; panics on a pixel value of 99.
    struct Summer {
        input: InputSpec,
        batches: Mutex<Vec<usize>>,
        delay: Duration,
        fixed: Option<usize>,
    }

    impl Summer {
        fn new(delay: Duration) -> Arc<Summer> {
            let input: InputSpec = serde_json::from_str(
                r#"{"name": "x", "shape": [-1, 1, 2, 2], "layout": "NCHW", "color_order": "GRAY",
                    "resize": "nearest", "scale": 1, "mean": [0], "std": [1]}"#,
            )
            .unwrap();
            Arc::new(Summer {
                input,
                batches: Mutex::new(Vec::new()),
                delay,
                fixed: None,
            })
        }
    }

    impl BatchModel for Summer {
        type Output = f32;
        fn input(&self) -> &InputSpec {
            &self.input
        }
        fn max_batch(&self) -> Option<usize> {
            self.fixed
        }
        fn run_batch(&self, batch: &Array4<f32>) -> Result<Vec<f32>, String> {
            self.batches.lock().unwrap().push(batch.shape()[0]);
            std::thread::sleep(self.delay);
            let sums: Vec<f32> = batch.axis_iter(Axis(0)).map(|s| s.sum()).collect();
            if sums.contains(&396.0) {
                panic!("pixel 99");
            }
            if sums.contains(&4.0) {
                return Err("ones are not allowed".into());
            }
            Ok(sums)
        }
    }

    fn image(value: u8) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_pixel(2, 2, Luma([value])))
    }

    async fn ask(
        batcher: &Batcher<Summer>,
        model: &Arc<Summer>,
        value: u8,
    ) -> Result<f32, BatchError> {
        let ticket = batcher.ticket();
        let prepared = tensor::prepare(&image(value), model.input());
        batcher.infer(model.clone(), prepared, ticket).await
    }

    #[tokio::test]
    async fn a_lone_request_is_not_delayed_and_gets_its_own_answer() {
        let model = Summer::new(Duration::ZERO);
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_secs(30),
            queue: 4,
            parallel: 1,
        });
        let started = std::time::Instant::now();
        assert_eq!(ask(&batcher, &model, 3).await, Ok(12.0));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited for max_delay"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_share_batches_and_answers_stay_with_their_requests() {
        let model = Summer::new(Duration::from_millis(30));
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_millis(50),
            queue: 64,
            parallel: 1,
        });
        let tasks: Vec<_> = (0..32u8)
            .map(|v| {
                let (batcher, model) = (batcher.clone(), model.clone());
                tokio::spawn(async move { (v, ask(&batcher, &model, v + 2).await) })
            })
            .collect();
        for task in tasks {
            let (v, answer) = task.await.unwrap();
            assert_eq!(answer, Ok(4.0 * f32::from(v + 2)));
        }
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 32);
        assert!(batches.iter().all(|n| *n <= 8), "{batches:?}");
        assert!(batches.len() < 32, "no batching happened: {batches:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_model_with_a_fixed_batch_size_never_gets_more() {
        let model = Arc::new(Summer {
            fixed: Some(1),
            ..Arc::into_inner(Summer::new(Duration::from_millis(10))).unwrap()
        });
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_millis(50),
            queue: 64,
            parallel: 1,
        });
        let tasks: Vec<_> = (0..12u8)
            .map(|v| {
                let (batcher, model) = (batcher.clone(), model.clone());
                tokio::spawn(async move { ask(&batcher, &model, v + 2).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(batches, vec![1; 12]);
    }

    #[tokio::test]
    async fn errors_and_panics_fail_only_their_batch() {
        let model = Summer::new(Duration::ZERO);
        let batcher = Batcher::spawn(BatchConfig::default());
        assert_eq!(
            ask(&batcher, &model, 1).await,
            Err(BatchError::Model("ones are not allowed".into()))
        );
        assert_eq!(
            ask(&batcher, &model, 99).await,
            Err(BatchError::Panic("pixel 99".into()))
        );
        assert_eq!(ask(&batcher, &model, 2).await, Ok(8.0), "still serving");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn images_prepared_for_different_models_never_share_a_batch() {
        let (a, b) = (
            Summer::new(Duration::from_millis(5)),
            Summer::new(Duration::from_millis(5)),
        );
        let batcher = Batcher::spawn(BatchConfig {
            max_batch: 16,
            max_delay: Duration::from_millis(50),
            queue: 64,
            parallel: 1,
        });
        let tasks: Vec<_> = (0..20u8)
            .map(|v| {
                let batcher = batcher.clone();
                let model = if v % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { ask(&batcher, &model, v + 2).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let total = |m: &Summer| m.batches.lock().unwrap().iter().sum::<usize>();
        assert_eq!((total(&a), total(&b)), (10, 10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_batches_run_at_once_and_never_more() {
        /// Records how many batches run at the same moment.
        struct Counting {
            inner: Arc<Summer>,
            now: AtomicUsize,
            most: AtomicUsize,
        }
        impl BatchModel for Counting {
            type Output = f32;
            fn input(&self) -> &InputSpec {
                self.inner.input()
            }
            fn run_batch(&self, batch: &Array4<f32>) -> Result<Vec<f32>, String> {
                let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                let out = self.inner.run_batch(batch);
                self.now.fetch_sub(1, Ordering::SeqCst);
                out
            }
        }
        for parallel in [1usize, 2, 3] {
            let model = Arc::new(Counting {
                inner: Summer::new(Duration::from_millis(40)),
                now: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
            });
            let batcher = Batcher::spawn(BatchConfig {
                max_batch: 1,
                max_delay: Duration::ZERO,
                queue: 64,
                parallel,
            });
            let tasks: Vec<_> = (0..9u8)
                .map(|v| {
                    let (batcher, model) = (batcher.clone(), model.clone());
                    tokio::spawn(async move {
                        let ticket = batcher.ticket();
                        let prepared = tensor::prepare(&image(v + 2), model.input());
                        batcher.infer(model, prepared, ticket).await
                    })
                })
                .collect();
            for (v, task) in tasks.into_iter().enumerate() {
                let expected = 4.0 * (v as f32 + 2.0);
                assert_eq!(task.await.unwrap(), Ok(expected), "each its own answer");
            }
            assert_eq!(
                model.most.load(Ordering::SeqCst),
                parallel,
                "{parallel} batches at once, never more"
            );
        }
    }
}
