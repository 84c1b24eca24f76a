//! Layers shared by the ports, on NHWC f32 tensors (TF's own layout, so filters are used as
//! stored): explicit zero padding (TF `SAME` is asymmetric for stride 2 on even sizes, which
//! candle's symmetric `padding` cannot express), convolution and depthwise convolution with a
//! fused per-channel epilogue (bias, affine scale, ReLU/PReLU, residual add), pooling, and the
//! elementwise steps between them ([`ChannelOp`], [`add`]).
//!
//! Every layer has two paths computing the same function:
//! * on CPU, direct kernels (`CustomOp`s). Convolution is im2col + `gemm` over chunks of output
//!   pixels taken across the whole batch (NHWC makes a chunk one contiguous block of rows, so
//!   small late layers still feed the gemm full tiles), depthwise is a stencil vectorised over
//!   channels. Candle's grouped convolution runs one convolution per channel and its tiled conv
//!   re-lays the input out single-threaded; both are far slower here (bench example);
//! * elsewhere (CUDA), plain candle ops on NCHW views: [`pad2d`], `conv2d` (grouped for
//!   depthwise), broadcast arithmetic. `forward_candle` and [`with_candle_ops`] run that path
//!   on CPU too, so tests check one against the other.

use std::cell::{Cell, RefCell};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Zero padding of the two spatial dimensions, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pads {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pads {
    pub const NONE: Pads = Pads { top: 0, bottom: 0, left: 0, right: 0 };

    pub fn uniform(p: usize) -> Pads {
        Pads { top: p, bottom: p, left: p, right: p }
    }

    /// TF `SAME` padding of an `h x w` input for a `k x k` kernel with stride `s`.
    pub fn same(h: usize, w: usize, k: usize, s: usize) -> Pads {
        let (top, bottom) = same_padding(h, k, s);
        let (left, right) = same_padding(w, k, s);
        Pads { top, bottom, left, right }
    }
}

/// TF `SAME` padding (before, after) of one dimension: `out = ceil(n/s)`,
/// `total = max((out-1)*s + k - n, 0)`, `before = total/2`, the odd pixel goes after.
pub fn same_padding(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out.saturating_sub(1)) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// Zero-pads an NHWC tensor spatially.
pub fn pad2d(x: &Tensor, p: Pads) -> Result<Tensor> {
    let mut x = x.clone();
    if p.top + p.bottom > 0 {
        x = x.pad_with_zeros(1, p.top, p.bottom)?;
    }
    if p.left + p.right > 0 {
        x = x.pad_with_zeros(2, p.left, p.right)?;
    }
    Ok(x)
}

thread_local! {
    static CANDLE_ONLY: Cell<bool> = const { Cell::new(false) };
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the CPU kernels called on this thread working single-threaded: for callers
/// that already run one sub-batch per thread, where nested splitting only adds stealing and
/// cache thrash.
pub(crate) fn sequential<R>(f: impl FnOnce() -> R) -> R {
    let before = SEQUENTIAL.with(|c| c.replace(true));
    let r = f();
    SEQUENTIAL.with(|c| c.set(before));
    r
}

/// `f(i, chunk)` over `size`-element chunks of `out`, in parallel unless in [`sequential`].
fn for_each_chunk<F>(out: &mut [f32], size: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if SEQUENTIAL.with(|c| c.get()) {
        out.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.par_chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Runs `f` with every layer called on this thread using candle's own ops, as on CUDA, even on
/// CPU: to check that path (tests) and to measure what the CPU kernels gain (bench).
pub fn with_candle_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = CANDLE_ONLY.with(|c| c.replace(true));
    let r = f();
    CANDLE_ONLY.with(|c| c.set(before));
    r
}

/// Whether the CPU kernels run: CPU tensors, outside [`with_candle_ops`].
pub(crate) fn use_kernels(x: &Tensor) -> bool {
    x.device().is_cpu() && !CANDLE_ONLY.with(|c| c.get())
}

fn nhwc_to_nchw(x: &Tensor) -> Result<Tensor> {
    Ok(x.permute((0, 3, 1, 2))?)
}

fn nchw_to_nhwc(x: &Tensor) -> Result<Tensor> {
    Ok(x.permute((0, 2, 3, 1))?.contiguous()?)
}

/// Activation applied last in a layer's epilogue.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    /// `max(0,z) + alpha[c] * min(0,z)`, one slope per channel.
    PRelu(Vec<f32>),
}

/// `prelu(x) = max(0,x) + alpha*min(0,x)` over the last (channel) dim, with candle ops.
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let zero = x.zeros_like()?;
    Ok(x.maximum(&zero)?.add(&x.minimum(&zero)?.broadcast_mul(&alpha.flatten_all()?)?)?)
}

/// Per-channel epilogue `act((z + bias) * scale + shift [+ residual])`, in that order (as TF
/// runs the separate ops). With a residual the activation comes after the add.
#[derive(Debug, Clone)]
struct Epilogue {
    bias: Option<Vec<f32>>,
    affine: Option<(Vec<f32>, Vec<f32>)>,
    act: Activation,
    /// The same parameters as tensors on the layer's device, for the candle path:
    /// [bias, scale, shift, prelu alpha].
    tensors: [Option<Tensor>; 4],
}

impl Epilogue {
    /// Applies to `rows` of `c` channels each; `res` (same shape) is added before the activation.
    #[inline(always)]
    fn apply(&self, rows: &mut [f32], c: usize, res: Option<&[f32]>) {
        for (i, row) in rows.chunks_exact_mut(c).enumerate() {
            if let Some(b) = &self.bias {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
            if let Some((s, t)) = &self.affine {
                row.iter_mut().zip(s.iter().zip(t)).for_each(|(v, (s, t))| *v = *v * s + t);
            }
            if let Some(r) = res {
                row.iter_mut().zip(&r[i * c..(i + 1) * c]).for_each(|(v, r)| *v += r);
            }
            match &self.act {
                Activation::None => {}
                Activation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
                Activation::PRelu(a) => row.iter_mut().zip(a).for_each(|(v, a)| *v = v.max(0.0) + a * v.min(0.0)),
            }
        }
    }

    fn new() -> Self {
        Epilogue { bias: None, affine: None, act: Activation::None, tensors: [None, None, None, None] }
    }

    fn apply_candle(&self, mut y: Tensor, res: Option<&Tensor>) -> Result<Tensor> {
        let [bias, scale, shift, alpha] = &self.tensors;
        if let Some(b) = bias {
            y = y.broadcast_add(b)?;
        }
        if let (Some(s), Some(t)) = (scale, shift) {
            y = y.broadcast_mul(s)?.broadcast_add(t)?;
        }
        if let Some(r) = res {
            y = (y + r)?;
        }
        Ok(match (&self.act, alpha) {
            (Activation::Relu, _) => y.relu()?,
            (Activation::PRelu(_), Some(a)) => prelu(&y, a)?,
            _ => y,
        })
    }

    /// Checks every per-channel parameter has `c` values and uploads them to `device`.
    fn finish(&mut self, layer: &str, c: usize, device: &Device) -> Result<()> {
        self.check(layer, c)?;
        let t = |v: Option<&Vec<f32>>| v.map(|v| Tensor::from_slice(v, v.len(), device)).transpose();
        let alpha = match &self.act {
            Activation::PRelu(a) => Some(a),
            _ => None,
        };
        self.tensors = [
            t(self.bias.as_ref())?,
            t(self.affine.as_ref().map(|a| &a.0))?,
            t(self.affine.as_ref().map(|a| &a.1))?,
            t(alpha)?,
        ];
        Ok(())
    }

    fn check(&self, layer: &str, c: usize) -> Result<()> {
        let lens = [
            self.bias.as_ref().map(Vec::len),
            self.affine.as_ref().map(|a| a.0.len()),
            self.affine.as_ref().map(|a| a.1.len()),
            match &self.act {
                Activation::PRelu(a) => Some(a.len()),
                _ => None,
            },
        ];
        match lens.into_iter().flatten().find(|&l| l != c) {
            Some(l) => {
                Err(Error::Input(format!("{layer}: per-channel parameter of length {l}, layer has {c} channels")))
            }
            None => Ok(()),
        }
    }
}

/// Geometry shared by both layer kinds.
#[derive(Debug, Clone, Copy)]
struct Geom {
    kh: usize,
    kw: usize,
    stride: usize,
    pads: Pads,
}

impl Geom {
    fn out_hw(&self, h: usize, w: usize) -> std::result::Result<(usize, usize), String> {
        let ph = h + self.pads.top + self.pads.bottom;
        let pw = w + self.pads.left + self.pads.right;
        if ph < self.kh || pw < self.kw {
            return Err(format!("input {h}x{w} (padded {ph}x{pw}) smaller than kernel {}x{}", self.kh, self.kw));
        }
        Ok(((ph - self.kh) / self.stride + 1, (pw - self.kw) / self.stride + 1))
    }

    /// Outputs `o` in `lo..hi` whose input `o*s + k - before` lies inside `0..n`.
    #[inline]
    fn valid_range(out: usize, n: usize, s: usize, k: usize, before: usize) -> (usize, usize) {
        let lo = if k >= before { 0 } else { (before - k).div_ceil(s) };
        let hi = if n + before > k { ((n + before - k - 1) / s + 1).min(out) } else { 0 };
        (lo.min(hi), hi)
    }
}

fn check_nhwc(name: &str, x: &Tensor, c_in: usize, g: &Geom) -> Result<()> {
    let (_, h, w, c) =
        x.dims4().map_err(|_| Error::Input(format!("{name}: expected NHWC input, got {:?}", x.dims())))?;
    if c != c_in {
        return Err(Error::Input(format!("{name}: input has {c} channels, layer expects {c_in}")));
    }
    g.out_hw(h, w).map_err(|e| Error::Input(format!("{name}: {e}")))?;
    Ok(())
}

fn cpu_f32<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("{op}: expected f32 input"),
    };
    let (start, end) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op}: input not contiguous")))?;
    Ok(&data[start..end])
}

thread_local! {
    /// Per-thread im2col buffer, reused across calls (no page faults, no zeroing).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A convolution (groups = 1) with TF weights, explicit padding and a fused epilogue.
#[derive(Debug, Clone)]
pub struct Conv2d {
    name: String,
    c_in: usize,
    c_out: usize,
    geom: Geom,
    /// TF HWIO as stored: row `(ky, kx, c)` of `[kh*kw*c_in, c_out]`, the im2col row order.
    wmat: Vec<f32>,
    /// OIHW copy for candle's `conv2d`.
    weight: Tensor,
    epi: Epilogue,
}

impl Conv2d {
    /// `w` is a TF HWIO filter of `shape = [kh, kw, c_in, c_out]`.
    pub fn new(name: &str, w: &[f32], shape: [usize; 4], stride: usize, pads: Pads, device: &Device) -> Result<Self> {
        let [kh, kw, c_in, c_out] = shape;
        if w.len() != kh * kw * c_in * c_out || stride == 0 {
            return Err(Error::Input(format!(
                "{name}: {} weights for filter shape {shape:?}, stride {stride}",
                w.len()
            )));
        }
        let weight = Tensor::from_slice(w, (kh, kw, c_in, c_out), device)?.permute((3, 2, 0, 1))?.contiguous()?;
        Ok(Conv2d {
            name: name.to_string(),
            c_in,
            c_out,
            geom: Geom { kh, kw, stride, pads },
            wmat: w.to_vec(),
            weight,
            epi: Epilogue::new(),
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.bias = Some(bias.to_vec());
        self.epi.finish(&self.name, self.c_out, self.weight.device())?;
        Ok(self)
    }

    /// `y = y * scale + shift` per channel after the bias (dlib's affine / folded BatchNorm).
    pub fn with_affine(mut self, scale: &[f32], shift: &[f32]) -> Result<Self> {
        self.epi.affine = Some((scale.to_vec(), shift.to_vec()));
        self.epi.finish(&self.name, self.c_out, self.weight.device())?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.act = act;
        self.epi.finish(&self.name, self.c_out, self.weight.device())?;
        Ok(self)
    }

    pub fn out_channels(&self) -> usize {
        self.c_out
    }

    /// NHWC in, NHWC out; the fast kernel on CPU, candle ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_nhwc(&self.name, x, self.c_in, &self.geom)?;
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
        } else {
            self.forward_candle_res(x, None)
        }
    }

    /// `act(epilogue(conv(x)) + residual)`: the residual block's add fused into the conv.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        check_nhwc(&self.name, x, self.c_in, &self.geom)?;
        let (n, h, w, _) = x.dims4()?;
        let (oh, ow) = self.geom.out_hw(h, w).map_err(Error::Input)?;
        if residual.dims() != [n, oh, ow, self.c_out] {
            return Err(Error::Input(format!(
                "{}: residual {:?}, output is {:?}",
                self.name,
                residual.dims(),
                [n, oh, ow, self.c_out]
            )));
        }
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op2_no_bwd(&residual.contiguous()?, self)?)
        } else {
            self.forward_candle_res(x, Some(residual))
        }
    }

    /// The same layer with candle's own ops (explicit pad, `conv2d` on NCHW, broadcast epilogue).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        check_nhwc(&self.name, x, self.c_in, &self.geom)?;
        self.forward_candle_res(x, None)
    }

    fn forward_candle_res(&self, x: &Tensor, res: Option<&Tensor>) -> Result<Tensor> {
        let y = nhwc_to_nchw(&pad2d(x, self.geom.pads)?)?.conv2d(&self.weight, 0, self.geom.stride, 1, 1)?;
        self.epi.apply_candle(nchw_to_nhwc(&y)?, res)
    }

    /// im2col of output pixels `p0..p0+rows` (flat over the batch) into `col [rows, K]`.
    #[allow(clippy::too_many_arguments)]
    fn im2col(&self, src: &[f32], h: usize, w: usize, oh: usize, ow: usize, p0: usize, rows: usize, col: &mut [f32]) {
        let g = self.geom;
        let (c, s) = (self.c_in, g.stride);
        let k = g.kh * g.kw * c;
        for (r, dst) in col[..rows * k].chunks_exact_mut(k).enumerate() {
            let p = p0 + r;
            let (b, oy, ox) = (p / (oh * ow), (p / ow) % oh, p % ow);
            let img = &src[b * h * w * c..(b + 1) * h * w * c];
            for ky in 0..g.kh {
                let iy = (oy * s + ky) as isize - g.pads.top as isize;
                let drow = &mut dst[ky * g.kw * c..(ky + 1) * g.kw * c];
                if iy < 0 || iy >= h as isize {
                    drow.fill(0.0);
                    continue;
                }
                let ix0 = (ox * s) as isize - g.pads.left as isize;
                if ix0 >= 0 && ix0 as usize + g.kw <= w {
                    // the whole kernel row is inside: one contiguous copy
                    let at = (iy as usize * w + ix0 as usize) * c;
                    drow.copy_from_slice(&img[at..at + g.kw * c]);
                } else {
                    for kx in 0..g.kw {
                        let ix = ix0 + kx as isize;
                        let d = &mut drow[kx * c..(kx + 1) * c];
                        if ix < 0 || ix >= w as isize {
                            d.fill(0.0);
                        } else {
                            let at = (iy as usize * w + ix as usize) * c;
                            d.copy_from_slice(&img[at..at + c]);
                        }
                    }
                }
            }
        }
    }

    fn run(
        &self,
        src: &[f32],
        res: Option<&[f32]>,
        n: usize,
        h: usize,
        w: usize,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geom;
        let (oh, ow) = g.out_hw(h, w).map_err(candle_core::Error::Msg)?;
        let (k, co) = (g.kh * g.kw * self.c_in, self.c_out);
        let total = n * oh * ow;
        let mut out = vec![0f32; total * co];
        let direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pads == Pads::NONE;
        let threads = rayon::current_num_threads();
        // Chunks of output pixels: an im2col block of ~1 MB (gemm blocks it for the cache
        // itself; larger chunks re-read the weights less often, which dominates the deep layers),
        // and at least one chunk per thread.
        let mut rows = (262144 / k).clamp(16, 8192);
        if total.div_ceil(rows) < threads {
            rows = total.div_ceil(threads).max(16);
        }
        // SAFETY (gemm): row-major buffers of the given sizes and strides, no aliasing.
        let gemm_rows = |a: &[f32], dst: &mut [f32], m: usize| unsafe {
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
                self.wmat.as_ptr(),
                1,
                co as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        for_each_chunk(&mut out, rows * co, |i, dst| {
            let p0 = i * rows;
            let m = dst.len() / co;
            if direct {
                gemm_rows(&src[p0 * k..(p0 + m) * k], dst, m);
            } else {
                COL.with(|col| {
                    let mut col = col.borrow_mut();
                    if col.len() < m * k {
                        col.resize(m * k, 0.0);
                    }
                    self.im2col(src, h, w, oh, ow, p0, m, &mut col);
                    gemm_rows(&col[..m * k], dst, m);
                });
            }
            self.epi.apply(dst, co, res.map(|r| &r[p0 * co..(p0 + m) * co]));
        });
        Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, co))))
    }
}

impl CustomOp1 for Conv2d {
    fn name(&self) -> &'static str {
        "facebench-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, _) = l.shape().dims4()?;
        self.run(cpu_f32("conv2d", s, l)?, None, n, h, w)
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
        let (n, h, w, _) = l.shape().dims4()?;
        self.run(cpu_f32("conv2d", s, l)?, Some(cpu_f32("conv2d residual", rs, rl)?), n, h, w)
    }
}

/// Channels per accumulator in the depthwise kernel (one AVX-512 register).
const LANES: usize = 16;

/// A depthwise convolution (channel multiplier 1) with TF weights, explicit padding and a fused
/// epilogue.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    name: String,
    c: usize,
    geom: Geom,
    /// TF `[kh, kw, c]` as stored: one channel vector per tap.
    wmat: Vec<f32>,
    /// `[c, 1, kh, kw]` for candle's grouped `conv2d`.
    weight: Tensor,
    epi: Epilogue,
}

impl DepthwiseConv2d {
    /// `w` is a TF depthwise filter of `shape = [kh, kw, c, 1]`.
    pub fn new(name: &str, w: &[f32], shape: [usize; 4], stride: usize, pads: Pads, device: &Device) -> Result<Self> {
        let [kh, kw, c, mult] = shape;
        if mult != 1 || w.len() != kh * kw * c || stride == 0 {
            return Err(Error::Input(format!(
                "{name}: {} weights for depthwise filter shape {shape:?}, stride {stride}",
                w.len()
            )));
        }
        let weight = Tensor::from_slice(w, (kh, kw, c, 1), device)?.permute((2, 3, 0, 1))?.contiguous()?;
        Ok(DepthwiseConv2d {
            name: name.to_string(),
            c,
            geom: Geom { kh, kw, stride, pads },
            wmat: w.to_vec(),
            weight,
            epi: Epilogue::new(),
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.bias = Some(bias.to_vec());
        self.epi.finish(&self.name, self.c, self.weight.device())?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.act = act;
        self.epi.finish(&self.name, self.c, self.weight.device())?;
        Ok(self)
    }

    /// NHWC in, NHWC out; the direct kernel on CPU, candle's grouped conv elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_nhwc(&self.name, x, self.c, &self.geom)?;
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
        } else {
            self.forward_candle(x)
        }
    }

    /// The same layer with candle's grouped `conv2d` (one convolution per channel on CPU).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        check_nhwc(&self.name, x, self.c, &self.geom)?;
        let y = nhwc_to_nchw(&pad2d(x, self.geom.pads)?)?.conv2d(&self.weight, 0, self.geom.stride, 1, self.c)?;
        self.epi.apply_candle(nchw_to_nhwc(&y)?, None)
    }

    /// One output row `[ow, c]` of image `img`: taps summed in (ky, kx) order, then the epilogue.
    fn run_row(&self, img: &[f32], h: usize, w: usize, oy: usize, ow: usize, out: &mut [f32]) {
        let g = self.geom;
        let (c, s) = (self.c, g.stride);
        if c % LANES == 0 {
            // Same sums, but each 16-channel accumulator stays in registers across all taps.
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    unsafe { self.row_lanes_avx512(img, h, w, oy, ow, out) };
                    return;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    unsafe { self.row_lanes_avx2(img, h, w, oy, ow, out) };
                    return;
                }
            }
            self.row_lanes(img, h, w, oy, ow, out);
            return;
        }
        out.fill(0.0);
        for ky in 0..g.kh {
            let iy = (oy * s + ky) as isize - g.pads.top as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let srow = &img[iy as usize * w * c..(iy as usize + 1) * w * c];
            for kx in 0..g.kw {
                let wv = &self.wmat[(ky * g.kw + kx) * c..(ky * g.kw + kx + 1) * c];
                let (lo, hi) = Geom::valid_range(ow, w, s, kx, g.pads.left);
                for ox in lo..hi {
                    let ix = ox * s + kx - g.pads.left;
                    let d = &mut out[ox * c..(ox + 1) * c];
                    for ((d, &x), &wv) in d.iter_mut().zip(&srow[ix * c..(ix + 1) * c]).zip(wv) {
                        *d += wv * x;
                    }
                }
            }
        }
        self.epi.apply(out, c, None);
    }
}

impl DepthwiseConv2d {
    /// [`DepthwiseConv2d::run_row`] for `c % 16 == 0`: per output pixel, blocks of `NB` x 16
    /// channels accumulate in registers across all taps (sum order (ky, kx) unchanged; `NB`
    /// independent chains hide the add latency), then the epilogue.
    #[inline(always)]
    fn row_lanes(&self, img: &[f32], h: usize, w: usize, oy: usize, ow: usize, out: &mut [f32]) {
        match self.c / LANES {
            8 => self.row_blocks::<8>(img, h, w, oy, ow, out),
            4 => self.row_blocks::<4>(img, h, w, oy, ow, out),
            2 => self.row_blocks::<2>(img, h, w, oy, ow, out),
            _ => self.row_blocks::<1>(img, h, w, oy, ow, out),
        }
        self.epi.apply(out, self.c, None);
    }

    #[inline(always)]
    fn row_blocks<const NB: usize>(&self, img: &[f32], h: usize, w: usize, oy: usize, ow: usize, out: &mut [f32]) {
        let g = self.geom;
        let (c, s) = (self.c, g.stride);
        for ox in 0..ow {
            for cb in (0..c).step_by(LANES * NB) {
                let mut acc = [[0f32; LANES]; NB];
                for ky in 0..g.kh {
                    let iy = (oy * s + ky) as isize - g.pads.top as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = (ox * s + kx) as isize - g.pads.left as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let at = (iy as usize * w + ix as usize) * c + cb;
                        let wt = (ky * g.kw + kx) * c + cb;
                        for (b, a) in acc.iter_mut().enumerate() {
                            let x: &[f32; LANES] = img[at + b * LANES..at + (b + 1) * LANES].try_into().unwrap();
                            let wv: &[f32; LANES] = self.wmat[wt + b * LANES..wt + (b + 1) * LANES].try_into().unwrap();
                            for j in 0..LANES {
                                a[j] += wv[j] * x[j];
                            }
                        }
                    }
                }
                for (b, a) in acc.iter().enumerate() {
                    let at = ox * c + cb + b * LANES;
                    out[at..at + LANES].copy_from_slice(a);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn row_lanes_avx512(&self, img: &[f32], h: usize, w: usize, oy: usize, ow: usize, out: &mut [f32]) {
        self.row_lanes(img, h, w, oy, ow, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn row_lanes_avx2(&self, img: &[f32], h: usize, w: usize, oy: usize, ow: usize, out: &mut [f32]) {
        self.row_lanes(img, h, w, oy, ow, out)
    }
}

impl CustomOp1 for DepthwiseConv2d {
    fn name(&self) -> &'static str {
        "facebench-depthwise-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = cpu_f32("depthwise_conv2d", s, l)?;
        let (n, h, w, c) = l.shape().dims4()?;
        let (oh, ow) = self.geom.out_hw(h, w).map_err(candle_core::Error::Msg)?;
        let mut out = vec![0f32; n * oh * ow * c];
        for_each_chunk(&mut out, ow * c, |r, row| {
            let (b, oy) = (r / oh, r % oh);
            self.run_row(&src[b * h * w * c..(b + 1) * h * w * c], h, w, oy, ow, row);
        });
        Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c))))
    }
}

/// Pooling over `k x k` windows with stride `s`, VALID (the last partial window is dropped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pool {
    Max {
        k: usize,
        s: usize,
    },
    /// Mean of the window (sum in row-major order, then divided by `k*k`, as TF does).
    Avg {
        k: usize,
        s: usize,
    },
}

impl Pool {
    fn ks(self) -> (usize, usize) {
        match self {
            Pool::Max { k, s } | Pool::Avg { k, s } => (k, s),
        }
    }

    /// NHWC in, NHWC out.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        let (_, h, w, _) =
            x.dims4().map_err(|_| Error::Input(format!("pool: expected NHWC input, got {:?}", x.dims())))?;
        let (k, s) = self.ks();
        if h < k || w < k || s == 0 {
            return Err(Error::Input(format!("pool {k}x{k}/{s}: input {h}x{w} too small")));
        }
        if use_kernels(x) {
            Ok(x.contiguous()?.apply_op1_no_bwd(&self)?)
        } else {
            self.forward_candle(x)
        }
    }

    /// The same with candle's NCHW pooling ops.
    pub fn forward_candle(self, x: &Tensor) -> Result<Tensor> {
        let (k, s) = self.ks();
        let x = nhwc_to_nchw(x)?;
        let y = match self {
            Pool::Max { .. } => x.max_pool2d_with_stride(k, s)?,
            Pool::Avg { .. } => x.avg_pool2d_with_stride(k, s)?,
        };
        nchw_to_nhwc(&y)
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "facebench-pool"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = cpu_f32("pool", st, l)?;
        let (n, h, w, c) = l.shape().dims4()?;
        let (k, s) = self.ks();
        let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
        let mut out = vec![0f32; n * oh * ow * c];
        let kk = (k * k) as f32;
        for_each_chunk(&mut out, ow * c, |r, row| {
            let (b, oy) = (r / oh, r % oh);
            for ox in 0..ow {
                let d = &mut row[ox * c..(ox + 1) * c];
                let first = ((b * h + oy * s) * w + ox * s) * c;
                d.copy_from_slice(&src[first..first + c]);
                for ky in 0..k {
                    for kx in 0..k {
                        if ky + kx == 0 {
                            continue;
                        }
                        let at = ((b * h + oy * s + ky) * w + ox * s + kx) * c;
                        let v = &src[at..at + c];
                        match self {
                            Pool::Max { .. } => d.iter_mut().zip(v).for_each(|(d, v)| *d = d.max(*v)),
                            Pool::Avg { .. } => d.iter_mut().zip(v).for_each(|(d, v)| *d += v),
                        }
                    }
                }
                if let Pool::Avg { .. } = self {
                    d.iter_mut().for_each(|d| *d /= kk);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c))))
    }
}

/// Per-channel arithmetic over the last (channel) dim of a tensor, each in TF's op order. A
/// parameter vector of length 1 applies to every channel. The CPU kernel avoids candle's
/// elementwise ops, which serialise concurrent callers on one spinning thread pool.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelOp {
    /// `(x - a[c]) / d`
    SubDiv(Vec<f32>, f32),
    /// `(x - a[c]) * m`
    SubMul(Vec<f32>, f32),
    /// `x * m[c] + a[c]`
    MulAdd(Vec<f32>, Vec<f32>),
}

impl ChannelOp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = *x.dims().last().ok_or_else(|| Error::Input("channel op on a scalar".into()))?;
        let ok = |v: &Vec<f32>| v.len() == 1 || v.len() == c;
        let fits = match self {
            ChannelOp::SubDiv(a, _) | ChannelOp::SubMul(a, _) => ok(a),
            ChannelOp::MulAdd(m, a) => ok(m) && ok(a),
        };
        if !fits {
            return Err(Error::Input(format!("channel op {self:?} does not fit {c} channels")));
        }
        if use_kernels(x) {
            return Ok(x.contiguous()?.apply_op1_no_bwd(self)?);
        }
        let dev = x.device();
        let t = |v: &[f32]| Tensor::from_slice(v, v.len(), dev);
        Ok(match self {
            ChannelOp::SubDiv(a, d) => x.broadcast_sub(&t(a)?)?.broadcast_div(&t(&[*d])?)?,
            ChannelOp::SubMul(a, m) => x.broadcast_sub(&t(a)?)?.broadcast_mul(&t(&[*m])?)?,
            ChannelOp::MulAdd(m, a) => x.broadcast_mul(&t(m)?)?.broadcast_add(&t(a)?)?,
        })
    }
}

impl CustomOp1 for ChannelOp {
    fn name(&self) -> &'static str {
        "facebench-channel-op"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = cpu_f32("channel op", st, l)?;
        let c = *l.dims().last().unwrap_or(&1);
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let mut out = src.to_vec();
        for_each_chunk(&mut out, c * 256, |_, rows| {
            for row in rows.chunks_exact_mut(c) {
                for (i, v) in row.iter_mut().enumerate() {
                    *v = match self {
                        ChannelOp::SubDiv(a, d) => (*v - at(a, i)) / d,
                        ChannelOp::SubMul(a, m) => (*v - at(a, i)) * m,
                        ChannelOp::MulAdd(m, a) => *v * at(m, i) + at(a, i),
                    };
                }
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `a + b` (then ReLU if `relu`) for two tensors of one shape; like [`ChannelOp`], a CPU kernel
/// that stays off candle's shared elementwise pool.
pub fn add(a: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    if a.dims() != b.dims() {
        return Err(Error::Input(format!("add: shapes {:?} and {:?} differ", a.dims(), b.dims())));
    }
    if use_kernels(a) {
        return Ok(a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &AddOp { relu })?);
    }
    let y = (a + b)?;
    Ok(if relu { y.relu()? } else { y })
}

struct AddOp {
    relu: bool,
}

impl CustomOp2 for AddOp {
    fn name(&self) -> &'static str {
        "facebench-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (cpu_f32("add", s1, l1)?, cpu_f32("add", s2, l2)?);
        let mut out = a.to_vec();
        for_each_chunk(&mut out, 16384, |i, o| {
            for (o, b) in o.iter_mut().zip(&b[i * 16384..]) {
                *o += b;
                if self.relu {
                    *o = o.max(0.0);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn same_padding_matches_tf() {
        // k3 s2 on even n: 0 before, 1 after; on odd n: 1, 1
        assert_eq!(same_padding(112, 3, 2), (0, 1));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(56, 3, 1), (1, 1));
        assert_eq!(same_padding(8, 1, 1), (0, 0));
        assert_eq!(same_padding(4, 7, 1), (3, 3));
        assert_eq!(same_padding(5, 2, 2), (0, 1));
        assert_eq!(Pads::same(112, 7, 3, 2), Pads { top: 0, bottom: 1, left: 1, right: 1 });
    }

    #[test]
    fn pad2d_is_asymmetric_zero_padding() {
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.], (1, 2, 2, 1), &Device::Cpu).unwrap();
        let y = pad2d(&x, Pads { top: 0, bottom: 1, left: 2, right: 0 }).unwrap();
        assert_eq!(y.dims(), &[1, 3, 4, 1]);
        assert_eq!(flat(&y), vec![0., 0., 1., 2., 0., 0., 3., 4., 0., 0., 0., 0.]);
    }

    #[test]
    fn conv_kernel_matches_candle_conv2d() {
        let dev = Device::Cpu;
        // (n, c_in, c_out, h, w, k, stride, pads): odd/even sizes, asymmetric SAME, VALID, 1x1
        let cases = [
            (2, 3, 5, 9, 8, 3, 2, Pads::same(9, 8, 3, 2)),
            (1, 4, 6, 8, 8, 3, 2, Pads::NONE),
            (3, 2, 4, 7, 6, 3, 1, Pads::uniform(1)),
            (2, 3, 2, 12, 11, 7, 2, Pads::NONE),
            (4, 8, 3, 5, 5, 1, 1, Pads::NONE),
            (1, 2, 2, 4, 4, 3, 1, Pads { top: 2, bottom: 0, left: 0, right: 3 }),
            (5, 16, 40, 6, 6, 3, 1, Pads::uniform(1)),
        ];
        for (i, &(n, ci, co, h, w, k, s, p)) in cases.iter().enumerate() {
            let i = i as u32;
            let conv = Conv2d::new("t", &pseudo(k * k * ci * co, i), [k, k, ci, co], s, p, &dev)
                .unwrap()
                .with_bias(&pseudo(co, 10 + i))
                .unwrap()
                .with_affine(&pseudo(co, 20 + i), &pseudo(co, 30 + i))
                .unwrap()
                .with_activation(Activation::PRelu(pseudo(co, 40 + i)))
                .unwrap();
            let x = Tensor::from_vec(pseudo(n * ci * h * w, 50 + i), (n, h, w, ci), &dev).unwrap();
            let a = conv.forward(&x).unwrap();
            let b = conv.forward_candle(&x).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "case {i}: {}", max_diff(&a, &b));
            // fused residual = candle conv, then add, then activation
            let r = Tensor::from_vec(pseudo(a.elem_count(), 60 + i), a.dims(), &dev).unwrap();
            let fused = conv.forward_residual(&x, &r).unwrap();
            let plain = conv.clone().with_activation(Activation::None).unwrap().forward_candle(&x).unwrap();
            let z = (plain + &r).unwrap();
            let alpha = Tensor::from_vec(pseudo(co, 40 + i), co, &dev).unwrap();
            assert!(max_diff(&fused, &prelu(&z, &alpha).unwrap()) < 1e-5, "residual case {i}");
        }
    }

    #[test]
    fn depthwise_kernel_matches_candle_grouped_conv() {
        let dev = Device::Cpu;
        let cases = [
            (2, 5, 8, 8, 3, 2, Pads::uniform(1)),
            (3, 4, 7, 9, 3, 1, Pads::uniform(1)),
            // multiples of 16 channels take the register-accumulator path
            (2, 32, 8, 8, 3, 2, Pads::uniform(1)),
            (1, 48, 7, 6, 3, 1, Pads { top: 0, bottom: 2, left: 1, right: 0 }),
            (1, 6, 8, 8, 3, 2, Pads::same(8, 8, 3, 2)),
            (2, 3, 7, 7, 7, 1, Pads::NONE),
            (1, 2, 5, 6, 3, 2, Pads { top: 0, bottom: 2, left: 3, right: 0 }),
        ];
        for (i, &(n, c, h, w, k, s, p)) in cases.iter().enumerate() {
            let i = i as u32;
            let dw = DepthwiseConv2d::new("t", &pseudo(k * k * c, i), [k, k, c, 1], s, p, &dev)
                .unwrap()
                .with_bias(&pseudo(c, 7 + i))
                .unwrap()
                .with_activation(if i.is_multiple_of(2) { Activation::PRelu(pseudo(c, 9)) } else { Activation::Relu })
                .unwrap();
            let x = Tensor::from_vec(pseudo(n * c * h * w, 3 + i), (n, h, w, c), &dev).unwrap();
            let a = dw.forward(&x).unwrap();
            let b = dw.forward_candle(&x).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "case {i}: {}", max_diff(&a, &b));
        }
    }

    #[test]
    fn pools_match_candle() {
        let dev = Device::Cpu;
        for (n, h, w, c) in [(2, 7, 7, 3), (1, 8, 5, 4), (3, 35, 35, 2)] {
            let x = Tensor::from_vec(pseudo(n * h * w * c, h as u32), (n, h, w, c), &dev).unwrap();
            for p in [Pool::Max { k: 3, s: 2 }, Pool::Avg { k: 2, s: 2 }] {
                let (a, b) = (p.forward(&x).unwrap(), p.forward_candle(&x).unwrap());
                assert!(max_diff(&a, &b) < 1e-6, "{p:?} {h}x{w}");
            }
        }
        // hand-computed: 2x2 avg and 3x3 max of one 3x3 plane
        let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 7., 8., 9.], (1, 3, 3, 1), &dev).unwrap();
        assert_eq!(flat(&Pool::Avg { k: 2, s: 2 }.forward(&x).unwrap()), vec![3.0]);
        assert_eq!(flat(&Pool::Max { k: 3, s: 2 }.forward(&x).unwrap()), vec![9.0]);
    }

    #[test]
    fn channel_ops_and_add_match_candle() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(pseudo(2 * 5 * 4 * 3, 1), (2, 5, 4, 3), &dev).unwrap();
        let ops = [
            ChannelOp::SubDiv(vec![0.5, -0.25, 2.0], 255.0),
            ChannelOp::SubMul(vec![127.5], 0.0078125),
            ChannelOp::MulAdd(pseudo(3, 2), pseudo(3, 3)),
        ];
        for op in ops {
            let a = op.forward(&x).unwrap();
            let b = with_candle_ops(|| op.forward(&x)).unwrap();
            assert_eq!(flat(&a), flat(&b), "{op:?}");
        }
        assert!(ChannelOp::SubMul(vec![1.0, 2.0], 1.0).forward(&x).is_err());
        let y = Tensor::from_vec(pseudo(x.elem_count(), 4), x.dims(), &dev).unwrap();
        for relu in [false, true] {
            let a = add(&x, &y, relu).unwrap();
            let b = with_candle_ops(|| add(&x, &y, relu)).unwrap();
            assert_eq!(flat(&a), flat(&b));
        }
        assert_eq!(flat(&add(&x, &y, true).unwrap()).iter().filter(|v| **v < 0.0).count(), 0);
        assert!(add(&x, &y.narrow(0, 0, 1).unwrap(), false).is_err());
    }

    #[test]
    fn conv_matches_hand_computed_values() {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, TF SAME pads (0 before, 1 after).
        let dev = Device::Cpu;
        let conv = Conv2d::new("t", &[1., 1., 1., 1.], [2, 2, 1, 1], 1, Pads::same(3, 3, 2, 1), &dev).unwrap();
        let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 7., 8., 9.], (1, 3, 3, 1), &dev).unwrap();
        assert_eq!(flat(&conv.forward(&x).unwrap()), vec![12., 16., 9., 24., 28., 15., 15., 17., 9.]);
        let prelu = DepthwiseConv2d::new("t", &[1.0], [1, 1, 1, 1], 1, Pads::NONE, &dev)
            .unwrap()
            .with_activation(Activation::PRelu(vec![0.25]))
            .unwrap();
        let x = Tensor::from_slice(&[-4f32, 2.], (1, 1, 2, 1), &dev).unwrap();
        assert_eq!(flat(&prelu.forward(&x).unwrap()), vec![-1., 2.]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        assert!(Conv2d::new("c", &[0.0; 5], [1, 1, 2, 3], 1, Pads::NONE, &dev).is_err());
        let conv = Conv2d::new("c", &[0.0; 6], [1, 1, 2, 3], 1, Pads::NONE, &dev).unwrap();
        assert!(conv.clone().with_bias(&[0.0; 2]).is_err());
        let e = conv.forward(&Tensor::zeros((1, 4, 4, 3), DType::F32, &dev).unwrap()).unwrap_err();
        assert!(e.to_string().contains("3 channels"), "{e}");
        let r = Tensor::zeros((1, 4, 4, 2), DType::F32, &dev).unwrap();
        assert!(conv.forward_residual(&Tensor::zeros((1, 4, 4, 2), DType::F32, &dev).unwrap(), &r).is_err());
        let k3 = Conv2d::new("k3", &[0.0; 9], [3, 3, 1, 1], 1, Pads::NONE, &dev).unwrap();
        assert!(k3.forward(&Tensor::zeros((1, 2, 2, 1), DType::F32, &dev).unwrap()).is_err());
        assert!(Pool::Max { k: 3, s: 2 }.forward(&Tensor::zeros((1, 2, 2, 1), DType::F32, &dev).unwrap()).is_err());
    }
}
