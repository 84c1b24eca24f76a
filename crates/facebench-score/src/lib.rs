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

pub mod bench;
mod blocked;
pub mod kernel;
mod matrix;
mod pairs;
mod reducers;

pub use blocked::{score_blocked, BlockConfig, GalleryMask, Masked, Reducer, Tile};
pub use kernel::{dot, gemm_block};
pub use matrix::{Matrix, ScoreError};
pub use pairs::score_pairs;
pub use reducers::{CountAbove, GlobalTopK, Histogram, Hit, PairHit, TopKPerQuery};
