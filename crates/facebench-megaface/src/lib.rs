//! facebench-megaface: MegaFace Challenge 1 (FaceScrub probes against up to 1M Flickr
//! distractors), exactly as ../shared/PROTOCOLS.md states it, in one streaming pass.
//!
//! What a caller (the CLI's `eval megaface`) does:
//!
//! 1. lists: [`read_probe_list`], [`read_distractor_lists`] (one devkit list per size, not
//!    nested) and, for `--clean`, [`NoiseList::read`] on InsightFace's two noise lists;
//! 2. features: [`ProbeSet::from_devkit`] / [`DistractorSet::from_devkit`] (devkit feature
//!    files `<root>/<path><ending>`, read in parallel, missing files counted and named) or
//!    [`ProbeSet::from_store`] / [`DistractorSet::from_store_lists`] /
//!    [`DistractorSet::from_store_first_n`] for packed stores (`facebench_core::store::read`);
//! 3. `--clean`: [`ProbeSet::apply_noise_list`] and [`DistractorSet::apply_noise_list`];
//! 4. [`evaluate`] with an [`EvalConfig`] (dataset label, R, FARs): one blocked pass of
//!    `facebench-score` over the distractors computes every size's CMC (exact per-pair counts
//!    of distractors above each mate score) and verification (the top impostor scores and a
//!    histogram), never the probe x distractor matrix;
//! 5. [`write_devkit_results`] (`cmc_<probe>_<distractor>_<alg>_<size>_<set>.json`); the
//!    pipeline writes the results envelope; [`MegafaceResults::summary`] prints labelled lines.
//!
//! [`MegafaceProtocol::read`] reads `protocols/megaface.toml`: list names, distractor sizes,
//! the probe set's size, the noise lists and the published rows.
//!
//! `bench megaface` calls [`bench_megaface`]. Results are labelled with the dataset
//! ([`EvalConfig::dataset`]) and raw / R ([`Variant`]), so stand-in and synthetic numbers
//! can never read as MegaFace numbers.

use std::path::PathBuf;

mod bench;
mod data;
mod eval;
mod lists;
mod lowp;
mod output;
mod protocol;
mod reduce;

pub use bench::{
    bare_gemm_seconds, bench_megaface, peak_rss_mib, sizes_up_to, synthetic_distractors, synthetic_probes, BenchReport,
    ModeBench, FACESCRUB_IDENTITIES, FACESCRUB_IMAGES,
};
pub use data::{DistractorSet, ProbeSet, SizeInfo, MAX_SIZES};
pub use eval::{
    evaluate, EvalConfig, MegafaceResults, RocCurve, RocPoint, Scoring, SizeResults, TarAtFar, TarExact, Variant,
};
pub use lists::{
    distractor_list_path, first_n_lists, read_distractor_list, read_distractor_lists, read_probe_list, NoiseList,
    ProbeList,
};
pub use lowp::{bf16_available, int8_available};
pub use output::{devkit_json, write_devkit_results, DevkitNames};
pub use protocol::{Lists, MegafaceProtocol, Noises};

/// Errors name the file (and line) or the row at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error(transparent)]
    Core(#[from] facebench_core::Error),
    #[error(transparent)]
    Score(#[from] facebench_score::ScoreError),
    #[error(transparent)]
    Metrics(#[from] facebench_metrics::MetricsError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File { path: path.into(), msg: msg.into() }
    }
}
