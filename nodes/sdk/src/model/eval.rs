//! What `loupe eval` needs for every model kind: reading a labelled folder's manifest, running
//! its images through a model's serving path in batches on several threads, AUROC, and the
//! comparison of measured figures with those in the model card.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::DeserializeOwned;

/// File name of a labelled folder's manifest (one JSON object per line, as `loupe synth`
/// writes).
pub const MANIFEST: &str = "manifest.jsonl";

/// Figures within this many percentage points of the card's count as reproduced.
pub const TOLERANCE_PP: f64 = 0.5;

/// Evaluating a model on a folder failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The folder has no manifest, or it cannot be read.
    #[error("cannot read {}: {source} (a labelled folder needs a {MANIFEST}, e.g. from `loupe synth`)", path.display())]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest record is not what this model kind needs.
    #[error("{} (record {record}): {message}", path.display())]
    Record {
        /// The manifest path.
        path: PathBuf,
        /// 1-based record number (blank lines are not records).
        record: usize,
        /// What is wrong.
        message: String,
    },
    /// The manifest lists no image.
    #[error("{} lists no images", path.display())]
    Empty {
        /// The manifest path.
        path: PathBuf,
    },
    /// An image (or its mask) could not be read or decoded.
    #[error("{}: {message}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model failed.
    #[error("model: {0}")]
    Model(String),
}

/// Reads `dir/manifest.jsonl` into records of type `T` (blank lines skipped).
pub fn read_manifest<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>, EvalError> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Manifest {
        path: path.clone(),
        source,
    })?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| EvalError::Record {
                path: path.clone(),
                record: i + 1,
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect::<Result<Vec<T>, _>>()?;
    if records.is_empty() {
        return Err(EvalError::Empty { path });
    }
    Ok(records)
}

/// Reads and decodes the image `name` (relative to `dir`).
pub fn read_image(dir: &Path, name: &str) -> Result<image::DynamicImage, EvalError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| EvalError::Image {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // The decoder every served image goes through, with its default limits.
    let limits = crate::imaging::DecodeLimits::default();
    super::tensor::decode(&bytes, &limits).map_err(|e| EvalError::Image {
        path,
        message: e.to_string(),
    })
}

/// The batch size to evaluate with: what was asked, but never more than a graph fixed to one
/// batch size takes.
pub fn batch_size<M: super::batch::BatchModel>(model: &M, asked: usize) -> usize {
    asked.min(model.max_batch().unwrap_or(usize::MAX)).max(1)
}

/// Runs `items` through a model in batches of `batch` on `workers` threads, the way a node
/// does: `prepare` (decode + prepare one item; runs in parallel) then `run` (one batched
/// inference). Results come back in item order; the first error stops the run.
pub fn run_batched<I, P, O, FP, FR>(
    items: &[I],
    batch: usize,
    workers: usize,
    prepare: FP,
    run: FR,
) -> Result<Vec<O>, EvalError>
where
    I: Sync,
    P: Send,
    O: Send,
    FP: Fn(&I) -> Result<P, EvalError> + Sync,
    FR: Fn(Vec<P>) -> Result<Vec<O>, EvalError> + Sync,
{
    let batch = batch.max(1);
    let chunks: Vec<&[I]> = items.chunks(batch).collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Vec<O>>>> = Mutex::new((0..chunks.len()).map(|_| None).collect());
    let failure: Mutex<Option<EvalError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= chunks.len() || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let outcome = chunks[k]
                        .iter()
                        .map(&prepare)
                        .collect::<Result<Vec<P>, _>>()
                        .and_then(&run);
                    match outcome {
                        Ok(outputs) => {
                            if let Ok(mut results) = results.lock() {
                                results[k] = Some(outputs);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut failure) = failure.lock() {
                                failure.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .flatten()
        .collect())
}

/// Area under the ROC curve of `scores` for the `positive` items (Mann-Whitney U; ties count
/// one half). `None` when either class is absent.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|k| positive[**k]).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// `a / b`, or `None` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// One figure measured now next to the model card's.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Path of the figure in the card's `metrics.test` (e.g. `loose_wire_recall`).
    pub figure: String,
    /// The card's value, if it has one.
    pub card: Option<f64>,
    /// The value measured now.
    pub measured: Option<f64>,
}

impl Comparison {
    /// Measured minus card, in percentage points.
    pub fn difference_pp(&self) -> Option<f64> {
        Some((self.measured? - self.card?) * 100.0)
    }

    /// Whether the card's figure is reproduced within [`TOLERANCE_PP`] (a figure the card
    /// lacks cannot be checked and does not count against).
    pub fn reproduced(&self) -> bool {
        match (self.card, self.measured) {
            (Some(_), Some(_)) => self
                .difference_pp()
                .is_some_and(|d| d.abs() <= TOLERANCE_PP),
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

/// Compares `measured` figures (dotted paths into `metrics.test`) with the card's.
pub fn compare(
    card_test: Option<&serde_json::Value>,
    measured: &[(&str, Option<f64>)],
) -> Vec<Comparison> {
    measured
        .iter()
        .map(|(figure, value)| Comparison {
            figure: figure.to_string(),
            card: card_test.and_then(|t| {
                figure
                    .split('.')
                    .try_fold(t, |v, key| v.get(key))
                    .and_then(serde_json::Value::as_f64)
            }),
            measured: *value,
        })
        .collect()
}

/// The comparison as an aligned text table, with a closing verdict line.
pub fn comparison_table(rows: &[Comparison]) -> String {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
    let mut out = format!(
        "{:<44} {:>10} {:>10} {:>9}\n",
        "figure (metrics.test)", "card", "measured", "diff pp"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<44} {:>10} {:>10} {:>9}{}\n",
            row.figure,
            fmt(row.card),
            fmt(row.measured),
            row.difference_pp()
                .map_or("-".to_string(), |d| format!("{d:+.2}")),
            if row.reproduced() { "" } else { "  <- differs" }
        ));
    }
    let checked = rows.iter().filter(|r| r.card.is_some()).count();
    let ok = rows
        .iter()
        .filter(|r| r.card.is_some() && r.reproduced())
        .count();
    out.push_str(&format!(
        "reproduced {ok} of {checked} card figures within {TOLERANCE_PP} percentage points\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_hand_counts() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        // One tie between a positive and a negative counts one half: (1 + 0.5 + 1 + 1) / 4.
        assert_eq!(
            auroc(&[0.1, 0.5, 0.5, 0.9], &[false, false, true, true]),
            Some(0.875)
        );
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn comparisons_use_half_a_point() {
        let card = serde_json::json!({"recall": 0.98, "per_class": {"ok": {"recall": 0.9}}});
        let rows = compare(
            Some(&card),
            &[
                ("recall", Some(0.984)),
                ("per_class.ok.recall", Some(0.91)),
                ("auroc", Some(0.5)),
            ],
        );
        assert!(rows[0].reproduced());
        assert!(!rows[1].reproduced(), "{:?}", rows[1].difference_pp());
        assert!(rows[2].reproduced(), "not in the card: nothing to check");
        let table = comparison_table(&rows);
        assert!(table.contains("reproduced 1 of 2"), "{table}");
        assert!(table.contains("<- differs"), "{table}");
    }

    #[test]
    fn batches_come_back_in_order_and_errors_stop_the_run() {
        let items: Vec<u32> = (0..103).collect();
        let out = run_batched(&items, 8, 3, |i| Ok(*i * 2), |b: Vec<u32>| Ok(b)).unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = run_batched(
            &items,
            8,
            2,
            |i| {
                if *i == 50 {
                    Err(EvalError::Model("fifty".into()))
                } else {
                    Ok(*i)
                }
            },
            |b: Vec<u32>| Ok(b),
        )
        .unwrap_err();
        assert!(err.to_string().contains("fifty"));
    }
}
