//! Convolution (groups = 1) as im2col + GEMM over chunks of output pixels.

use std::cell::RefCell;
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};

use crate::cpu::{
    assume_init, cpu_f32, for_each_chunk_uninit, nchw_to_nhwc, nhwc_to_nchw, threads, uninit, use_kernels,
};
use crate::depthwise::{depthwise_rows_best, DepthwiseConv2d};
use crate::epilogue::{apply_rows_best, Epilogue};
use crate::pad::{pad2d, Padding, Window};
use crate::{Activation, Error, Result};

/// A convolution with TF weights, its padding and a fused epilogue.
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub(crate) name: String,
    pub(crate) c_in: usize,
    pub(crate) c_out: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) padding: Padding,
    /// TF HWIO as stored: row `(ky, kx, c)` of `[k*k*c_in, c_out]`, the im2col row order.
    pub(crate) wmat: Vec<f32>,
    /// OIHW copy for candle's `conv2d`, made on first use: the CPU kernels never read it, and
    /// candle's strided copy of every filter cost ~160M instructions at detector load.
    weight: OnceLock<Tensor>,
    device: Device,
    pub(crate) epi: Epilogue,
    /// Thin inputs convolve directly (see [`Conv2d::with_direct_thin_input`]).
    direct_thin: bool,
}

impl Conv2d {
    /// `w` is a square TF HWIO filter of `shape = [k, k, c_in, c_out]`.
    pub fn new(
        name: &str,
        w: &[f32],
        shape: [usize; 4],
        stride: usize,
        padding: impl Into<Padding>,
        device: &Device,
    ) -> Result<Self> {
        let [kh, kw, c_in, c_out] = shape;
        if w.len() != kh * kw * c_in * c_out || stride == 0 || kh != kw {
            return Err(Error::Input(format!(
                "{name}: {} weights for filter shape {shape:?}, stride {stride}",
                w.len()
            )));
        }
        Ok(Conv2d {
            name: name.to_string(),
            c_in,
            c_out,
            k: kh,
            stride,
            padding: padding.into(),
            wmat: w.to_vec(),
            weight: OnceLock::new(),
            device: device.clone(),
            epi: Epilogue::new(),
            direct_thin: false,
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.set_bias(&self.name, self.c_out, bias, &self.device)?;
        Ok(self)
    }

    /// `y = y * scale + shift` per channel after the bias (dlib's affine / folded BatchNorm).
    pub fn with_affine(mut self, scale: &[f32], shift: &[f32]) -> Result<Self> {
        self.epi.set_affine(&self.name, self.c_out, scale, shift, &self.device)?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.set_act(&self.name, self.c_out, act, &self.device)?;
        Ok(self)
    }

    /// On CPU, inputs of at most 4 channels (an RGB im2col row has only 27 columns, a poor GEMM
    /// shape) into a multiple of 32 outputs convolve directly, tap by tap, with each pixel's
    /// outputs in registers. A different summation order than the GEMM's, so a port opts in
    /// (the detector); the recognition ports keep the GEMM their reference numbers were taken with.
    pub fn with_direct_thin_input(mut self) -> Self {
        self.direct_thin = true;
        self
    }

    /// Stacks convolutions that read the same input (same geometry, bias-only epilogues with one
    /// activation) into one, its outputs concatenated along channels.
    pub fn concat_outputs(name: &str, parts: &[Conv2d]) -> Result<Self> {
        let first = parts.first().ok_or_else(|| Error::Input(format!("{name}: no convolutions to stack")))?;
        let same = |p: &Conv2d| {
            (p.k, p.stride, p.padding, p.c_in, p.epi.act())
                == (first.k, first.stride, first.padding, first.c_in, first.epi.act())
                && !p.epi.has_affine()
                && p.epi.bias().is_some()
        };
        if !parts.iter().all(same) {
            return Err(Error::Input(format!("{name}: stacked convolutions differ in geometry or epilogue")));
        }
        let c_out: usize = parts.iter().map(|p| p.c_out).sum();
        let rows = first.k * first.k * first.c_in;
        let mut w = Vec::with_capacity(rows * c_out);
        for r in 0..rows {
            for p in parts {
                w.extend_from_slice(&p.wmat[r * p.c_out..(r + 1) * p.c_out]);
            }
        }
        let bias: Vec<f32> = parts.iter().flat_map(|p| p.epi.bias().unwrap_or_default().iter().copied()).collect();
        let shape = [first.k, first.k, first.c_in, c_out];
        let conv = Conv2d::new(name, &w, shape, first.stride, first.padding, &first.device)?.with_bias(&bias)?;
        Ok(Conv2d { direct_thin: first.direct_thin, ..conv.with_activation(first.epi.act().clone())? })
    }

    /// Whether the CPU path is the direct thin-input kernel.
    pub(crate) fn takes_direct(&self) -> bool {
        self.direct_thin && self.c_in <= 4 && self.c_out.is_multiple_of(32)
    }

    pub(crate) fn window(&self, x: &Tensor) -> Result<Window> {
        Window::of_input(&self.name, x, self.c_in, self.k, self.stride, self.padding)
    }

    /// NHWC in, NHWC out; the fast kernel on CPU, candle ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.window(x)?;
        if !use_kernels(x) {
            return self.forward_candle_res(x, None);
        }
        let x = x.contiguous()?;
        if self.takes_direct() {
            return Ok(x.apply_op1_no_bwd(&crate::fused::DirectConv(self))?);
        }
        Ok(x.apply_op1_no_bwd(self)?)
    }

    /// `act(epilogue(conv(x)) + residual)`: the residual block's add fused into the conv.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let win = self.window(x)?;
        let want = [win.n, win.ho, win.wo, self.c_out];
        if residual.dims() != want {
            return Err(Error::Input(format!("{}: residual {:?}, output is {want:?}", self.name, residual.dims())));
        }
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op2_no_bwd(&residual.contiguous()?, self)?)
        } else {
            self.forward_candle_res(x, Some(residual))
        }
    }

    /// The same layer with candle's own ops (explicit pad, `conv2d` on NCHW, broadcast epilogue).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        self.window(x)?;
        self.forward_candle_res(x, None)
    }

    fn forward_candle_res(&self, x: &Tensor, res: Option<&Tensor>) -> Result<Tensor> {
        let win = self.window(x)?;
        let y = nhwc_to_nchw(&pad2d(x, win.pads())?)?.conv2d(self.weight()?, 0, self.stride, 1, 1)?;
        self.epi.apply_candle(nchw_to_nhwc(&y)?, res)
    }

    fn weight(&self) -> Result<&Tensor> {
        if let Some(w) = self.weight.get() {
            return Ok(w);
        }
        let shape = (self.k, self.k, self.c_in, self.c_out);
        let w = Tensor::from_slice(&self.wmat, shape, &self.device)?.permute((3, 2, 0, 1))?.contiguous()?;
        Ok(self.weight.get_or_init(|| w))
    }

    /// The CPU kernel: GEMM rows from `rows`, chunked, epilogue (with `res`) on each chunk.
    pub(crate) fn run(&self, x: &[f32], rows: Rows, res: Option<&[f32]>) -> (CpuStorage, Shape) {
        let win = rows.window();
        let (k, co) = (rows.depth(self), self.c_out);
        let total = win.n * win.ho * win.wo;
        // Chunks of output pixels: an A block of ~1 MB (this machine's L2; 64K-512K floats
        // measured within noise, gemm blocks it for the cache itself), at least one chunk per
        // thread; small layers get exactly that (every chunk repacks the filter).
        let mut m = (CHUNK_FLOATS / k).clamp(16, 4096);
        if total.div_ceil(m) < threads() {
            m = total.div_ceil(threads()).max(1);
        }
        let mut out = uninit(total * co);
        for_each_chunk_uninit(&mut out, m * co, |i, dst| {
            let p0 = i * m;
            let rows_here = dst.len() / co;
            match rows {
                Rows::Input(_) => gemm_into(&x[p0 * k..(p0 + rows_here) * k], self, dst),
                Rows::Im2col(win) | Rows::Depthwise(win, _) => A_BLOCK.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    if buf.len() < rows_here * k {
                        buf.resize(rows_here * k, 0.0);
                    }
                    let a = &mut buf[..rows_here * k];
                    match rows {
                        Rows::Depthwise(_, dw) => depthwise_rows_best(x, dw, &win, p0, a),
                        _ => im2col_rows(x, &win, p0, a),
                    }
                    gemm_into(a, self, dst)
                }),
            }
            apply_rows_best(&self.epi, dst, co, res.map(|r| &r[p0 * co..(p0 + rows_here) * co]));
        });
        // SAFETY: every chunk was written by its gemm.
        let out = unsafe { assume_init(out) };
        (CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, co)))
    }

    fn rows_for(&self, l: &Layout) -> candle_core::Result<Rows<'static>> {
        let win = Window::new(l.shape().dims4()?, self.k, self.stride, self.padding)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(if self.k == 1 && self.stride == 1 && win.top + win.left == 0 && (win.ho, win.wo) == (win.h, win.w) {
            Rows::Input(win)
        } else {
            Rows::Im2col(win)
        })
    }
}

/// Output rows (pixels) per GEMM chunk: an A block of about this many floats (1 MB, this
/// machine's L2), kept in cache between its producer (depthwise / im2col) and the GEMM.
pub(crate) const CHUNK_FLOATS: usize = 262144;

thread_local! {
    /// Per-thread A block (im2col rows or depthwise output), reused (no page faults, no zeroing).
    pub(crate) static A_BLOCK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Where a convolution chunk's GEMM rows come from.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// 1x1 stride 1 without padding: the input pixels themselves.
    Input(Window),
    /// im2col rows of a k x k convolution.
    Im2col(Window),
    /// A depthwise convolution (+ its epilogue) of the input, feeding a 1x1 convolution.
    Depthwise(Window, &'a DepthwiseConv2d),
}

impl Rows<'_> {
    fn window(&self) -> Window {
        match *self {
            Rows::Input(w) | Rows::Im2col(w) | Rows::Depthwise(w, _) => w,
        }
    }

    /// Columns of a GEMM row.
    fn depth(&self, conv: &Conv2d) -> usize {
        match self {
            Rows::Im2col(w) => w.k * w.k * w.c,
            _ => conv.c_in,
        }
    }
}

/// `dst = a [m, k] x filter [k, c_out]` (single-threaded: callers split the work).
pub(crate) fn gemm_into(a: &[f32], conv: &Conv2d, dst: &mut [f32]) {
    let co = conv.c_out;
    let m = dst.len() / co;
    let k = a.len() / m.max(1);
    assert!(a.len() == m * k && conv.wmat.len() == k * co, "{}: gemm operands do not fit", conv.name);
    // SAFETY: row-major A [m, k], filter [k, co] and dst [m, co] of those sizes (checked);
    // dst is only written (read_dst = false).
    unsafe {
        gemm::gemm(
            m,
            co,
            k,
            dst.as_mut_ptr(),
            1,
            co as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            conv.wmat.as_ptr(),
            1,
            co as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The im2col rows of output pixels `p0..p0 + a.len() / (k*k*c)`, zeros in the padding.
fn im2col_rows(x: &[f32], win: &Window, p0: usize, a: &mut [f32]) {
    let (k, c, s) = (win.k, win.c, win.s);
    for (j, row) in a.chunks_exact_mut(k * k * c).enumerate() {
        let (b, oy, ox) = win.pixel(p0 + j);
        let img = &x[b * win.h * win.w * c..(b + 1) * win.h * win.w * c];
        for ky in 0..k {
            let drow = &mut row[ky * k * c..(ky + 1) * k * c];
            let iy = (oy * s + ky).wrapping_sub(win.top);
            if iy >= win.h {
                drow.fill(0.0);
                continue;
            }
            let ix0 = (ox * s).wrapping_sub(win.left);
            if ix0 < win.w && ix0 + k <= win.w {
                // the whole kernel row is inside: one contiguous copy
                let at = (iy * win.w + ix0) * c;
                drow.copy_from_slice(&img[at..at + k * c]);
                continue;
            }
            for kx in 0..k {
                let ix = (ox * s + kx).wrapping_sub(win.left);
                let d = &mut drow[kx * c..(kx + 1) * c];
                if ix < win.w {
                    d.copy_from_slice(&img[(iy * win.w + ix) * c..(iy * win.w + ix + 1) * c]);
                } else {
                    d.fill(0.0);
                }
            }
        }
    }
}

impl CustomOp1 for Conv2d {
    fn name(&self) -> &'static str {
        "facebench-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(self.run(cpu_f32("conv2d", s, l)?, self.rows_for(l)?, None))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "facebench-conv2d-residual"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(self.run(cpu_f32("conv2d", s, l)?, self.rows_for(l)?, Some(cpu_f32("conv2d residual", rs, rl)?)))
    }
}
