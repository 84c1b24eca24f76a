//! Parallel cosine scoring of face embeddings.
//!
//! Works on plain row-major f32 slices ([`Matrix`]) so any crate can use it:
//!
//! * [`score_pairs`]: scores of an explicit pair list (LFW, YTF);
//! * [`score_blocked`]: all queries x all gallery items in tiles that go through one GEMM
//!   ([`gemm_block`]) and straight into streaming [`Reducer`]s ([`TopKPerQuery`],
//!   [`CountAbove`], [`GlobalTopK`], [`Histogram`], combined with tuples / `Vec` and restricted
//!   to gallery subsets with [`Masked`]), so a 3,530 x 1M score matrix never exists;
//! * [`bench`]: measures blocked scoring against a plain GEMM of the same shape.
//!
//! Guarantee: every score has the value given by [`dot`] (summation order documented in
//! [`kernel`]), so results are bit-identical across thread counts, block sizes, and between
//! pair scoring and blocked scoring.
//!
//! The GEMM is the `gemm` crate's f32 kernel (AVX-512 through its `x86-v4` feature, which
//! this crate turns on for the whole build): on the development machine it measured faster
//! than candle-core's matmul and the system OpenBLAS (see [`bench`]), it is pure Rust, and its
//! per-element summation order can be reproduced and tested, which the exactness guarantee
//! needs. Swapping it means editing [`gemm_block`] only.
//!
//! ```
//! use facebench_score::{score_blocked, BlockConfig, CountAbove, Matrix, TopKPerQuery};
//! let (q, g) = ([1.0, 0.0, 0.0, 1.0], [0.6, 0.8, 1.0, 0.0, 0.0, 1.0]);
//! let (q, g) = (Matrix::new(&q, 2, 2)?, Matrix::new(&g, 3, 2)?);
//! // Best match per query and, per query, how many gallery scores beat 0.5: one pass.
//! let reducers = (TopKPerQuery::new(2, 1), CountAbove::single(&[0.5, 0.5])?);
//! let (top, above) = score_blocked(q, g, BlockConfig::default(), reducers)?;
//! assert_eq!(top.into_hits()[0][0].gallery, 1);
//! assert_eq!(above.counts(), vec![2, 2]);
//! # Ok::<(), facebench_score::ScoreError>(())
//! ```

pub mod bench;
mod blocked;
pub mod kernel;
mod matrix;
mod pairs;
mod reducers;

pub use blocked::{drive_tiles, score_blocked, BlockConfig, GalleryMask, Masked, Reducer, Tile};
pub use kernel::{dot, gemm_block};
pub use matrix::{Matrix, ScoreError};
pub use pairs::score_pairs;
pub use reducers::{CountAbove, GlobalTopK, Histogram, Hit, PairHit, TopKPerQuery};
