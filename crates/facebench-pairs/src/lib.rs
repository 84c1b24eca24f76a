//! facebench-pairs: pairs verification protocols (LFW, .bin packs, CALFW-style image lists).
//!
//! [`PairsProtocol`] is the one protocol-file shape of every pairs benchmark (includes
//! merged); [`Pairs`] parses LFW's pair lists (View 1 and View 2) and image-pair lists with
//! labels; [`evaluate`] / [`evaluate_protocol`] turn precomputed embeddings (and optionally
//! their mirror features) into the numbers papers report, under each reference tool's rule
//! ([`Rule`]); [`published::all`] gathers the published rows of every protocol file.

mod eval;
mod include;
mod pairs;
mod people;
mod protocol;
pub mod published;

pub use eval::{evaluate, evaluate_protocol, LfwResults, PairScore, ProtocolResults, RuleScores};
pub use facebench_metrics::{Rule, TarRow};
pub use pairs::{image_key, Pair, Pairs};
pub use people::{People, Person};
pub use protocol::{sha256_hex, MetricSettings, PairsFormat, PairsProtocol, PairsSpec, Tune, Variant, Wording};
