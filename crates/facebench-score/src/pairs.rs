//! Scoring an explicit list of (row of A, row of B) pairs, e.g. LFW's 6,000 pairs.

use rayon::prelude::*;

use crate::kernel::dots_batched;
use crate::matrix::{Matrix, ScoreError};

/// Dot products `a.row(i) . b.row(j)` for each `(i, j)` in `pairs`, in pair order.
///
/// Inputs are expected L2-normalised, so a dot product is the cosine similarity. Pairs are
/// scored in parallel on the current rayon pool; each score is one [`dot`](crate::dot) in the crate's
/// documented summation order, so the output does not depend on the thread count and equals
/// the score blocked scoring gives for the same two rows, bit for bit.
pub fn score_pairs(a: Matrix<'_>, b: Matrix<'_>, pairs: &[(usize, usize)]) -> Result<Vec<f32>, ScoreError> {
    if a.dim() != b.dim() {
        return Err(ScoreError::DimMismatch { left: a.dim(), right: b.dim() });
    }
    if let Some((index, &(i, j))) = pairs.iter().enumerate().find(|(_, &(i, j))| i >= a.rows() || j >= b.rows()) {
        return Err(ScoreError::PairOutOfRange { index, a: i, b: j, a_rows: a.rows(), b_rows: b.rows() });
    }
    let mut out = vec![0.0f32; pairs.len()];
    out.par_chunks_mut(256).zip(pairs.par_chunks(256)).for_each(|(o, p)| {
        dots_batched(p.len(), |t| (a.row(p[t].0), b.row(p[t].1)), |t, s| o[t] = s);
    });
    Ok(out)
}
