use std::path::PathBuf;

/// Errors of the loss and training code. Input problems name what was wrong (which argument,
/// which row, which file) instead of panicking.
#[derive(Debug, thiserror::Error)]
pub enum LmclError {
    /// A tensor operation failed (shape mismatch inside candle, device error, ...).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Bad arguments: shapes that do not agree, labels out of range, bad settings.
    #[error("invalid input: {0}")]
    Input(String),
    /// A loss specification string such as `cosface:s=30,m=0.35` could not be parsed.
    #[error("loss spec {spec:?}: {msg}")]
    LossSpec { spec: String, msg: String },
    /// Reading or writing a checkpoint failed or the file is not a head checkpoint.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
}

pub(crate) fn input<T>(msg: impl Into<String>) -> crate::Result<T> {
    Err(LmclError::Input(msg.into()))
}
