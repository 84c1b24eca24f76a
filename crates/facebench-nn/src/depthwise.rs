//! Depthwise convolution (channel multiplier 1): a stencil blocked in registers over channels.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use crate::cpu::{assume_init, cpu_f32, for_each_chunk_uninit, nchw_to_nhwc, nhwc_to_nchw, uninit, use_kernels};
use crate::epilogue::Epilogue;
use crate::pad::{pad2d, Padding, Window};
use crate::{Activation, Error, Result};

/// Largest kernel side the CPU kernel takes (its tap list lives on the stack).
const MAX_K: usize = 7;

/// A depthwise convolution with TF weights, its padding and a fused epilogue.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    pub(crate) name: String,
    pub(crate) c: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) padding: Padding,
    /// TF `[k, k, c]` as stored: one channel vector per tap.
    pub(crate) wmat: Vec<f32>,
    /// `[c, 1, k, k]` for candle's grouped `conv2d`.
    weight: Tensor,
    pub(crate) epi: Epilogue,
}

impl DepthwiseConv2d {
    /// `w` is a square TF depthwise filter of `shape = [k, k, c, 1]`.
    pub fn new(
        name: &str,
        w: &[f32],
        shape: [usize; 4],
        stride: usize,
        padding: impl Into<Padding>,
        device: &Device,
    ) -> Result<Self> {
        let [kh, kw, c, mult] = shape;
        if mult != 1 || w.len() != kh * kw * c || stride == 0 || kh != kw || kh > MAX_K {
            return Err(Error::Input(format!(
                "{name}: {} weights for depthwise filter shape {shape:?}, stride {stride}",
                w.len()
            )));
        }
        let weight = Tensor::from_slice(w, (kh, kw, c, 1), device)?.permute((2, 3, 0, 1))?.contiguous()?;
        Ok(DepthwiseConv2d {
            name: name.to_string(),
            c,
            k: kh,
            stride,
            padding: padding.into(),
            wmat: w.to_vec(),
            weight,
            epi: Epilogue::new(),
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.set_bias(&self.name, self.c, bias, self.weight.device())?;
        Ok(self)
    }

    /// `y = y * scale + shift` per channel after the bias (folded BatchNorm).
    pub fn with_affine(mut self, scale: &[f32], shift: &[f32]) -> Result<Self> {
        self.epi.set_affine(&self.name, self.c, scale, shift, self.weight.device())?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.set_act(&self.name, self.c, act, self.weight.device())?;
        Ok(self)
    }

    pub(crate) fn window(&self, x: &Tensor) -> Result<Window> {
        Window::of_input(&self.name, x, self.c, self.k, self.stride, self.padding)
    }

    /// NHWC in, NHWC out; the blocked kernel on CPU, candle's grouped conv elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.window(x)?;
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
        } else {
            self.forward_candle(x)
        }
    }

    /// The same layer with candle's grouped `conv2d` (one convolution per channel on CPU).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let win = self.window(x)?;
        let y = nhwc_to_nchw(&pad2d(x, win.pads())?)?.conv2d(&self.weight, 0, self.stride, 1, self.c)?;
        self.epi.apply_candle(nchw_to_nhwc(&y)?, None)
    }
}

impl CustomOp1 for DepthwiseConv2d {
    fn name(&self) -> &'static str {
        "facebench-depthwise-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32("depthwise", s, l)?;
        let win = Window::new(l.shape().dims4()?, self.k, self.stride, self.padding)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let c = win.c;
        // Blocks of 256 output pixels, written once (no zeroing pass).
        let mut out = uninit(win.n * win.ho * win.wo * c);
        for_each_chunk_uninit(&mut out, 256 * c, |i, o| depthwise_rows_best(x, self, &win, i * 256, o));
        // SAFETY: every chunk was written.
        let out = unsafe { assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, c))))
    }
}

/// `acc += x * w` lane by lane (a multiply, then an add: never fused, so that every vector
/// level and the candle-free reference sums round alike).
#[inline(always)]
fn mul_add_block(acc: &mut [f32; 32], x: &[f32; 32], w: &[f32; 32]) {
    for i in 0..32 {
        acc[i] += x[i] * w[i];
    }
}

fn block32(v: &[f32], at: usize) -> &[f32; 32] {
    v[at..at + 32].try_into().expect("32 floats")
}

/// Four output pixels of one row, one block of 32 channels: `taps` holds the (weight offset,
/// input offset from the first pixel's window corner) of the k*k taps; pixel j's input is
/// `step * j` further on. Weights are loaded once for the four pixels. The bounds are checked
/// once for the whole group (per-load checks cost more than the arithmetic here).
#[inline(always)]
fn dw_quad(x: &[f32], w: &[f32], taps: &[(usize, usize)], base: usize, step: usize, cb: usize) -> [[f32; 32]; 4] {
    let mut acc = [[0f32; 32]; 4];
    let x_end = taps.iter().map(|t| t.1).max().unwrap_or(0) + base + 3 * step + cb + 32;
    let w_end = taps.iter().map(|t| t.0).max().unwrap_or(0) + cb + 32;
    assert!(x_end <= x.len() && w_end <= w.len(), "depthwise window outside its buffers");
    if taps.len() == 9 && step == taps[1].1 {
        // 3x3, stride 1: pixel j's tap kx reads input column j + kx, so a row of taps needs six
        // input blocks for the four pixels, loaded once each (not twelve times).
        for ky in 0..3 {
            let row = base + taps[3 * ky].1 + cb;
            // SAFETY: row + 5 * step + 32 <= x_end (the largest tap offset is 2 * step beyond
            // this row's first, plus 3 * step for pixel 3).
            let xs: [[f32; 32]; 6] =
                std::array::from_fn(|j| unsafe { *(x.as_ptr().add(row + j * step) as *const [f32; 32]) });
            for kx in 0..3 {
                // SAFETY: every weight offset is at most the maximum checked above.
                let wb = unsafe { &*(w.as_ptr().add(taps[3 * ky + kx].0 + cb) as *const [f32; 32]) };
                for (q, acc) in acc.iter_mut().enumerate() {
                    mul_add_block(acc, &xs[q + kx], wb);
                }
            }
        }
        return acc;
    }
    for &(wo, xo) in taps {
        // SAFETY: every offset used is at most the maxima checked above.
        let wb = unsafe { &*(w.as_ptr().add(wo + cb) as *const [f32; 32]) };
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: base + j * step + xo + cb + 32 <= x_end <= x.len() (checked above).
            let xb = unsafe { &*(x.as_ptr().add(base + j * step + xo + cb) as *const [f32; 32]) };
            mul_add_block(acc, xb, wb);
        }
    }
    acc
}

/// Depthwise values (with the layer's epilogue) of output pixels `p0..p0 + a.len() / c`. Per
/// pixel and block of 32 channels the taps accumulate in registers, in (ky, kx) order from 0,
/// skipping padding: the sums of the textbook loop exactly. Away from the borders four pixels
/// of a row go together, sharing each weight load.
#[inline(always)]
fn depthwise_rows(x: &[f32], dw: &DepthwiseConv2d, win: &Window, p0: usize, a: &mut [f32]) {
    let (k, c, s) = (win.k, win.c, win.s);
    let (mut b, mut oy, mut ox) = win.pixel(p0);
    let mut taps = [(0usize, 0usize); MAX_K * MAX_K];
    // Interior taps: offsets from the window's top-left input pixel.
    let mut inner = [(0usize, 0usize); MAX_K * MAX_K];
    for ky in 0..k {
        for kx in 0..k {
            inner[ky * k + kx] = ((ky * k + kx) * c, (ky * win.w + kx) * c);
        }
    }
    let inner = &inner[..k * k];
    let npix = a.len() / c;
    let mut j = 0;
    while j < npix {
        // Four pixels in this row, all taps inside the image?
        let iy0 = (oy * s).wrapping_sub(win.top);
        let ix0 = (ox * s).wrapping_sub(win.left);
        let quad = c % 32 == 0
            && j + 4 <= npix
            && ox + 4 <= win.wo
            && iy0 < win.h
            && iy0 + k <= win.h
            && ix0 < win.w
            && ix0 + 3 * s + k <= win.w;
        if quad {
            let base = ((b * win.h + iy0) * win.w + ix0) * c;
            let out = &mut a[j * c..(j + 4) * c];
            for cb in (0..c).step_by(32) {
                let acc = dw_quad(x, &dw.wmat, inner, base, s * c, cb);
                for (q, acc) in acc.iter().enumerate() {
                    out[q * c + cb..q * c + cb + 32].copy_from_slice(acc);
                }
            }
            dw.epi.apply_rows(out, c, None);
            j += 4;
            ox += 4;
        } else {
            let out = &mut a[j * c..(j + 1) * c];
            let mut nt = 0;
            for ky in 0..k {
                // Above the image the subtraction wraps to a huge index, which fails the bound.
                let iy = (oy * s + ky).wrapping_sub(win.top);
                if iy >= win.h {
                    continue;
                }
                let row = (b * win.h + iy) * win.w;
                for kx in 0..k {
                    let ix = (ox * s + kx).wrapping_sub(win.left);
                    if ix < win.w {
                        taps[nt] = ((ky * k + kx) * c, (row + ix) * c);
                        nt += 1;
                    }
                }
            }
            let taps = &taps[..nt];
            let mut cb = 0;
            while cb + 32 <= c {
                let mut acc = [0f32; 32];
                for &(wo, xo) in taps {
                    mul_add_block(&mut acc, block32(x, xo + cb), block32(&dw.wmat, wo + cb));
                }
                out[cb..cb + 32].copy_from_slice(&acc);
                cb += 32;
            }
            for ch in cb..c {
                let mut acc = 0f32;
                for &(wo, xo) in taps {
                    acc += x[xo + ch] * dw.wmat[wo + ch];
                }
                out[ch] = acc;
            }
            dw.epi.apply_row(out, None);
            j += 1;
            ox += 1;
        }
        if ox == win.wo {
            ox = 0;
            oy += 1;
            if oy == win.ho {
                oy = 0;
                b += 1;
            }
        }
    }
}

crate::simd::simd_kernel! {
    /// [`depthwise_rows`] for the CPU's vector level.
    pub(crate) fn depthwise_rows_best(x: &[f32], dw: &DepthwiseConv2d, win: &Window, p0: usize, a: &mut [f32]) => depthwise_rows;
}
