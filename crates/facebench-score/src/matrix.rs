//! A borrowed row-major f32 matrix and the crate's error type.

use rayon::prelude::*;
use std::ops::Range;

/// Everything that can go wrong in this crate. Messages name the offending row / pair / value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("matrix data has {len} values, expected rows x dim = {rows} x {dim}")]
    Shape { len: usize, rows: usize, dim: usize },
    #[error("matrix dimension must be at least 1 (got 0)")]
    ZeroDim,
    #[error("matrix row {row}, column {col} holds a non-finite value ({value})")]
    NonFinite { row: usize, col: usize, value: f32 },
    #[error("dimension mismatch: left matrix has dim {left}, right matrix has dim {right}")]
    DimMismatch { left: usize, right: usize },
    #[error("pair {index} = ({a}, {b}) is out of range: left has {a_rows} rows, right has {b_rows}")]
    PairOutOfRange { index: usize, a: usize, b: usize, a_rows: usize, b_rows: usize },
    #[error("output buffer has {len} values, expected {expected}")]
    OutputLen { len: usize, expected: usize },
    #[error("block sizes must be at least 1 (query_block {query_block}, gallery_block {gallery_block})")]
    ZeroBlock { query_block: usize, gallery_block: usize },
    #[error("invalid reducer configuration: {0}")]
    Config(String),
    #[error("reducer does not fit the problem: {0}")]
    ReducerShape(String),
    #[error("could not build a rayon thread pool: {0}")]
    ThreadPool(String),
}

/// A read-only view of `rows x dim` f32 values stored row by row.
///
/// The constructor rejects NaN and infinities so that every score the crate computes is
/// ordered by plain comparisons; embeddings are expected to be L2-normalised, which makes a
/// dot product a cosine similarity.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    dim: usize,
}

impl<'a> Matrix<'a> {
    /// Wraps `data` as `rows x dim`; errors on a length mismatch, `dim == 0` or a non-finite value
    /// (the error names its row and column).
    pub fn new(data: &'a [f32], rows: usize, dim: usize) -> Result<Self, ScoreError> {
        if dim == 0 {
            return Err(ScoreError::ZeroDim);
        }
        if rows.checked_mul(dim) != Some(data.len()) {
            return Err(ScoreError::Shape { len: data.len(), rows, dim });
        }
        // The check reads every value (2 GB for MegaFace at 1M): whole blocks are tested
        // without early exit (vectorised), in parallel; only a failing block is searched.
        const BLOCK: usize = 1 << 16;
        let bad = data.par_chunks(BLOCK).position_first(|c| !c.iter().fold(true, |ok, v| ok & v.is_finite()));
        if let Some(b) = bad {
            let pos = b * BLOCK + data[b * BLOCK..].iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(ScoreError::NonFinite { row: pos / dim, col: pos % dim, value: data[pos] });
        }
        Ok(Matrix { data, rows, dim })
    }

    /// Number of rows (embeddings).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Length of each row (embedding dimension).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i` (panics if `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// Rows `range` as a matrix of their own (already validated, so no re-check).
    pub fn slice_rows(&self, range: Range<usize>) -> Matrix<'a> {
        Matrix {
            data: &self.data[range.start * self.dim..range.end * self.dim],
            rows: range.end - range.start,
            dim: self.dim,
        }
    }
}
