//! The row-streaming stem: a thin-input convolution followed by depthwise-separable layers, as
//! one CPU kernel. Each chunk of output rows computes just the rows of the earlier layers'
//! outputs it needs, in cache-resident buffers (recomputing the one or two rows that
//! neighbouring chunks share), instead of writing those outputs (the network's largest tensors)
//! to memory and reading them back.

use std::cell::RefCell;
use std::ops::Range;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::direct::direct_row_best;
use crate::conv::{gemm_into, A_BLOCK, CHUNK_FLOATS};
use crate::cpu::{assume_init, cpu_f32, threads, uninit, use_kernels};
use crate::depthwise::depthwise_rows_best;
use crate::epilogue::apply_rows_best;
use crate::pad::Window;
use crate::{Conv2d, DepthwiseConv2d, Result};

/// `pre` (a thin-input convolution), then the separable layer (`dw`, `pw`), then each of `next`
/// in turn; on the CPU as one row-streaming kernel when `pre` takes the direct thin-input
/// kernel ([`Conv2d::with_direct_thin_input`]), else layer by layer. Same result either way.
pub fn stem(
    pre: &Conv2d,
    dw: &DepthwiseConv2d,
    pw: &Conv2d,
    next: &[(&DepthwiseConv2d, &Conv2d)],
    x: &Tensor,
) -> Result<Tensor> {
    let pre_win = pre.window(x)?;
    let mut dims = (pre_win.n, pre_win.ho, pre_win.wo, pre.c_out);
    let mut wins = Vec::with_capacity(next.len() + 1);
    for (d, p) in std::iter::once((dw, pw)).chain(next.iter().copied()) {
        super::check_pointwise(d, p)?;
        if dims.3 != d.c {
            return Err(crate::Error::Input(format!(
                "{}: input has {} channels, layer expects {}",
                d.name, dims.3, d.c
            )));
        }
        let win = Window::new((1, dims.1, dims.2, dims.3), d.k, d.stride, d.padding)?;
        dims = (dims.0, win.ho, win.wo, p.c_out);
        wins.push(win);
    }
    if use_kernels(x) && pre.takes_direct() {
        let layers: Vec<_> = std::iter::once((dw, pw)).chain(next.iter().copied()).collect();
        return Ok(x.contiguous()?.apply_op1_no_bwd(&Stem { pre, layers: &layers, wins: &wins })?);
    }
    let mut y = super::separable(dw, pw, &pre.forward(x)?)?;
    for (d, p) in next {
        y = super::separable(d, p, &y)?;
    }
    Ok(y)
}

struct Stem<'a> {
    pre: &'a Conv2d,
    /// The separable layers (depthwise, pointwise), each fed by the previous.
    layers: &'a [(&'a DepthwiseConv2d, &'a Conv2d)],
    /// Each layer's depthwise window over its (whole, one image) input.
    wins: &'a [Window],
}

thread_local! {
    /// Per-thread rows of the stem's first convolution, reused.
    static PRE_ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread (input rows, A block) of each later separable layer, reused.
    static LEVELS: RefCell<Vec<(Vec<f32>, Vec<f32>)>> = const { RefCell::new(Vec::new()) };
}

/// `dst = act(a @ filter)` for one chunk.
fn gemm_epilogue(a: &[f32], conv: &Conv2d, dst: &mut [f32]) {
    gemm_into(a, conv, dst);
    apply_rows_best(&conv.epi, dst, conv.c_out, None);
}

impl Stem<'_> {
    /// Rows `r0..r1` of the first separable layer's output for image `b`, into `out`.
    fn first_rows(&self, x: &[f32], pre_win: &Window, b: usize, r0: usize, r1: usize, out: &mut [f32]) {
        let dwin = &self.wins[0];
        let (h1, w1, c1) = (pre_win.ho, pre_win.wo, self.pre.c_out);
        let m = (r1 - r0) * dwin.wo;
        // Rows of `pre`'s output this chunk's depthwise taps read.
        let iy_start = (r0 * dwin.s).saturating_sub(dwin.top);
        let iy_end = ((r1 - 1) * dwin.s + dwin.k).saturating_sub(dwin.top).min(h1);
        let sub_h = iy_end - iy_start;
        PRE_ROWS.with(|pre_rows| {
            A_BLOCK.with(|a_buf| {
                let (mut pre_rows, mut a_buf) = (pre_rows.borrow_mut(), a_buf.borrow_mut());
                if pre_rows.len() < sub_h * w1 * c1 {
                    pre_rows.resize(sub_h * w1 * c1, 0.0);
                }
                if a_buf.len() < m * c1 {
                    a_buf.resize(m * c1, 0.0);
                }
                for (r, prow) in pre_rows[..sub_h * w1 * c1].chunks_exact_mut(w1 * c1).enumerate() {
                    direct_row_best(x, self.pre, pre_win, b * h1 + iy_start + r, prow);
                }
                // The depthwise window over the buffered rows: row iy of `pre`'s output is
                // buffer row iy - iy_start.
                let sub = Window { n: 1, h: sub_h, ho: r1 - r0, top: dwin.top + iy_start - r0 * dwin.s, ..*dwin };
                let a = &mut a_buf[..m * c1];
                depthwise_rows_best(&pre_rows[..sub_h * w1 * c1], self.layers[0].0, &sub, 0, a);
                gemm_epilogue(a, self.layers[0].1, out);
            })
        });
    }

    /// Rows `r0..r1` of the output of separable layer `level` for image `b`, into `out`,
    /// computing just the input rows they need.
    fn level_rows(&self, x: &[f32], pre_win: &Window, level: usize, b: usize, rows: Range<usize>, out: &mut [f32]) {
        let (r0, r1) = (rows.start, rows.end);
        if level == 0 {
            return self.first_rows(x, pre_win, b, r0, r1, out);
        }
        let (dw, pw) = self.layers[level];
        let win = &self.wins[level];
        let (win_w, c) = (win.w, win.c);
        let j0 = (r0 * win.s).saturating_sub(win.top);
        let j1 = ((r1 - 1) * win.s + win.k).saturating_sub(win.top).min(win.h);
        let (mlen, alen) = ((j1 - j0) * win_w * c, (r1 - r0) * win.wo * c);
        // This level's buffers, taken out of the thread's cache for the time of the call (the
        // recursion below uses the lower levels' ones).
        let (mut mid, mut a) = LEVELS.with(|l| {
            let mut l = l.borrow_mut();
            if l.len() < level {
                l.resize_with(level, Default::default);
            }
            std::mem::take(&mut l[level - 1])
        });
        if mid.len() < mlen {
            mid.resize(mlen, 0.0);
        }
        if a.len() < alen {
            a.resize(alen, 0.0);
        }
        self.level_rows(x, pre_win, level - 1, b, j0..j1, &mut mid[..mlen]);
        let sub = Window { n: 1, h: j1 - j0, ho: r1 - r0, top: win.top + j0 - r0 * win.s, ..*win };
        depthwise_rows_best(&mid[..mlen], dw, &sub, 0, &mut a[..alen]);
        gemm_epilogue(&a[..alen], pw, out);
        LEVELS.with(|l| l.borrow_mut()[level - 1] = (mid, a));
    }
}

impl CustomOp1 for Stem<'_> {
    fn name(&self) -> &'static str {
        "facebench-stem"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32("stem", storage, layout)?;
        let pre_win = Window::new(layout.shape().dims4()?, self.pre.k, self.pre.stride, self.pre.padding)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let n = pre_win.n;
        let last = self.wins[self.wins.len() - 1];
        let (hl, wl, cl) = (last.ho, last.wo, self.layers[self.layers.len() - 1].1.c_out);
        // Whole output rows per chunk, at least one chunk per thread; with later layers smaller
        // chunks (8 rows of the detector's 128-wide layer 2; measured best of 4-32), so that
        // the earlier layers' rows of a chunk stay in cache.
        let floats = if self.layers.len() == 1 { CHUNK_FLOATS } else { CHUNK_FLOATS / 4 };
        let mut rows = (floats / last.c / wl).clamp(1, hl);
        if n * hl.div_ceil(rows) < threads() {
            rows = hl.div_ceil(threads().div_ceil(n)).max(1);
        }
        let mut out = uninit(n * hl * wl * cl);
        use rayon::prelude::*;
        out.par_chunks_mut(hl * wl * cl).enumerate().for_each(|(b, image_out)| {
            image_out.par_chunks_mut(rows * wl * cl).enumerate().for_each(|(i, dst)| {
                // SAFETY: same layout; the last gemm writes every element before any read.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dst.len()) };
                let r0 = i * rows;
                self.level_rows(x, &pre_win, self.layers.len() - 1, b, r0..r0 + dst.len() / (wl * cl), dst);
            });
        });
        // SAFETY: every chunk was written.
        Ok((CpuStorage::F32(unsafe { assume_init(out) }), Shape::from((n, hl, wl, cl))))
    }
}
