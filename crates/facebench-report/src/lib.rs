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
}

pub type Result<T> = std::result::Result<T, Error>;
