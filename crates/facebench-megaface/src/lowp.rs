//! The bf16 scoring mode: features rounded to bfloat16 and scored with AVX-512 BF16
//! (`vdpbf16ps`, two multiply-adds per f32 lane), about twice the f32 GEMM rate.
//!
//! Scores differ from f32 scores (inputs keep 8 significant bits), so this is a labelled
//! approximate mode. Within the mode everything stays consistent: mate, genuine and
//! distractor scores all come from the same kernel, whose result for a (query, gallery) pair
//! does not depend on where the pair sits in a tile, so ties are still exact ties.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

/// Rows of one micro-tile.
const MR: usize = 8;
/// Columns of one micro-tile (two 16-lane registers); also the panel width of packed galleries.
const NR: usize = 32;

/// Whether this CPU can run the bf16 mode.
pub fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 -> bf16 bits, round to nearest even (inputs are finite).
#[inline]
fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Pairs of coordinates per row (the dimension rounded up to even).
fn pairs(dim: usize) -> usize {
    dim.div_ceil(2)
}

/// Queries as bf16 coordinate pairs, one `u32` per pair (low half = even coordinate).
pub(crate) struct PackedRows {
    pub rows: usize,
    kp: usize,
    data: Vec<u32>,
}

impl PackedRows {
    pub fn pack(data: &[f32], dim: usize) -> Self {
        let kp = pairs(dim);
        let rows = data.len() / dim;
        let mut out = vec![0u32; rows * kp];
        for (r, row) in data.chunks(dim).enumerate() {
            for (k, o) in out[r * kp..(r + 1) * kp].iter_mut().enumerate() {
                let lo = to_bf16(row[2 * k]) as u32;
                let hi = row.get(2 * k + 1).map_or(0, |&v| to_bf16(v)) as u32;
                *o = lo | (hi << 16);
            }
        }
        PackedRows {
            rows,
            kp,
            data: out,
        }
    }
}

/// A gallery in panels of `NR` columns: panel-major, then pair `k`, then column, then the
/// two coordinates of the pair. The last panel is zero-padded.
pub(crate) struct PackedPanels {
    pub cols: usize,
    kp: usize,
    data: Vec<u16>,
}

impl PackedPanels {
    pub fn pack(data: &[f32], dim: usize) -> Self {
        let kp = pairs(dim);
        let cols = data.len() / dim;
        let panel = kp * NR * 2;
        let mut out = vec![0u16; cols.div_ceil(NR) * panel];
        out.par_chunks_mut(panel).enumerate().for_each(|(p, dst)| {
            for c in 0..NR.min(cols - p * NR) {
                let row = &data[(p * NR + c) * dim..(p * NR + c + 1) * dim];
                for (k, &v) in row.iter().enumerate() {
                    dst[(k / 2) * NR * 2 + c * 2 + (k % 2)] = to_bf16(v);
                }
            }
        });
        PackedPanels {
            cols,
            kp,
            data: out,
        }
    }
}

/// Scores queries `q0 .. q0 + rows` of `q` against gallery columns `c0 .. c0 + cols` of `g`
/// (`c0` a multiple of `NR`) into `out` (row-major, `rows x cols`).
pub(crate) fn score_tile(
    q: &PackedRows,
    q0: usize,
    rows: usize,
    g: &PackedPanels,
    c0: usize,
    cols: usize,
    out: &mut [f32],
) {
    assert!(
        q.kp == g.kp
            && c0.is_multiple_of(NR)
            && q0 + rows <= q.rows
            && c0 + cols <= g.cols
            && out.len() == rows * cols
    );
    assert!(bf16_available(), "bf16 scoring needs AVX-512 BF16");
    let panel = g.kp * NR * 2;
    for p in 0..cols.div_ceil(NR) {
        let b = &g.data[(c0 / NR + p) * panel..(c0 / NR + p + 1) * panel];
        let nc = NR.min(cols - p * NR);
        for r0 in (0..rows).step_by(MR) {
            let mr = MR.min(rows - r0);
            // Rows past the end repeat the last row; their results are not stored.
            let a: [&[u32]; MR] = std::array::from_fn(|i| {
                let r = q0 + r0 + i.min(mr - 1);
                &q.data[r * q.kp..(r + 1) * q.kp]
            });
            // SAFETY: the CPU has AVX-512F and BF16 (asserted above); slices are bounds-checked
            // by construction: every `a[i]` has kp pairs, `b` has kp * NR * 2 values, and
            // `out` has room for `mr` rows of `cols` from (r0, p * NR).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                micro(&a, b, g.kp, &mut out[r0 * cols + p * NR..], cols, mr, nc)
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro(
    a: &[&[u32]; MR],
    b: &[u16],
    kp: usize,
    out: &mut [f32],
    stride: usize,
    mr: usize,
    nc: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let bp = b.as_ptr();
    for k in 0..kp {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(k * NR * 2) as *const _));
        let b1: __m512bh =
            std::mem::transmute(_mm512_loadu_si512(bp.add(k * NR * 2 + NR) as *const _));
        for i in 0..MR {
            let av: __m512bh =
                std::mem::transmute(_mm512_set1_epi32(*a[i].get_unchecked(k) as i32));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    let mut lanes = [0f32; NR];
    for (i, row) in acc.iter().enumerate().take(mr) {
        _mm512_storeu_ps(lanes.as_mut_ptr(), row[0]);
        _mm512_storeu_ps(lanes.as_mut_ptr().add(16), row[1]);
        out[i * stride..i * stride + nc].copy_from_slice(&lanes[..nc]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_accurate_and_independent_of_tile_position() {
        if !bf16_available() {
            eprintln!("no AVX-512 BF16 on this CPU: bf16 kernel not tested");
            return;
        }
        let mut rng = crate::rng::SplitMix64::new(3);
        let round = |x: f32| f32::from_bits((to_bf16(x) as u32) << 16) as f64;
        for (m, n, d) in [(13, 70, 37), (8, 32, 512), (3, 5, 2), (20, 100, 128)] {
            let q: Vec<f32> = (0..m * d).map(|_| rng.normal() as f32 * 0.1).collect();
            let g: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32 * 0.1).collect();
            let (pq, pg) = (PackedRows::pack(&q, d), PackedPanels::pack(&g, d));
            let mut full = vec![0f32; m * n];
            score_tile(&pq, 0, m, &pg, 0, n, &mut full);
            for i in 0..m {
                for j in 0..n {
                    // Close to the exact dot product of the bf16-rounded inputs.
                    let (a, b) = (&q[i * d..(i + 1) * d], &g[j * d..(j + 1) * d]);
                    let exact: f64 = a.iter().zip(b).map(|(x, y)| round(*x) * round(*y)).sum();
                    assert!(
                        (full[i * n + j] as f64 - exact).abs() < 1e-6 * d as f64,
                        "({i}, {j})"
                    );
                    // The same bits when the pair is scored alone (row 0, lane 0 of a tile).
                    let alone = PackedPanels::pack(b, d);
                    let mut one = [0f32];
                    score_tile(&pq, i, 1, &alone, 0, 1, &mut one);
                    assert_eq!(
                        one[0].to_bits(),
                        full[i * n + j].to_bits(),
                        "({i}, {j}) m {m} n {n} d {d}"
                    );
                }
            }
        }
    }
}
