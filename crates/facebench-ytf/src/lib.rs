//! facebench-ytf: the YouTube Faces (YTF) video verification protocol.
//!
//! * [`Splits`] parses `splits.txt` (header checked, label from the 5th field, 10 x 500 pairs);
//! * [`VideoIndex`] finds the videos' frames in either layout ([`Layout::Aligned`]:
//!   `aligned_images_DB`, [`Layout::Frames`]: `frame_images_DB` with [`LabeledFaces`]);
//! * [`align_cached`] aligns frames with the labelled face box as the detector's search region
//!   (records in `facebench align`'s cache format, so extraction reads them as for LFW);
//! * [`score_video_pairs`] scores videos by a [`Mode`] (`mean-feature`, `mean-pair`,
//!   `min-pair`, `max-pair`), the all-pairs modes through `facebench-score`'s blocked scorer;
//! * [`evaluate`] scores every pair whose videos exist and measures 10-fold accuracy over the
//!   splits under each reference tool's rule, refusing to invent numbers for too few pairs.
//!
//! [`YtfProtocol`] reads `protocols/ytf.toml` (the splits file, its structure, published rows).
//!
//! Frame embedding itself is `facebench-extract`'s batched, cached pipeline.

mod align;
mod eval;
mod layout;
mod protocol;
mod score;
mod splits;

use std::path::PathBuf;

pub use align::{align_cached, align_frames, AlignOutcome, Search, SearchRegion, DEFAULT_CONTEXT, DEFAULT_MARGIN};
pub use eval::{
    default_settings, evaluate, metrics_from_scores, not_measurable, Coverage, Metrics, ModeResult, PairRow, YtfResults,
};
pub use facebench_metrics::TarRow;
pub use layout::{FaceBox, FrameSelection, LabeledFaces, Layout, VideoIndex};
pub use protocol::{SplitsSpec, YtfProtocol};
pub use score::{pair_stats, score_video_pairs, Mode, PairStats, VideoFeatures, PAIR_BLOCKS};
pub use splits::{Splits, VideoId, VideoPair};

/// Errors of this crate; each names the file and line, the frame or the video at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {msg}", path.display())]
    Parse { path: PathBuf, line: usize, msg: String },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    /// The detector or its alignment cache (their errors name the file or image).
    #[error(transparent)]
    Detect(#[from] facebench_detect::Error),
    #[error(transparent)]
    Metrics(#[from] facebench_metrics::MetricsError),
}

impl Error {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
