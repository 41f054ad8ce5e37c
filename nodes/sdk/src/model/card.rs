//! Reading model cards (`model.yaml`): the errors and the parse-then-check step every card
//! kind shares. Each node defines its own card type (a classifier's labels and decision, a
//! segmenter's classes and image threshold) around the shared [`super::input::InputSpec`].

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// File name of the card inside a model directory.
pub const CARD_FILE: &str = "model.yaml";
/// File name of the ONNX graph inside a model directory.
pub const MODEL_FILE: &str = "model.onnx";

/// A model card could not be read or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card file could not be read.
    #[error("cannot read model card {}: {source}", path.display())]
    Read {
        /// The card file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The card is not valid YAML or does not match the card schema.
    #[error("model card {}: {message}", path.display())]
    Parse {
        /// The card file (empty when parsed from a string).
        path: PathBuf,
        /// What is wrong, with its location.
        message: String,
    },
    /// The card parsed but its fields contradict each other.
    #[error("model card {}: {}", path.display(), problems.join("; "))]
    Invalid {
        /// The card file (empty when parsed from a string).
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// A card type: parsed from YAML, then checked as a whole.
pub trait Card: DeserializeOwned {
    /// Every inconsistency in the card (empty when it is usable).
    fn problems(&self) -> Vec<String>;
}

/// Reads and checks the card file `path`.
pub fn load<C: Card>(path: &Path) -> Result<C, CardError> {
    let text = std::fs::read_to_string(path).map_err(|source| CardError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks a card from YAML text; `path` names it in errors (empty for a string).
pub fn parse<C: Card>(text: &str, path: &Path) -> Result<C, CardError> {
    let card: C = serde_norway::from_str(text).map_err(|e| CardError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let problems = card.problems();
    if problems.is_empty() {
        Ok(card)
    } else {
        Err(CardError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
