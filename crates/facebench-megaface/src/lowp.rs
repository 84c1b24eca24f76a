//! The low-precision scoring modes, sharing one packing scheme, tile driver and
//! register-blocked microkernel loop:
//!
//! * bf16: features rounded to bfloat16, AVX-512 BF16 (`vdpbf16ps`, 2 multiply-adds per f32
//!   lane and instruction, f32 accumulation);
//! * int8: features quantised per vector, symmetrically: `q_k = round(x_k * 127 / max|x|)`
//!   (ties to even) in -127..=127, with the dequantisation factor `max|x| / 127` kept per
//!   vector (for 512-D unit features, whose largest coordinate is typically 0.15-0.2, this
//!   resolves coordinates several times finer than one fixed scale of 127). AVX-512
//!   VNNI (`vpdpbusd`, 4 u8 x i8 multiply-adds per i32 lane and instruction) needs one unsigned
//!   operand: queries are stored as `q + 128`, and the per-gallery-column correction
//!   `128 * sum_k g_k` is subtracted from the exact i32 sum. The score is then
//!   `((dot as f32) * scale_g) * scale_q`.
//!
//! Scores differ from f32 scores, so these are labelled approximate modes. Within a mode
//! everything stays consistent: mate, genuine and distractor scores all come from the same
//! kernel, whose result for a (query, gallery) pair does not depend on where the pair sits in
//! a tile (int8 sums are exact integers), so ties are still exact ties.
//!
//! Layout: a query row is `kw` 32-bit words, each holding the consecutive coordinates one
//! lane instruction consumes (2 bf16 or 4 bytes, lowest coordinate in the low bits, zero
//! padded); a gallery is cut into panels of `NR` columns stored word-major (`[panel][k][NR]`),
//! so the microkernel loads two registers of 16 columns per word and broadcasts one query word.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

/// Rows of one micro-tile.
const MR: usize = 8;
/// Columns of one micro-tile (two 16-lane registers); also the panel width of packed galleries.
pub(crate) const NR: usize = 32;

/// Largest dimension the int8 mode accepts: `d * 255 * 127` must fit an i32 accumulator.
pub(crate) const INT8_MAX_DIM: usize = (i32::MAX as usize) / (255 * 127);

/// A low-precision format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Bf16,
    Int8,
}

impl Format {
    /// Coordinates per 32-bit word (per lane and instruction).
    fn per_word(self) -> usize {
        match self {
            Format::Bf16 => 2,
            Format::Int8 => 4,
        }
    }

    /// Whether this CPU can run the format's kernel.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f")
                && match self {
                    Format::Bf16 => is_x86_feature_detected!("avx512bf16"),
                    Format::Int8 => is_x86_feature_detected!("avx512vnni"),
                }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The CPU feature the kernel needs, for error messages.
    pub fn requirement(self) -> &'static str {
        match self {
            Format::Bf16 => "AVX-512 BF16 (avx512bf16)",
            Format::Int8 => "AVX-512 VNNI (avx512vnni)",
        }
    }
}

/// Whether this CPU can run the bf16 mode.
pub fn bf16_available() -> bool {
    Format::Bf16.available()
}

/// Whether this CPU can run the int8 mode.
pub fn int8_available() -> bool {
    Format::Int8.available()
}

/// f32 -> bf16 bits, round to nearest even (inputs are finite).
#[inline]
fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Symmetric per-vector int8 quantisation (see the module docs); returns the
/// dequantisation factor (0 for an all-zero vector).
pub(crate) fn quantize(row: &[f32], out: &mut [i8]) -> f32 {
    let m = row.iter().fold(0f32, |a, &x| a.max(x.abs()));
    if m <= 0.0 {
        out.fill(0);
        return 0.0;
    }
    let s = 127.0 / m;
    // Round to nearest, ties to even, by adding and removing 1.5 * 2^23 (exact for
    // |x * s| <= 127; unlike `f32::round` it vectorises without SSE4.1).
    const MAGIC: f32 = 12_582_912.0;
    for (o, &x) in out.iter_mut().zip(row) {
        *o = (((x * s).clamp(-127.0, 127.0) + MAGIC) - MAGIC) as i32 as i8;
    }
    m / 127.0
}

/// One vector as `kw` words; returns (dequantisation factor, sum of the quantised values),
/// both only meaningful for int8. `unsigned` stores int8 values offset by 128 (queries).
fn encode(fmt: Format, unsigned: bool, row: &[f32], words: &mut [u32], tmp: &mut Vec<i8>) -> (f32, i32) {
    match fmt {
        Format::Bf16 => {
            for (k, w) in words.iter_mut().enumerate() {
                let lo = row.get(2 * k).map_or(0, |&v| to_bf16(v)) as u32;
                let hi = row.get(2 * k + 1).map_or(0, |&v| to_bf16(v)) as u32;
                *w = lo | (hi << 16);
            }
            (1.0, 0)
        }
        Format::Int8 => {
            tmp.clear();
            tmp.resize(words.len() * 4, 0);
            let scale = quantize(row, &mut tmp[..row.len()]);
            let off = if unsigned { 128u8 } else { 0 };
            for (w, q) in words.iter_mut().zip(tmp.chunks(4)) {
                *w = u32::from_le_bytes(std::array::from_fn(|b| (q[b] as u8).wrapping_add(off)));
            }
            (scale, tmp.iter().map(|&v| v as i32).sum())
        }
    }
}

/// Queries, one run of `kw` words per row.
pub(crate) struct PackedRows {
    fmt: Format,
    pub rows: usize,
    kw: usize,
    data: Vec<u32>,
    /// int8: per-row dequantisation factor.
    scale: Vec<f32>,
}

impl PackedRows {
    pub fn format(&self) -> Format {
        self.fmt
    }

    pub fn pack(fmt: Format, data: &[f32], dim: usize) -> Self {
        let kw = dim.div_ceil(fmt.per_word());
        let rows = data.len() / dim;
        let mut out = vec![0u32; rows * kw];
        let mut scale = vec![0f32; rows];
        out.par_chunks_mut(kw.max(1)).zip(scale.par_iter_mut()).zip(data.par_chunks(dim)).for_each_init(
            Vec::new,
            |tmp, ((w, s), row)| {
                *s = encode(fmt, true, row, w, tmp).0;
            },
        );
        PackedRows { fmt, rows, kw, data: out, scale }
    }
}

/// A gallery in panels of `NR` columns (`[panel][k][NR]` words, the last panel zero-padded).
pub(crate) struct PackedPanels {
    fmt: Format,
    pub cols: usize,
    kw: usize,
    data: Vec<u32>,
    /// int8, per column (padded to whole panels): dequantisation factor, `128 * sum_k g_k`.
    scale: Vec<f32>,
    corr: Vec<i32>,
}

impl PackedPanels {
    pub fn pack(fmt: Format, data: &[f32], dim: usize) -> Self {
        let mut p = PackedPanels { fmt, cols: 0, kw: 0, data: Vec::new(), scale: Vec::new(), corr: Vec::new() };
        p.repack(data, dim);
        p
    }

    /// Packs `data` (rows of `dim`) in place of the current contents, reusing the memory:
    /// a pass packs one gallery slice after another, and fresh buffers of that size would
    /// cost page faults each time.
    pub fn repack(&mut self, data: &[f32], dim: usize) {
        let fmt = self.fmt;
        let kw = dim.div_ceil(fmt.per_word());
        let cols = data.len() / dim;
        let panels = cols.div_ceil(NR);
        let panel = kw * NR;
        // Every value below is overwritten, padding included, so old contents may stay.
        self.data.resize(panels * panel, 0);
        self.scale.resize(panels * NR, 0.0);
        self.corr.resize(panels * NR, 0);
        (self.cols, self.kw) = (cols, kw);
        self.data[..panels * panel]
            .par_chunks_mut(panel.max(1))
            .zip(self.scale.par_chunks_mut(NR))
            .zip(self.corr.par_chunks_mut(NR))
            .enumerate()
            .for_each(|(p, ((dst, sc), co))| {
                let (mut words, mut tmp) = (vec![0u32; kw], Vec::new());
                for c in 0..NR {
                    if p * NR + c < cols {
                        let row = &data[(p * NR + c) * dim..(p * NR + c + 1) * dim];
                        let (s, sum) = encode(fmt, false, row, &mut words, &mut tmp);
                        (sc[c], co[c]) = (s, 128 * sum);
                    } else {
                        words.fill(0);
                        (sc[c], co[c]) = (0.0, 0);
                    }
                    for (k, &w) in words.iter().enumerate() {
                        dst[k * NR + c] = w;
                    }
                }
            });
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
        q.fmt == g.fmt
            && q.kw == g.kw
            && c0.is_multiple_of(NR)
            && q0 + rows <= q.rows
            && c0 + cols <= g.cols
            && out.len() == rows * cols
    );
    assert!(q.fmt.available(), "scoring needs {}", q.fmt.requirement());
    assert!(q.fmt != Format::Int8 || q.kw * 4 <= INT8_MAX_DIM);
    if rows == 0 {
        return;
    }
    let panel = g.kw * NR;
    let a = &q.data[q0 * q.kw..(q0 + rows) * q.kw];
    for p in 0..cols.div_ceil(NR) {
        let gp = c0 / NR + p;
        let b = &g.data[gp * panel..(gp + 1) * panel];
        let nc = NR.min(cols - p * NR);
        let dst = &mut out[p * NR..];
        // SAFETY: the CPU has the format's features (asserted above); `a` holds `rows` rows of
        // kw words, `b` kw * NR words, the column slices NR values, `q.scale[q0..]` `rows`
        // values, and `dst` rows of stride `cols` with `nc` values from its start
        // ((rows - 1) * cols + nc <= dst.len() because p * NR + nc <= cols).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match q.fmt {
                Format::Bf16 => panel_bf16(a, rows, b, g.kw, dst, cols, nc),
                Format::Int8 => panel_int8(
                    a,
                    rows,
                    b,
                    g.kw,
                    &q.scale[q0..q0 + rows],
                    &g.scale[gp * NR..(gp + 1) * NR],
                    &g.corr[gp * NR..(gp + 1) * NR],
                    dst,
                    cols,
                    nc,
                ),
            }
        };
    }
}

/// The shared register-blocked loop over one panel: rows in micro-tiles of `MR` (the last
/// one repeats its last row; those results are not stored), `MR x 2` accumulators, per word
/// two gallery registers and one broadcast query word per row, `$step(acc, query, gallery)`
/// per accumulator; then `$store(row index, [acc; 2])` for each row of the micro-tile.
#[cfg(target_arch = "x86_64")]
macro_rules! panel_loop {
    ($a:expr, $rows:expr, $b:expr, $kw:expr,
     |$acc:ident, $av:ident, $bv:ident| $step:expr,
     |$r:ident, $row:ident| $store:expr) => {{
        let (a, b, kw): (&[u32], &[u32], usize) = ($a, $b, $kw);
        let bp = b.as_ptr();
        for r0 in (0..$rows).step_by(MR) {
            let mr = MR.min($rows - r0);
            let ap: [*const u32; MR] = std::array::from_fn(|i| a.as_ptr().add((r0 + i.min(mr - 1)) * kw));
            let mut accs = [[_mm512_setzero_si512(); 2]; MR];
            for k in 0..kw {
                let b0 = _mm512_loadu_si512(bp.add(k * NR) as *const _);
                let b1 = _mm512_loadu_si512(bp.add(k * NR + 16) as *const _);
                for i in 0..MR {
                    let $av = _mm512_set1_epi32(*ap[i].add(k) as i32);
                    let ($acc, $bv) = (accs[i][0], b0);
                    accs[i][0] = $step;
                    let ($acc, $bv) = (accs[i][1], b1);
                    accs[i][1] = $step;
                }
            }
            for (i, $row) in accs.iter().enumerate().take(mr) {
                let $r = r0 + i;
                $store;
            }
        }
    }};
}

/// Store masks of the two halves of a micro-tile row with `nc` valid columns.
#[cfg(target_arch = "x86_64")]
fn masks(nc: usize) -> [__mmask16; 2] {
    let m = if nc >= NR { u32::MAX } else { (1u32 << nc) - 1 };
    [m as u16, (m >> 16) as u16]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn panel_bf16(a: &[u32], rows: usize, b: &[u32], kw: usize, out: &mut [f32], stride: usize, nc: usize) {
    let mk = masks(nc);
    let o = out.as_mut_ptr();
    panel_loop!(
        a,
        rows,
        b,
        kw,
        |acc, av, bv| _mm512_castps_si512(_mm512_dpbf16_ps(
            _mm512_castsi512_ps(acc),
            std::mem::transmute::<__m512i, __m512bh>(av),
            std::mem::transmute::<__m512i, __m512bh>(bv),
        )),
        |r, row| for h in (0..2).filter(|&h| mk[h] != 0) {
            _mm512_mask_storeu_ps(o.add(r * stride + 16 * h), mk[h], _mm512_castsi512_ps(row[h]));
        }
    );
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_int8(
    a: &[u32],
    rows: usize,
    b: &[u32],
    kw: usize,
    row_scale: &[f32],
    col_scale: &[f32],
    corr: &[i32],
    out: &mut [f32],
    stride: usize,
    nc: usize,
) {
    let mk = masks(nc);
    let o = out.as_mut_ptr();
    let cs = [_mm512_loadu_ps(col_scale.as_ptr()), _mm512_loadu_ps(col_scale.as_ptr().add(16))];
    let co = [_mm512_loadu_si512(corr.as_ptr() as *const _), _mm512_loadu_si512(corr.as_ptr().add(16) as *const _)];
    panel_loop!(a, rows, b, kw, |acc, av, bv| _mm512_dpbusd_epi32(acc, av, bv), |r, row| {
        let rs = _mm512_set1_ps(*row_scale.get_unchecked(r));
        // (A half with no valid column is not stored: its address may be past the end.)
        for h in (0..2).filter(|&h| mk[h] != 0) {
            let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(row[h], co[h]));
            let s = _mm512_mul_ps(_mm512_mul_ps(dot, cs[h]), rs);
            _mm512_mask_storeu_ps(o.add(r * stride + 16 * h), mk[h], s);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(rng: &mut facebench_core::rng::SplitMix64, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32 * 0.1).collect()
    }

    /// Every pair scored in a full tile equals the pair scored alone (row 0, lane 0 of its
    /// own tile), bit for bit; `check(i, j, score)` tests the value.
    fn check_tiles(fmt: Format, m: usize, n: usize, d: usize, seed: u64, check: impl Fn(&[f32], &[f32], f32)) {
        let mut rng = facebench_core::rng::SplitMix64::new(seed);
        let (q, g) = (random(&mut rng, m * d), random(&mut rng, n * d));
        let (pq, pg) = (PackedRows::pack(fmt, &q, d), PackedPanels::pack(fmt, &g, d));
        let mut full = vec![0f32; m * n];
        score_tile(&pq, 0, m, &pg, 0, n, &mut full);
        // An offset sub-tile (rows from 1, columns from the second panel) as well.
        let (r1, c1) = (1.min(m - 1), if n > NR { NR } else { 0 });
        let mut sub = vec![0f32; (m - r1) * (n - c1)];
        score_tile(&pq, r1, m - r1, &pg, c1, n - c1, &mut sub);
        for i in 0..m {
            for j in 0..n {
                let (a, b) = (&q[i * d..(i + 1) * d], &g[j * d..(j + 1) * d]);
                check(a, b, full[i * n + j]);
                let alone = PackedPanels::pack(fmt, b, d);
                let mut one = [0f32];
                score_tile(&pq, i, 1, &alone, 0, 1, &mut one);
                assert_eq!(one[0].to_bits(), full[i * n + j].to_bits(), "({i}, {j}) m {m} n {n} d {d}");
                if i >= r1 && j >= c1 {
                    let v = sub[(i - r1) * (n - c1) + (j - c1)];
                    assert_eq!(v.to_bits(), full[i * n + j].to_bits(), "sub ({i}, {j})");
                }
            }
        }
    }

    /// Shapes with d not a multiple of 2, 4 or 64 and m, n not multiples of MR or NR.
    const SHAPES: [(usize, usize, usize); 6] =
        [(13, 70, 37), (8, 32, 512), (3, 5, 2), (20, 100, 128), (9, 33, 1), (17, 65, 130)];

    #[test]
    fn bf16_kernel_is_accurate_and_independent_of_tile_position() {
        if !bf16_available() {
            eprintln!("no AVX-512 BF16 on this CPU: bf16 kernel not tested");
            return;
        }
        let round = |x: f32| f32::from_bits((to_bf16(x) as u32) << 16) as f64;
        for (s, &(m, n, d)) in SHAPES.iter().enumerate() {
            check_tiles(Format::Bf16, m, n, d, s as u64, |a, b, v| {
                // Close to the exact dot product of the bf16-rounded inputs.
                let exact: f64 = a.iter().zip(b).map(|(x, y)| round(*x) * round(*y)).sum();
                assert!((v as f64 - exact).abs() < 1e-6 * a.len() as f64, "{v} vs {exact}");
            });
        }
    }

    #[test]
    fn int8_kernel_is_the_exact_integer_dot_product() {
        if !int8_available() {
            eprintln!("no AVX-512 VNNI on this CPU: int8 kernel not tested");
            return;
        }
        for (s, &(m, n, d)) in SHAPES.iter().enumerate() {
            check_tiles(Format::Int8, m, n, d, 100 + s as u64, |a, b, v| {
                let (mut qa, mut qb) = (vec![0i8; d], vec![0i8; d]);
                let (sa, sb) = (quantize(a, &mut qa), quantize(b, &mut qb));
                let dot: i64 = qa.iter().zip(&qb).map(|(&x, &y)| x as i64 * y as i64).sum();
                let want = ((dot as f32) * sb) * sa;
                assert_eq!(v.to_bits(), want.to_bits(), "{v} vs {want} (integer dot {dot})");
                // And within the quantisation error bound of the f32 dot product.
                let f: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let l1 = |x: &[f32]| x.iter().map(|v| v.abs()).sum::<f32>();
                let bound = 0.5 * (sb * l1(a) + sa * l1(b)) + 0.25 * sa * sb * d as f32;
                assert!((v - f).abs() <= bound * 1.001 + 1e-6, "{v} vs f32 {f}");
            });
        }
    }

    #[test]
    fn repacking_a_smaller_slice_equals_a_fresh_pack() {
        for fmt in [Format::Bf16, Format::Int8].into_iter().filter(|f| f.available()) {
            let mut rng = facebench_core::rng::SplitMix64::new(77);
            let d = 45;
            let (q, g) = (random(&mut rng, 9 * d), random(&mut rng, 100 * d));
            let pq = PackedRows::pack(fmt, &q, d);
            // Big first, then 37 columns (the last panel partly padding, over old values).
            let mut reused = PackedPanels::pack(fmt, &g, d);
            reused.repack(&g[..37 * d], d);
            let fresh = PackedPanels::pack(fmt, &g[..37 * d], d);
            let (mut a, mut b) = (vec![0f32; 9 * 37], vec![1f32; 9 * 37]);
            score_tile(&pq, 0, 9, &reused, 0, 37, &mut a);
            score_tile(&pq, 0, 9, &fresh, 0, 37, &mut b);
            assert_eq!(a, b, "{fmt:?}");
            assert_eq!((reused.data.len(), reused.scale.len()), (fresh.data.len(), fresh.scale.len()));
        }
    }

    #[test]
    fn int8_extremes_and_zero_vectors() {
        if !int8_available() {
            return;
        }
        // Coordinates at +-max quantise to +-127 and the unsigned offset reaches 255 and 1;
        // an all-zero vector scores 0 against anything.
        let d = 67;
        let a: Vec<f32> = (0..d).map(|k| if k % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let mut g = a.clone();
        g.extend(a.iter().map(|x| -x));
        g.extend(vec![0.0; d]);
        let (pq, pg) = (PackedRows::pack(Format::Int8, &a, d), PackedPanels::pack(Format::Int8, &g, d));
        let mut out = [0f32; 3];
        score_tile(&pq, 0, 1, &pg, 0, 3, &mut out);
        let s = 1.0f32 / 127.0;
        assert_eq!(out, [((127 * 127 * d as i32) as f32 * s) * s, ((-127 * 127 * d as i32) as f32 * s) * s, 0.0]);
    }
}
