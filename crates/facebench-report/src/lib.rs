//! facebench-report: what people read. Figures (PNG + SVG via plotters) and tables
//! (Markdown and HTML) built from results; no metric is computed here.

pub mod lfw;
pub mod lmcl;
pub mod megaface;
pub mod plot;
pub mod results;
pub mod summary;
pub mod table;
pub mod ytf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("plot {0}")]
    Plot(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input that is not what facebench writes (a results.json field, a scores CSV row);
    /// `line` is 1-based where the file has lines that matter.
    #[error("{path}{}: {message}", .line.map_or(String::new(), |l| format!(" line {l}")))]
    Invalid { path: std::path::PathBuf, line: Option<usize>, message: String },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A results.json field of the wrong type; `field` is its path (`results.accuracy[1].mean`).
    #[error("{path}: field `{field}`: {source}")]
    Field {
        path: std::path::PathBuf,
        field: String,
        #[source]
        source: serde_json::Error,
    },
    /// Writing the summary's files as one set.
    #[error(transparent)]
    Output(#[from] facebench_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
