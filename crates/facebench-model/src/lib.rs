//! facebench-model: candle ports of pretrained face-embedding networks.

pub mod error;
pub mod tfjs;

pub use error::{Error, Result};
pub use tfjs::TfjsWeights;
pub mod ops;
