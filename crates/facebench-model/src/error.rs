//! One error type for the crate: every variant names the file (and tensor) at fault, and the
//! ones a user can fix by re-fetching the weights say how.

use std::path::PathBuf;

/// What to run when a weight file is missing or damaged.
pub const FETCH_HINT: &str = "run \"make models\" (scripts/fetch_models.py) to fetch and verify the weights";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A weight or manifest file that cannot be read (usually: not fetched yet).
    #[error("{path}: {source}; {FETCH_HINT}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A weight or manifest file whose content is malformed, truncated or not the expected one.
    #[error("{path}: {msg}; {FETCH_HINT}")]
    Corrupt { path: PathBuf, msg: String },
    /// The file is a valid TF.js model, but not the one this network expects.
    #[error("{path}: not the weights of model {model}: {}", describe_mismatch(missing, unexpected))]
    WrongWeights { path: PathBuf, model: String, missing: Vec<String>, unexpected: Vec<String> },
    /// A tensor is present under the expected name, but with another shape or dtype.
    #[error("{path}: tensor {name}: {msg}")]
    Tensor { path: PathBuf, name: String, msg: String },
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("unknown model {0:?}; known models: {1}")]
    UnknownModel(String, String),
    #[error("{0}")]
    Device(String),
    /// A model input that does not fit the model (wrong rank, size or channel count).
    #[error("{0}")]
    Input(String),
    /// A layer that does not fit its input (or candle failing inside one).
    #[error(transparent)]
    Nn(#[from] facebench_nn::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn describe_mismatch(missing: &[String], unexpected: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing tensors [{}]", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected tensors [{}]", unexpected.join(", ")));
    }
    parts.join("; ")
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), msg: msg.into() }
    }
}
