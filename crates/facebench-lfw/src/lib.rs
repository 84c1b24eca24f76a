//! facebench-lfw: the LFW verification protocol.
//!
//! [`Pairs`] parses the official pair lists (View 1 and View 2); [`evaluate`] turns
//! precomputed embeddings (and optionally their mirror features) into the numbers
//! papers report, under each reference tool's rule ([`Rule`]).

mod eval;
mod pairs;
mod people;
mod protocol;

pub use eval::{evaluate, EvalOptions, LfwResults, PairScore, RuleScores};
pub use facebench_metrics::{Rule, TarRow};
pub use pairs::{image_key, Pair, Pairs};
pub use people::{People, Person};
pub use protocol::{sha256_hex, MetricSettings, ProtocolFile, Variant};
