//! facebench-pipeline: everything between the command line and the protocol crates. A
//! [`Workspace`] holds where data, caches and weights are and how models run; its cached
//! stages (align, embed with or without mirror, read stores) serve every protocol, and each
//! protocol's run ([`pairs`], [`bin`], [`ytf`], [`megaface`], [`lmcl`], [`train`]) is one call
//! that writes a typed [`ResultsEnvelope`] and its report.

pub mod bench;
pub mod bin;
pub mod cache;
pub mod embed;
pub mod images;
pub mod lmcl;
pub mod megaface;
pub mod models;
pub mod pairs;
pub mod provenance;
pub mod stages;
pub mod train;
mod workspace;
pub mod ytf;

use std::path::{Path, PathBuf};

use facebench_core::atomic::OutputSet;
pub use facebench_report::results::{ResultsEnvelope, Stage};
pub use workspace::Workspace;

/// What can go wrong in a run; library errors keep their source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] facebench_core::Error),
    #[error(transparent)]
    Model(#[from] facebench_model::Error),
    #[error(transparent)]
    Detect(#[from] facebench_detect::Error),
    #[error(transparent)]
    Extract(#[from] facebench_extract::Error),
    #[error(transparent)]
    Image(#[from] facebench_image::Error),
    #[error(transparent)]
    Metrics(#[from] facebench_metrics::MetricsError),
    #[error(transparent)]
    Score(#[from] facebench_score::ScoreError),
    #[error(transparent)]
    Ytf(#[from] facebench_ytf::Error),
    #[error(transparent)]
    Megaface(#[from] facebench_megaface::Error),
    #[error(transparent)]
    Lmcl(#[from] facebench_lmcl::LmclError),
    #[error(transparent)]
    Bin(#[from] facebench_bin::Error),
    #[error(transparent)]
    Report(#[from] facebench_report::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// A bad argument or input, in words.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Invalid(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Invalid(s.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Creates `dir` (and its parents); the error names it.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// Creates the folder that will hold `file`, if it names one.
pub(crate) fn create_parent(file: &Path) -> Result<()> {
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => create_dir(dir),
        None => Ok(()),
    }
}

/// Writes `v` as pretty JSON to `path` atomically (a reader sees the old file or the new
/// one), creating its folder; the error names the file.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    create_parent(path)?;
    let text = serde_json::to_string_pretty(v).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    Ok(facebench_core::atomic::write(path, text.as_bytes())?)
}

/// Starts writing the folder `out` as one set: every output goes into [`OutputSet::dir`]
/// and appears in `out` only at [`OutputSet::commit`], so a failed run leaves the previous
/// complete outputs (or none), never a mix.
pub(crate) fn output_set(out: &Path) -> Result<OutputSet> {
    Ok(OutputSet::new(out)?)
}

/// A progress bar with rate and ETA on stderr.
pub(crate) fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    pb
}
