//! The arithmetic of one score, and the single place that runs a GEMM.
//!
//! # The summation order (what makes results reproducible)
//!
//! Every score `q . g` this crate produces, whether from [`score_pairs`](crate::score_pairs)
//! or from blocked scoring under any block size or thread count, is computed as:
//!
//! ```text
//! split 0..d into consecutive chunks of CHUNK (= 512) coordinates;
//! for each chunk c: s_c = fma(q[k], g[k], ... fma(q[k0+1], g[k0+1], fma(q[k0], g[k0], +0.0)))
//!                   (a sequential fused-multiply-add chain in index order, starting at +0.0)
//! score = ((s_0 + s_1) + s_2) + ...      (f32 adds, left to right)
//! ```
//!
//! This is exactly what the `gemm` crate's packed micro-kernels do per output element when a
//! call has depth `k <= 512` (its cache blocking never splits such a depth: `kc = k`), with
//! `beta = 1` storing the first chunk and `alpha = beta = 1` (`dst + acc`) accumulating later
//! chunks. `gemm` has other code paths (horizontal dot kernels for tiny outputs, GEMV for a
//! single row/column, a k <= 2 special case) that sum in other orders, so [`gemm_block`]
//! routes exactly those shapes to a scalar loop with the same order instead. The crate's tests
//! check bit-for-bit equality between `gemm_block` and [`dot`] over many shapes, so a change of
//! `gemm` internals that broke this would be caught.

use crate::matrix::{Matrix, ScoreError};

/// Depth of one GEMM call; also the chunk length of the documented summation order.
pub const CHUNK: usize = 512;

/// Fused multiply-add chain over one chunk, starting at +0.0.
#[inline(always)]
fn fma_chain(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        s = x.mul_add(*y, s);
    }
    s
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut chunks = a.chunks(CHUNK).zip(b.chunks(CHUNK));
    let Some((a0, b0)) = chunks.next() else { return 0.0 };
    let mut total = fma_chain(a0, b0);
    for (ac, bc) in chunks {
        total += fma_chain(ac, bc);
    }
    total
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

/// Dot product of two equal-length slices in the crate's documented summation order
/// (see the module docs). Uses the FMA instruction when the CPU has it; `f32::mul_add`
/// is correctly rounded either way, so the value does not depend on that choice.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA (checked just above).
            return unsafe { dot_fma(a, b) };
        }
    }
    dot_generic(a, b)
}

/// Number of independent dot products [`dot_lanes`] interleaves: enough FMA chains in flight
/// to hide the FMA latency (4 cycles x 2 ports).
pub(crate) const LANES: usize = 8;

#[inline(always)]
fn dot_lanes_generic(a: [&[f32]; LANES], b: [&[f32]; LANES]) -> [f32; LANES] {
    let d = a[0].len();
    let mut total = [0.0f32; LANES];
    let mut c0 = 0;
    while c0 < d {
        let c1 = (c0 + CHUNK).min(d);
        // Re-slice to the chunk so that the compiler can drop bounds checks.
        let ac: [&[f32]; LANES] = std::array::from_fn(|l| &a[l][c0..c1]);
        let bc: [&[f32]; LANES] = std::array::from_fn(|l| &b[l][c0..c1]);
        let mut s = [0.0f32; LANES];
        for k in 0..c1 - c0 {
            for l in 0..LANES {
                s[l] = ac[l][k].mul_add(bc[l][k], s[l]);
            }
        }
        for l in 0..LANES {
            total[l] = if c0 == 0 { s[l] } else { total[l] + s[l] };
        }
        c0 = c1;
    }
    total
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn dot_lanes_fma(a: [&[f32]; LANES], b: [&[f32]; LANES]) -> [f32; LANES] {
    dot_lanes_generic(a, b)
}

/// `LANES` dot products at once, each exactly [`dot`] (same chunks, same FMA order); the
/// chains are interleaved only for speed. All slices must have the same length.
pub(crate) fn dot_lanes(a: [&[f32]; LANES], b: [&[f32]; LANES]) -> [f32; LANES] {
    let d = a[0].len();
    assert!(a.iter().chain(&b).all(|x| x.len() == d), "dot_lanes: slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA (checked just above).
            return unsafe { dot_lanes_fma(a, b) };
        }
    }
    dot_lanes_generic(a, b)
}

/// Dots of `pair(i)` for `i in 0..count`, written through `out(i, score)`, `LANES` at a time.
pub(crate) fn dots_batched<'a>(
    count: usize,
    pair: impl Fn(usize) -> (&'a [f32], &'a [f32]),
    mut out: impl FnMut(usize, f32),
) {
    let mut i = 0;
    while i + LANES <= count {
        let ps: [(&[f32], &[f32]); LANES] = std::array::from_fn(|l| pair(i + l));
        let r = dot_lanes(ps.map(|p| p.0), ps.map(|p| p.1));
        for (l, v) in r.into_iter().enumerate() {
            out(i + l, v);
        }
        i += LANES;
    }
    for j in i..count {
        let (a, b) = pair(j);
        out(j, dot(a, b));
    }
}

/// True when `gemm` would run a `rows x cols x depth` product through its packed
/// micro-kernels (the path whose per-element order is the documented one).
fn gemm_takes_kernel_path(rows: usize, cols: usize, depth: usize) -> bool {
    rows >= 2 && cols >= 2 && rows * cols > 16 * 16 && depth >= 3
}

/// Scores every row of `q_tile` against every row of `g_tile`:
/// `out[i * g_tile.rows() + j] = dot(q_tile.row(i), g_tile.row(j))`, bit-identical to [`dot`].
///
/// This is the only function that picks the GEMM implementation. It uses the `gemm` crate's
/// f32 kernel, single-threaded (callers parallelise over tiles), one call per 512-deep chunk of
/// the dimension; shapes that `gemm` would send down a differently-ordered path are computed
/// with a scalar FMA loop instead.
pub fn gemm_block(q_tile: Matrix<'_>, g_tile: Matrix<'_>, out: &mut [f32]) -> Result<(), ScoreError> {
    let (m, n, d) = (q_tile.rows(), g_tile.rows(), q_tile.dim());
    if g_tile.dim() != d {
        return Err(ScoreError::DimMismatch { left: d, right: g_tile.dim() });
    }
    if out.len() != m * n {
        return Err(ScoreError::OutputLen { len: out.len(), expected: m * n });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (q, g) = (q_tile.as_slice(), g_tile.as_slice());
    let mut c0 = 0;
    while c0 < d {
        let kc = CHUNK.min(d - c0);
        let first = c0 == 0;
        if gemm_takes_kernel_path(m, n, kc) {
            // SAFETY: `out` holds m*n values written with row stride n; `q` holds m rows and
            // `g` n rows of stride d, and c0 + kc <= d, so every pointer gemm forms stays in
            // bounds. Parallelism::None keeps the call on this thread.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    kc,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    !first,
                    q.as_ptr().add(c0),
                    1,
                    d as isize,
                    g.as_ptr().add(c0),
                    d as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        } else {
            for i in 0..m {
                let qc = &q[i * d + c0..i * d + c0 + kc];
                let row = &mut out[i * n..(i + 1) * n];
                dots_batched(
                    n,
                    |j| (qc, &g[j * d + c0..j * d + c0 + kc]),
                    |j, s| {
                        row[j] = if first { s } else { row[j] + s };
                    },
                );
            }
        }
        c0 += kc;
    }
    Ok(())
}
