//! Direct k x k convolution of thin inputs (at most 4 channels): every output pixel
//! accumulates, tap by tap and input channel by input channel, a 32-wide block of the filter in
//! registers, then the epilogue.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

use crate::cpu::{assume_init, cpu_f32, for_each_chunk_uninit, uninit};
use crate::pad::Window;
use crate::Conv2d;

/// [`Conv2d`]'s thin-input kernel (`c_out` a multiple of 32).
pub(crate) struct DirectConv<'a>(pub &'a Conv2d);

impl CustomOp1 for DirectConv<'_> {
    fn name(&self) -> &'static str {
        "facebench-direct-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32("direct conv", storage, layout)?;
        let conv = self.0;
        let win = Window::new(layout.shape().dims4()?, conv.k, conv.stride, conv.padding)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let cout = conv.c_out;
        if conv.wmat.len() != win.k * win.k * win.c * cout || !cout.is_multiple_of(32) {
            candle_core::bail!("direct conv: filter is not for {} input channels", win.c);
        }
        let mut out = uninit(win.n * win.ho * win.wo * cout);
        for_each_chunk_uninit(&mut out, win.wo * cout, |row, orow| direct_row_best(x, conv, &win, row, orow));
        // SAFETY: every row was written by direct_row.
        let out = unsafe { assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, cout))))
    }
}

/// `acc += xv * w` lane by lane (multiply, then add).
#[inline(always)]
fn scale_add_block(acc: &mut [f32; 32], xv: f32, w: &[f32; 32]) {
    for i in 0..32 {
        acc[i] += xv * w[i];
    }
}

/// Output row `row` (flat over the batch) of the convolution, written once (`orow` need not be
/// zeroed). Away from the borders four pixels go together, sharing each filter load.
#[inline(always)]
pub(crate) fn direct_row(x: &[f32], conv: &Conv2d, win: &Window, row: usize, orow: &mut [f32]) {
    let cout = conv.c_out;
    let (k, c, s) = (win.k, win.c, win.s);
    let (b, oy) = (row / win.ho, row % win.ho);
    let w = &conv.wmat;
    let iy0 = (oy * s).wrapping_sub(win.top);
    let rows_inside = iy0 < win.h && iy0 + k <= win.h;
    let mut ox = 0;
    while ox < win.wo {
        let ix0 = (ox * s).wrapping_sub(win.left);
        if rows_inside && ox + 4 <= win.wo && ix0 < win.w && ix0 + 3 * s + k <= win.w {
            let base = ((b * win.h + iy0) * win.w + ix0) * c;
            // One bounds check for the whole group (per-load checks cost more than the
            // arithmetic of a 3-channel input).
            let x_end = base + ((k - 1) * win.w + k - 1) * c + 3 * s * c + c;
            assert!(x_end <= x.len() && k * k * c * cout <= w.len(), "convolution window outside its buffers");
            for cb in (0..cout).step_by(32) {
                let mut acc = [[0f32; 32]; 4];
                for ky in 0..k {
                    for kx in 0..k {
                        let xo = base + (ky * win.w + kx) * c;
                        for ci in 0..c {
                            let at = ((ky * k + kx) * c + ci) * cout + cb;
                            // SAFETY: at + 32 <= k*k*c*cout <= w.len() (cb + 32 <= cout).
                            let wb = unsafe { &*(w.as_ptr().add(at) as *const [f32; 32]) };
                            for (q, acc) in acc.iter_mut().enumerate() {
                                // SAFETY: xo + q*s*c + ci < x_end <= x.len() (checked above).
                                let xv = unsafe { *x.get_unchecked(xo + q * s * c + ci) };
                                scale_add_block(acc, xv, wb);
                            }
                        }
                    }
                }
                for (q, acc) in acc.iter().enumerate() {
                    orow[(ox + q) * cout + cb..(ox + q) * cout + cb + 32].copy_from_slice(acc);
                }
            }
            conv.epi.apply_rows(&mut orow[ox * cout..(ox + 4) * cout], cout, None);
            ox += 4;
            continue;
        }
        let o = &mut orow[ox * cout..(ox + 1) * cout];
        for cb in (0..cout).step_by(32) {
            let mut acc = [0f32; 32];
            for ky in 0..k {
                for kx in 0..k {
                    let Some(p) = win.tap(b, oy, ox, ky, kx) else { continue };
                    for ci in 0..c {
                        let at = ((ky * k + kx) * c + ci) * cout + cb;
                        scale_add_block(&mut acc, x[p * c + ci], w[at..at + 32].try_into().expect("32 floats"));
                    }
                }
            }
            o[cb..cb + 32].copy_from_slice(&acc);
        }
        conv.epi.apply_row(o, None);
        ox += 1;
    }
}

crate::simd::simd_kernel! {
    /// [`direct_row`] for the CPU's vector level.
    pub(crate) fn direct_row_best(x: &[f32], conv: &Conv2d, win: &Window, row: usize, orow: &mut [f32]) => direct_row;
}
