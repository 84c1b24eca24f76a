//! NHWC layers for the two face-api networks, on candle tensors.
//!
//! Everything stays NHWC (TF's layout) so that a 1x1 convolution is one `[N*H*W, Cin] x [Cin,
//! Cout]` matmul and a k x k convolution is an im2col followed by one matmul, both on candle's
//! GEMM. On the CPU, depthwise convolution, im2col and the bias+activation epilogue are custom
//! kernels (rayon, vectorisable over channels): candle's grouped conv2d runs one convolution per
//! channel, which is far too slow for 1024-channel depthwise layers. On other devices the same
//! layers are built from plain candle ops (shifted windows), so the networks run anywhere.
//!
//! Padding is TF `SAME`: `out = ceil(n/s)`, `total = max((out-1)*s + k - n, 0)`, `before =
//! total/2` (floor); for k3 s2 on an even size that is 0 before and 1 after.

use candle_core::{bail, CpuStorage, CustomOp1, Device, InplaceOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[cfg(test)]
thread_local! {
    /// Tests set this to run the device-independent (CUDA) path on the CPU.
    pub(crate) static FORCE_GENERIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True when the CPU kernels may be used for a tensor on `device`.
fn use_cpu_kernels(device: &Device) -> bool {
    #[cfg(test)]
    if FORCE_GENERIC.with(|f| f.get()) {
        return false;
    }
    device.is_cpu()
}

/// TF `SAME` geometry of one axis: (output size, padding before).
pub(crate) fn same_pad(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (out, total / 2)
}

/// Activation applied after a layer's per-channel affine epilogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act {
    None,
    /// `clipByValue(x, 0, 6)`, MobileNet's activation.
    Relu6,
}

impl Act {
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    fn apply_tensor(self, t: Tensor) -> Result<Tensor> {
        match self {
            Act::None => Ok(t),
            Act::Relu6 => t.clamp(0f32, 6f32),
        }
    }
}

fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: expected an f32 tensor"),
    };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// A per-channel epilogue `act(x * scale + shift)` (scale absent = 1).
#[derive(Debug, Clone)]
pub(crate) struct Epilogue {
    scale: Option<Vec<f32>>,
    shift: Vec<f32>,
    act: Act,
    scale_t: Option<Tensor>,
    shift_t: Tensor,
}

impl Epilogue {
    pub(crate) fn new(scale: Option<Vec<f32>>, shift: Vec<f32>, act: Act, device: &Device) -> Result<Self> {
        let scale_t = match &scale {
            Some(s) => Some(Tensor::from_slice(s, s.len(), device)?),
            None => None,
        };
        let shift_t = Tensor::from_slice(&shift, shift.len(), device)?;
        Ok(Epilogue { scale, shift, act, scale_t, shift_t })
    }

    pub(crate) fn channels(&self) -> usize {
        self.shift.len()
    }

    #[inline(always)]
    fn apply_row(&self, row: &mut [f32]) {
        match &self.scale {
            Some(sc) => {
                for ((v, &a), &b) in row.iter_mut().zip(sc).zip(&self.shift) {
                    *v = self.act.apply(*v * a + b);
                }
            }
            None => {
                for (v, &b) in row.iter_mut().zip(&self.shift) {
                    *v = self.act.apply(*v + b);
                }
            }
        }
    }

    #[inline(always)]
    fn apply_block(&self, block: &mut [f32]) {
        for row in block.chunks_exact_mut(self.channels()) {
            self.apply_row(row);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_block_avx2(&self, block: &mut [f32]) {
        self.apply_block(block)
    }

    /// Applies the epilogue to a tensor whose last dimension is the channel axis. On the CPU the
    /// tensor is updated in place (it must be a fresh, contiguous layer output).
    pub(crate) fn apply(&self, t: Tensor) -> Result<Tensor> {
        if use_cpu_kernels(t.device()) && t.is_contiguous() {
            t.inplace_op1(self)?;
            return Ok(t);
        }
        self.apply_generic(t)
    }

    fn apply_generic(&self, t: Tensor) -> Result<Tensor> {
        let t = match &self.scale_t {
            Some(s) => t.broadcast_mul(s)?,
            None => t,
        };
        self.act.apply_tensor(t.broadcast_add(&self.shift_t)?)
    }
}

impl InplaceOp1 for Epilogue {
    fn name(&self) -> &'static str {
        "facebench-epilogue"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let c = self.channels();
        let (a, b) = match layout.contiguous_offsets() {
            Some(o) => o,
            None => bail!("epilogue: expected a contiguous tensor"),
        };
        if layout.dims().last() != Some(&c) {
            bail!("epilogue: last dimension {:?} is not the {c} channels", layout.dims());
        }
        let data = match storage {
            CpuStorage::F32(v) => &mut v[a..b],
            _ => bail!("epilogue: expected an f32 tensor"),
        };
        let avx2 = has_avx2_fma();
        data.par_chunks_mut(c * 64).for_each(|block| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { self.apply_block_avx2(block) };
                return;
            }
            let _ = avx2;
            self.apply_block(block);
        });
        Ok(())
    }
}

/// A window of `k x k` taps with stride `s` and TF SAME padding over an NHWC input.
#[derive(Debug, Clone, Copy)]
struct Window {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    s: usize,
    ho: usize,
    wo: usize,
    top: usize,
    left: usize,
}

impl Window {
    fn new(dims: (usize, usize, usize, usize), k: usize, s: usize) -> Self {
        let (n, h, w, c) = dims;
        let (ho, top) = same_pad(h, k, s);
        let (wo, left) = same_pad(w, k, s);
        Window { n, h, w, c, k, s, ho, wo, top, left }
    }

    /// Input pixel offset (in pixels, not floats) of tap (ky, kx) for output (b, oy, ox), or
    /// None when the tap falls in the zero padding.
    #[inline]
    fn tap(&self, b: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * self.s + ky).checked_sub(self.top)?;
        let ix = (ox * self.s + kx).checked_sub(self.left)?;
        (iy < self.h && ix < self.w).then(|| (b * self.h + iy) * self.w + ix)
    }

    /// Generic-device version of one tap: the `[n, ho, wo, c]` slab of the padded input seen by
    /// tap (ky, kx), built from pads, narrows and reshapes only.
    fn tap_tensor(&self, padded: &Tensor, ky: usize, kx: usize) -> Result<Tensor> {
        let s = self.s;
        let rows = padded.narrow(1, ky, s * self.ho)?;
        let rows = if s == 1 {
            rows
        } else {
            let wp = rows.dim(2)?;
            rows.reshape((self.n, self.ho, s, wp, self.c))?.narrow(2, 0, 1)?.squeeze(2)?
        };
        let cols = rows.narrow(2, kx, s * self.wo)?;
        if s == 1 {
            Ok(cols)
        } else {
            cols.reshape((self.n, self.ho, self.wo, s, self.c))?.narrow(3, 0, 1)?.squeeze(3)
        }
    }

    /// The input zero-padded so that every tap's strided slab lies inside it.
    fn pad(&self, x: &Tensor) -> Result<Tensor> {
        let need_h = (self.k - 1) + self.s * self.ho;
        let need_w = (self.k - 1) + self.s * self.wo;
        let bottom = need_h.saturating_sub(self.top + self.h);
        let right = need_w.saturating_sub(self.left + self.w);
        x.pad_with_zeros(1, self.top, bottom)?.pad_with_zeros(2, self.left, right)
    }
}

/// im2col: `[n, h, w, c]` to `[n, ho, wo, k*k*c]` with columns ordered (ky, kx, c), which is the
/// row order of a TF HWIO filter reshaped to `[k*k*cin, cout]`.
struct Im2col {
    k: usize,
    s: usize,
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "facebench-im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout, "im2col")?;
        let win = Window::new(layout.shape().dims4()?, self.k, self.s);
        let (k, c) = (win.k, win.c);
        let cols = k * k * c;
        let mut out = vec![0f32; win.n * win.ho * win.wo * cols];
        out.par_chunks_mut(win.wo * cols).enumerate().for_each(|(row, orow)| {
            let (b, oy) = (row / win.ho, row % win.ho);
            for ox in 0..win.wo {
                for ky in 0..k {
                    for kx in 0..k {
                        if let Some(p) = win.tap(b, oy, ox, ky, kx) {
                            let dst = ox * cols + (ky * k + kx) * c;
                            orow[dst..dst + c].copy_from_slice(&x[p * c..p * c + c]);
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, cols))))
    }
}

fn im2col(x: &Tensor, k: usize, s: usize) -> Result<Tensor> {
    if use_cpu_kernels(x.device()) {
        return x.contiguous()?.apply_op1_no_bwd(&Im2col { k, s });
    }
    let win = Window::new(x.dims4()?, k, s);
    let padded = win.pad(x)?;
    let mut taps = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            taps.push(win.tap_tensor(&padded, ky, kx)?);
        }
    }
    Tensor::cat(&taps, 3)
}

/// A convolution with TF weights (HWIO), no bias of its own: the epilogue adds it.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    /// `[k*k*cin, cout]`.
    w: Tensor,
    /// The same values on the host, for the direct CPU kernel of thin-input convolutions.
    w_host: Vec<f32>,
    k: usize,
    cout: usize,
    epilogue: Epilogue,
}

impl Conv {
    /// `hwio` is the filter in TF layout `[k, k, cin, cout]`.
    pub(crate) fn new(hwio: &[f32], k: usize, cin: usize, cout: usize, epilogue: Epilogue, device: &Device) -> Result<Self> {
        if hwio.len() != k * k * cin * cout || epilogue.channels() != cout {
            bail!("conv: filter of {} values / {} biases for k{k} {cin}->{cout}", hwio.len(), epilogue.channels());
        }
        let w = Tensor::from_slice(hwio, (k * k * cin, cout), device)?;
        Ok(Conv { w, w_host: hwio.to_vec(), k, cout, epilogue })
    }

    /// Stacks convolutions that read the same input (same k) into one matmul; the outputs are
    /// concatenated along channels.
    pub(crate) fn fuse(parts: &[Conv], device: &Device) -> Result<Self> {
        let k = parts[0].k;
        if parts.iter().any(|p| p.k != k) {
            bail!("conv fuse: kernel sizes differ");
        }
        let w = Tensor::cat(&parts.iter().map(|p| p.w.clone()).collect::<Vec<_>>(), 1)?;
        let shift: Vec<f32> = parts.iter().flat_map(|p| p.epilogue.shift.iter().copied()).collect();
        if parts.iter().any(|p| p.epilogue.scale.is_some() || p.epilogue.act != parts[0].epilogue.act) {
            bail!("conv fuse: epilogues differ");
        }
        let cout = shift.len();
        let epilogue = Epilogue::new(None, shift, parts[0].epilogue.act, device)?;
        let w_host = w.flatten_all()?.to_vec1()?;
        Ok(Conv { w, w_host, k, cout, epilogue })
    }

    pub(crate) fn forward(&self, x: &Tensor, stride: usize) -> Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        // An RGB input gives an im2col of only 27 columns, a poor GEMM shape: convolve directly.
        if use_cpu_kernels(x.device()) && c <= 4 {
            return x.contiguous()?.apply_op1_no_bwd(&DirectConvCpu { conv: self, s: stride });
        }
        let (cols, ho, wo) = if self.k == 1 && stride == 1 {
            (x.reshape((n * h * w, c))?, h, w)
        } else {
            let cols = im2col(x, self.k, stride)?;
            let (_, ho, wo, kc) = cols.dims4()?;
            (cols.reshape((n * ho * wo, kc))?, ho, wo)
        };
        let y = cols.matmul(&self.w)?;
        self.epilogue.apply(y)?.reshape((n, ho, wo, self.cout))
    }
}

/// Direct k x k convolution for thin inputs (CPU): every output pixel accumulates, tap by tap
/// and input channel by input channel, a `cout`-wide row of the filter, then the epilogue.
struct DirectConvCpu<'a> {
    conv: &'a Conv,
    s: usize,
}

impl CustomOp1 for DirectConvCpu<'_> {
    fn name(&self) -> &'static str {
        "facebench-direct-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout, "direct conv")?;
        let win = Window::new(layout.shape().dims4()?, self.conv.k, self.s);
        let (k, c, cout) = (win.k, win.c, self.conv.cout);
        if self.conv.w_host.len() != k * k * c * cout {
            bail!("direct conv: filter is not for {c} input channels");
        }
        let mut out = vec![0f32; win.n * win.ho * win.wo * cout];
        let avx2 = has_avx2_fma();
        out.par_chunks_mut(win.wo * cout).enumerate().for_each(|(row, orow)| {
            let job = ConvRow { x, conv: self.conv, win: &win, row };
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { job.run_avx2(orow) };
                return;
            }
            let _ = avx2;
            job.run(orow);
        });
        Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, cout))))
    }
}

struct ConvRow<'a> {
    x: &'a [f32],
    conv: &'a Conv,
    win: &'a Window,
    row: usize,
}

impl ConvRow<'_> {
    #[inline(always)]
    fn run(&self, orow: &mut [f32]) {
        let (win, cout) = (self.win, self.conv.cout);
        let (k, c) = (win.k, win.c);
        let (b, oy) = (self.row / win.ho, self.row % win.ho);
        for (ox, o) in orow.chunks_exact_mut(cout).enumerate() {
            for ky in 0..k {
                for kx in 0..k {
                    let Some(p) = win.tap(b, oy, ox, ky, kx) else { continue };
                    for ci in 0..c {
                        let xv = self.x[p * c + ci];
                        let wrow = &self.conv.w_host[((ky * k + kx) * c + ci) * cout..][..cout];
                        for (o, &wv) in o.iter_mut().zip(wrow) {
                            *o += xv * wv;
                        }
                    }
                }
            }
            self.conv.epilogue.apply_row(o);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, orow: &mut [f32]) {
        self.run(orow)
    }
}

/// Depthwise convolution (channel multiplier 1) with a per-channel epilogue.
#[derive(Debug, Clone)]
pub(crate) struct Depthwise {
    /// `[k, k, c]` (TF `[k, k, c, 1]`).
    w: Vec<f32>,
    w_t: Tensor,
    k: usize,
    epilogue: Option<Epilogue>,
}

impl Depthwise {
    pub(crate) fn new(w: &[f32], k: usize, c: usize, epilogue: Option<Epilogue>, device: &Device) -> Result<Self> {
        if w.len() != k * k * c || epilogue.as_ref().is_some_and(|e| e.channels() != c) {
            bail!("depthwise: {} filter values for k{k} c{c}", w.len());
        }
        let w_t = Tensor::from_slice(w, (k, k, c), device)?;
        Ok(Depthwise { w: w.to_vec(), w_t, k, epilogue })
    }

    pub(crate) fn forward(&self, x: &Tensor, stride: usize) -> Result<Tensor> {
        if use_cpu_kernels(x.device()) {
            return x.contiguous()?.apply_op1_no_bwd(&DepthwiseCpu { dw: self, s: stride });
        }
        self.forward_generic(x, stride)
    }

    /// The device-independent path: a sum of shifted, strided slabs times per-channel weights.
    fn forward_generic(&self, x: &Tensor, stride: usize) -> Result<Tensor> {
        let win = Window::new(x.dims4()?, self.k, stride);
        let padded = win.pad(x)?;
        let mut acc: Option<Tensor> = None;
        for ky in 0..self.k {
            for kx in 0..self.k {
                let wk = self.w_t.get(ky)?.get(kx)?;
                let term = win.tap_tensor(&padded, ky, kx)?.broadcast_mul(&wk)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => (a + term)?,
                });
            }
        }
        let acc = acc.expect("k >= 1");
        match &self.epilogue {
            Some(e) => e.apply_generic(acc),
            None => Ok(acc),
        }
    }
}

struct DepthwiseCpu<'a> {
    dw: &'a Depthwise,
    s: usize,
}

impl CustomOp1 for DepthwiseCpu<'_> {
    fn name(&self) -> &'static str {
        "facebench-depthwise"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout, "depthwise")?;
        let win = Window::new(layout.shape().dims4()?, self.dw.k, self.s);
        let (k, c) = (win.k, win.c);
        if self.dw.w.len() != k * k * c {
            bail!("depthwise: filter is for {} channels, input has {c}", self.dw.w.len() / (k * k));
        }
        let mut out = vec![0f32; win.n * win.ho * win.wo * c];
        let s = win.s;
        // Output columns whose tap kx lands inside the image: ox*s + kx - left in [0, w).
        let col_range = |kx: usize| -> (usize, usize) {
            let lo = win.left.saturating_sub(kx).div_ceil(s);
            let hi = ((win.w + win.left).saturating_sub(kx)).div_ceil(s).min(win.wo);
            (lo, hi.max(lo))
        };
        let ranges: Vec<(usize, usize)> = (0..k).map(col_range).collect();
        let avx2 = has_avx2_fma();
        out.par_chunks_mut(win.wo * c).enumerate().for_each(|(row, orow)| {
            let job = DwRow { x, w: &self.dw.w, win: &win, ranges: &ranges, row, epilogue: self.dw.epilogue.as_ref() };
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { job.run_avx2(orow) };
                return;
            }
            let _ = avx2;
            job.run(orow);
        });
        Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, c))))
    }
}

/// True when the CPU runs AVX2 + FMA code: the hand-written kernels are compiled twice, once for
/// the baseline target (SSE2) and once with these features, and dispatch at run time (a plain
/// release build would otherwise never use 256-bit vectors outside candle's GEMM).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One output row of a depthwise convolution.
struct DwRow<'a> {
    x: &'a [f32],
    w: &'a [f32],
    win: &'a Window,
    ranges: &'a [(usize, usize)],
    row: usize,
    epilogue: Option<&'a Epilogue>,
}

impl DwRow<'_> {
    #[inline(always)]
    fn run(&self, orow: &mut [f32]) {
        let win = self.win;
        let (k, c, s) = (win.k, win.c, win.s);
        let (b, oy) = (self.row / win.ho, self.row % win.ho);
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(win.top).filter(|&iy| iy < win.h) else { continue };
            let in_row = &self.x[(b * win.h + iy) * win.w * c..(b * win.h + iy + 1) * win.w * c];
            for (kx, &(lo, hi)) in self.ranges.iter().enumerate() {
                let wk = &self.w[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                for ox in lo..hi {
                    let ix = ox * s + kx - win.left;
                    let xin = &in_row[ix * c..ix * c + c];
                    let o = &mut orow[ox * c..ox * c + c];
                    for ((o, &xv), &wv) in o.iter_mut().zip(xin).zip(wk) {
                        *o += xv * wv;
                    }
                }
            }
        }
        if let Some(e) = self.epilogue {
            for o in orow.chunks_exact_mut(c) {
                e.apply_row(o);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, orow: &mut [f32]) {
        self.run(orow)
    }
}

/// TF.js `resizeBilinear(alignCorners=false, halfPixelCenters=false)` source sampling for one
/// axis: for each output index, (floor index, ceil index, fraction), computed in f64 as tfjs-core's
/// CPU kernel does.
pub(crate) fn bilinear_taps(in_size: usize, out_size: usize) -> Vec<(usize, usize, f64)> {
    let ratio = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|r| {
            let src = ratio * r as f64;
            let lo = src.floor().max(0.0);
            let frac = src - lo;
            let hi = (src.ceil() as usize).min(in_size - 1);
            (lo as usize, hi, frac)
        })
        .collect()
}

/// Resizes a virtual `side x side` RGB square (pixel lookup `px(x, y) -> [f32; 3]`, zero in the
/// padding) to `out x out` with TF.js bilinear sampling, storing `f(value, channel)` as f32.
pub(crate) fn resize_square_into(
    side: usize,
    out: usize,
    px: impl Fn(usize, usize) -> [f32; 3] + Sync,
    f: impl Fn(f32, usize) -> f32 + Sync,
    dst: &mut [f32],
) {
    let taps = bilinear_taps(side, out);
    dst.chunks_exact_mut(out * 3).zip(&taps).for_each(|(row, &(y0, y1, fy))| {
        for (o, &(x0, x1, fx)) in row.chunks_exact_mut(3).zip(&taps) {
            let (tl, tr, bl, br) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
            for ch in 0..3 {
                let top = tl[ch] as f64 + (tr[ch] as f64 - tl[ch] as f64) * fx;
                let bottom = bl[ch] as f64 + (br[ch] as f64 - bl[ch] as f64) * fx;
                let v = (top + (bottom - top) * fy) as f32;
                o[ch] = f(v, ch);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (naive) SAME convolution on NHWC data, the definition the kernels must match.
    fn naive_conv(x: &[f32], dims: (usize, usize, usize, usize), w: &[f32], k: usize, cout: usize, s: usize, depthwise: bool) -> Vec<f32> {
        let win = Window::new(dims, k, s);
        let c = win.c;
        let co = if depthwise { c } else { cout };
        let mut out = vec![0f32; win.n * win.ho * win.wo * co];
        for b in 0..win.n {
            for oy in 0..win.ho {
                for ox in 0..win.wo {
                    for o in 0..co {
                        let mut acc = 0f32;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - win.top as isize;
                                let ix = (ox * s + kx) as isize - win.left as isize;
                                if iy < 0 || ix < 0 || iy >= win.h as isize || ix >= win.w as isize {
                                    continue;
                                }
                                let p = (b * win.h + iy as usize) * win.w + ix as usize;
                                if depthwise {
                                    acc += x[p * c + o] * w[(ky * k + kx) * c + o];
                                } else {
                                    for ci in 0..c {
                                        acc += x[p * c + ci] * w[((ky * k + kx) * c + ci) * cout + o];
                                    }
                                }
                            }
                        }
                        out[((b * win.ho + oy) * win.wo + ox) * co + o] = acc;
                    }
                }
            }
        }
        out
    }

    fn pattern(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0) - 1.0).collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn same_padding_matches_tf() {
        // k3 s2 on even sizes: 0 before (1 after); on odd sizes 1 before; k3 s1: 1 before.
        assert_eq!(same_pad(512, 3, 2), (256, 0));
        assert_eq!(same_pad(7, 3, 2), (4, 1));
        assert_eq!(same_pad(16, 3, 1), (16, 1));
        assert_eq!(same_pad(2, 3, 2), (1, 0));
        assert_eq!(same_pad(1, 3, 2), (1, 1));
        assert_eq!(same_pad(5, 1, 1), (5, 0));
    }

    #[test]
    fn conv_and_depthwise_match_naive_on_cpu_and_generic_paths() {
        for &s in &[1usize, 2] {
            // thin input (direct kernel), 3 -> 6 channels, with a relu6 epilogue
            let dims3 = (2, 6, 7, 3);
            let x3 = pattern(2 * 6 * 7 * 3, 4);
            let w3 = pattern(9 * 3 * 6, 5);
            let bias: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
            let conv = Conv::new(&w3, 3, 3, 6, Epilogue::new(None, bias.clone(), Act::Relu6, &Device::Cpu).unwrap(), &Device::Cpu).unwrap();
            let mut want = naive_conv(&x3, dims3, &w3, 3, 6, s, false);
            for (i, v) in want.iter_mut().enumerate() {
                *v = (*v + bias[i % 6]).clamp(0.0, 6.0);
            }
            let t3 = Tensor::from_slice(&x3, dims3, &Device::Cpu).unwrap();
            let got: Vec<f32> = conv.forward(&t3, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "direct conv s{s}");
        }
        let dims = (2, 7, 6, 5);
        let x = pattern(2 * 7 * 6 * 5, 1);
        let xt = Tensor::from_slice(&x, dims, &Device::Cpu).unwrap();
        for &s in &[1usize, 2] {
            // full 3x3 conv, 5 -> 4 channels
            let w = pattern(9 * 5 * 4, 2);
            let ep = Epilogue::new(None, vec![0.0; 4], Act::None, &Device::Cpu).unwrap();
            let conv = Conv::new(&w, 3, 5, 4, ep, &Device::Cpu).unwrap();
            let want = naive_conv(&x, dims, &w, 3, 4, s, false);
            let got: Vec<f32> = conv.forward(&xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "conv s{s}");
            // generic path: im2col from narrows/reshapes
            let cols = {
                let win = Window::new(dims, 3, s);
                let padded = win.pad(&xt).unwrap();
                let mut taps = Vec::new();
                for ky in 0..3 {
                    for kx in 0..3 {
                        taps.push(win.tap_tensor(&padded, ky, kx).unwrap());
                    }
                }
                Tensor::cat(&taps, 3).unwrap()
            };
            let fast = im2col(&xt, 3, s).unwrap();
            assert_eq!(cols.dims(), fast.dims());
            let a: Vec<f32> = cols.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = fast.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(a, b, "im2col s{s}");

            // depthwise with BN-style epilogue and relu6
            let wd = pattern(9 * 5, 3);
            let scale: Vec<f32> = (0..5).map(|i| 0.5 + i as f32).collect();
            let shift: Vec<f32> = (0..5).map(|i| i as f32 - 2.0).collect();
            let ep = Epilogue::new(Some(scale.clone()), shift.clone(), Act::Relu6, &Device::Cpu).unwrap();
            let dw = Depthwise::new(&wd, 3, 5, Some(ep), &Device::Cpu).unwrap();
            let mut want = naive_conv(&x, dims, &wd, 3, 5, s, true);
            for (i, v) in want.iter_mut().enumerate() {
                *v = (*v * scale[i % 5] + shift[i % 5]).clamp(0.0, 6.0);
            }
            let got: Vec<f32> = dw.forward(&xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(max_diff(&got, &want) < 1e-4, "depthwise s{s}");
            let generic: Vec<f32> = dw.forward_generic(&xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(max_diff(&generic, &want) < 1e-4, "generic depthwise s{s}");
            assert!(want.iter().any(|&v| v > 0.0 && v < 6.0), "test input must exercise the epilogue");
        }
    }

    #[test]
    fn bilinear_taps_follow_tfjs_without_half_pixel_centres() {
        // 4 -> 8: source = r * 0.5
        let t = bilinear_taps(4, 8);
        assert_eq!(t[0], (0, 0, 0.0));
        assert_eq!(t[1], (0, 1, 0.5));
        assert_eq!(t[7], (3, 3, 0.5)); // 3.5: ceil clamped to the last pixel
        // identity
        assert!(bilinear_taps(5, 5).iter().enumerate().all(|(i, &(a, b, f))| a == i && b == i && f == 0.0));
    }
}
