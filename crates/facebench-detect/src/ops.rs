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

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Device, InplaceOp1, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

use crate::prof::baseline;

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

    /// The same shift and activation, without the scale (a convolution's bias epilogue).
    #[cfg(test)]
    fn without_scale(self) -> Self {
        Epilogue::new(None, self.shift, self.act, &Device::Cpu).expect("cpu epilogue")
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
    /// The same values on the host, for the CPU kernels (direct convolution, chunked GEMMs).
    w_host: Vec<f32>,
    k: usize,
    cout: usize,
    epilogue: Epilogue,
}

impl Conv {
    /// `hwio` is the filter in TF layout `[k, k, cin, cout]`.
    pub(crate) fn new(
        hwio: &[f32],
        k: usize,
        cin: usize,
        cout: usize,
        epilogue: Epilogue,
        device: &Device,
    ) -> Result<Self> {
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
        if use_cpu_kernels(x.device()) && !baseline() {
            return x.contiguous()?.apply_op1_no_bwd(&FusedConv { conv: self, dw: None, s: stride });
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

    /// This 1x1 convolution applied to the output of `dw` (stride `stride`): a depthwise-separable
    /// layer. On the CPU both run as one kernel: each chunk of output pixels gets its depthwise
    /// values (and their epilogue) in a cache-resident buffer that feeds the GEMM directly.
    pub(crate) fn forward_sep(&self, dw: &Depthwise, x: &Tensor, stride: usize) -> Result<Tensor> {
        if use_cpu_kernels(x.device()) && !baseline() && self.k == 1 && dw.k <= 3 {
            return x.contiguous()?.apply_op1_no_bwd(&FusedConv { conv: self, dw: Some(dw), s: stride });
        }
        self.forward(&dw.forward(x, stride)?, 1)
    }

    /// `pre` (a thin-input convolution, stride `pre_stride`), then `dw` (stride `stride`), then
    /// this 1x1 convolution, then the separable layers of `next` in turn; on the CPU as one
    /// row-streaming kernel (see `StemConv`).
    pub(crate) fn forward_stem(
        &self,
        pre: &Conv,
        pre_stride: usize,
        dw: &Depthwise,
        x: &Tensor,
        stride: usize,
        next: &[(&Depthwise, usize, &Conv)],
    ) -> Result<Tensor> {
        let thin = x.dim(3)? <= 4 && pre.cout.is_multiple_of(32);
        let next_ok = next.iter().all(|(d, _, p)| d.k <= 3 && p.k == 1);
        if use_cpu_kernels(x.device()) && !baseline() && thin && self.k == 1 && dw.k <= 3 && next_ok {
            return x.contiguous()?.apply_op1_no_bwd(&StemConv {
                pre,
                pre_s: pre_stride,
                dw,
                s: stride,
                pw: self,
                next,
            });
        }
        let mut y = self.forward_sep(dw, &pre.forward(x, pre_stride)?, stride)?;
        for (d, s, p) in next {
            y = p.forward_sep(d, &y, *s)?;
        }
        Ok(y)
    }
}

/// Output rows (pixels) per GEMM chunk: an A block of about this many floats (1 MB, this
/// machine's L2), kept in cache between its producer (depthwise / im2col) and the GEMM.
/// Measured: 64K-512K floats are within noise of each other; 256K was best.
const CHUNK_FLOATS: usize = 262144;

thread_local! {
    /// Per-thread A block of [`FusedConv`] (depthwise output or im2col rows), reused.
    static A_BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An output buffer every element of which the caller writes before reading: no zeroing pass
/// (measured ~5% of detection time when outputs were zero-filled first).
fn uninit(len: usize) -> Vec<std::mem::MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// # Safety
/// Every element of `v` has been written.
unsafe fn assume_init(v: Vec<std::mem::MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same allocation, layout and length; all elements initialised (caller).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut f32, v.len(), v.capacity()) }
}

/// Where a [`FusedConv`] chunk's GEMM rows come from.
#[derive(Clone, Copy)]
enum Rows {
    /// 1x1 stride 1: the input pixels themselves.
    Input,
    /// Depthwise 3x3 (+ its epilogue) of the input, computed per chunk.
    Depthwise(Window),
    /// im2col rows of a k x k convolution.
    Im2col(Window),
}

/// A convolution as chunked GEMMs (CPU): output pixels are split into chunks; per chunk the A
/// rows are produced (or read in place), multiplied by the `[k*k*cin, cout]` filter with a
/// single-threaded gemm, and the epilogue is applied while the chunk is in cache. Chunks run in
/// parallel (rayon), so a layer keeps every core busy whatever the batch size. Every float
/// operation is the baseline path's, in the same order.
struct FusedConv<'a> {
    conv: &'a Conv,
    dw: Option<&'a Depthwise>,
    s: usize,
}

impl CustomOp1 for FusedConv<'_> {
    fn name(&self) -> &'static str {
        "facebench-fused-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout, "fused conv")?;
        let dims = layout.shape().dims4()?;
        let (n, h, w, c) = dims;
        let conv = self.conv;
        let (rows_from, ho, wo, k) = match self.dw {
            Some(dw) => {
                let win = Window::new(dims, dw.k, self.s);
                if dw.w.len() != dw.k * dw.k * c || conv.k != 1 {
                    bail!(
                        "fused conv: depthwise filter is not for {c} channels, or pointwise is {}x{}",
                        conv.k,
                        conv.k
                    );
                }
                (Rows::Depthwise(win), win.ho, win.wo, c)
            }
            None if conv.k == 1 && self.s == 1 => (Rows::Input, h, w, c),
            None => {
                let win = Window::new(dims, conv.k, self.s);
                (Rows::Im2col(win), win.ho, win.wo, conv.k * conv.k * c)
            }
        };
        let cout = conv.cout;
        if conv.w_host.len() != k * cout {
            bail!("fused conv: filter of {} values for {k} x {cout}", conv.w_host.len());
        }
        let total = n * ho * wo;
        let threads = rayon::current_num_threads();
        // At least one chunk per thread; small layers get exactly that (every chunk repacks the
        // filter, so more chunks than threads only add packing).
        let mut rows = (CHUNK_FLOATS / k).clamp(16, 4096);
        if total.div_ceil(rows) < threads {
            rows = total.div_ceil(threads).max(1);
        }
        let mut out = uninit(total * cout);
        let avx2 = has_avx2_fma();
        out.par_chunks_mut(rows * cout).enumerate().for_each(|(i, dst)| {
            let (p0, m) = (i * rows, dst.len() / cout);
            let dptr = dst.as_mut_ptr() as *mut f32;
            let gemm_into = |a: &[f32]| {
                // SAFETY: row-major A [m, k], filter [k, cout] and dst [m, cout] of those sizes;
                // dst is only written (read_dst = false).
                unsafe {
                    gemm::gemm(
                        m,
                        cout,
                        k,
                        dptr,
                        1,
                        cout as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        conv.w_host.as_ptr(),
                        1,
                        cout as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            };
            match rows_from {
                Rows::Input => gemm_into(&x[p0 * k..(p0 + m) * k]),
                Rows::Depthwise(win) | Rows::Im2col(win) => A_BLOCK.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    if buf.len() < m * k {
                        buf.resize(m * k, 0.0);
                    }
                    let a = &mut buf[..m * k];
                    match (rows_from, self.dw) {
                        (Rows::Depthwise(_), Some(dw)) => depthwise_rows_best(x, dw, &win, p0, a),
                        _ => im2col_rows(x, &win, p0, a),
                    }
                    gemm_into(a)
                }),
            }
            // SAFETY: the gemm wrote every element of dst.
            let dst = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dst.len()) };
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { conv.epilogue.apply_block_avx2(dst) };
                return;
            }
            conv.epilogue.apply_block(dst);
        });
        // SAFETY: every chunk of `out` was written by its gemm.
        let out = unsafe { assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from((n, ho, wo, cout))))
    }
}

/// A thin-input convolution (`pre`, e.g. the detector's 3x3 stride-2 RGB layer) followed by one
/// or two depthwise-separable layers, as one CPU kernel that streams rows: each chunk of output
/// rows computes just the rows of the earlier layers' outputs it needs, in cache-resident
/// buffers (recomputing the one or two rows that neighbouring chunks share), instead of writing
/// those outputs (the network's largest tensors) to memory and reading them back. Same
/// operations, same order as running the layers one by one.
struct StemConv<'a> {
    pre: &'a Conv,
    pre_s: usize,
    dw: &'a Depthwise,
    s: usize,
    pw: &'a Conv,
    /// Further separable layers (depthwise, its stride, pointwise), each fed by the previous.
    next: &'a [(&'a Depthwise, usize, &'a Conv)],
}

thread_local! {
    /// Per-thread rows of the stem's first convolution, reused.
    static STEM_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread (input rows, A block) of each later separable layer of a stem, reused.
    static STEM_LEVELS: std::cell::RefCell<Vec<(Vec<f32>, Vec<f32>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Geometry of a [`StemConv`] run.
struct StemGeom {
    pre_win: Window,
    /// The first depthwise convolution over `pre`'s (whole) output.
    dwin: Window,
}

/// `act(dst @ filter)` for one chunk: `dst = a [m, k] x w [k, cout]`, then the epilogue.
fn gemm_epilogue(a: &[f32], conv: &Conv, dst: &mut [f32]) {
    let (k, cout) = (a.len() / (dst.len() / conv.cout), conv.cout);
    let m = dst.len() / cout;
    // SAFETY: row-major A [m, k], filter [k, cout] and dst [m, cout] of those sizes (the caller
    // checked the filter size); dst is only written (read_dst = false).
    unsafe {
        gemm::gemm(
            m,
            cout,
            k,
            dst.as_mut_ptr(),
            1,
            cout as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            conv.w_host.as_ptr(),
            1,
            cout as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        unsafe { conv.epilogue.apply_block_avx2(dst) };
        return;
    }
    conv.epilogue.apply_block(dst);
}

impl StemConv<'_> {
    /// Rows `r0..r1` of the first separable layer's output for image `b`, into `out`.
    fn first_rows(&self, x: &[f32], g: &StemGeom, b: usize, r0: usize, r1: usize, out: &mut [f32]) {
        let (pre_win, dwin) = (&g.pre_win, &g.dwin);
        let (h1, w1, c1) = (pre_win.ho, pre_win.wo, self.pre.cout);
        let m = (r1 - r0) * dwin.wo;
        // Rows of `pre`'s output this chunk's depthwise taps read.
        let iy_start = (r0 * dwin.s).saturating_sub(dwin.top);
        let iy_end = ((r1 - 1) * dwin.s + dwin.k).saturating_sub(dwin.top).min(h1);
        let sub_h = iy_end - iy_start;
        let (avx2, avx512) = (has_avx2_fma(), has_avx512());
        STEM_ROWS.with(|pre_rows| {
            A_BLOCK.with(|a_buf| {
                let (mut pre_rows, mut a_buf) = (pre_rows.borrow_mut(), a_buf.borrow_mut());
                if pre_rows.len() < sub_h * w1 * c1 {
                    pre_rows.resize(sub_h * w1 * c1, 0.0);
                }
                if a_buf.len() < m * c1 {
                    a_buf.resize(m * c1, 0.0);
                }
                for (r, prow) in pre_rows[..sub_h * w1 * c1].chunks_exact_mut(w1 * c1).enumerate() {
                    let job = ConvRow { x, conv: self.pre, win: pre_win, row: b * h1 + iy_start + r };
                    #[cfg(target_arch = "x86_64")]
                    if avx512 {
                        // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time).
                        unsafe { job.run_blocked_avx512(prow) };
                        continue;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if avx2 {
                        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                        unsafe { job.run_blocked_avx2(prow) };
                        continue;
                    }
                    let _ = (avx2, avx512);
                    job.run_blocked(prow);
                }
                // The depthwise window over the buffered rows: row iy of `pre`'s output is
                // buffer row iy - iy_start.
                let sub = Window { n: 1, h: sub_h, ho: r1 - r0, top: dwin.top + iy_start - r0 * dwin.s, ..*dwin };
                let a = &mut a_buf[..m * c1];
                depthwise_rows_best(&pre_rows[..sub_h * w1 * c1], self.dw, &sub, 0, a);
                gemm_epilogue(a, self.pw, out);
            })
        });
    }

    /// Rows `r0..r1` of the output of layer `level` (0: the first separable layer, `l`: the
    /// l-th of `next`) for image `b`, into `out`, computing just the input rows they need.
    #[allow(clippy::too_many_arguments)]
    fn level_rows(
        &self,
        x: &[f32],
        g: &StemGeom,
        wins: &[Window],
        level: usize,
        b: usize,
        r0: usize,
        r1: usize,
        out: &mut [f32],
    ) {
        if level == 0 {
            return self.first_rows(x, g, b, r0, r1, out);
        }
        let (dw, _, pw) = self.next[level - 1];
        let win = &wins[level - 1];
        let (win_w, c) = (win.w, win.c);
        let j0 = (r0 * win.s).saturating_sub(win.top);
        let j1 = ((r1 - 1) * win.s + win.k).saturating_sub(win.top).min(win.h);
        let (mlen, alen) = ((j1 - j0) * win_w * c, (r1 - r0) * win.wo * c);
        // This level's buffers, taken out of the thread's cache for the time of the call (the
        // recursion below uses the lower levels' ones).
        let (mut mid, mut a) = STEM_LEVELS.with(|l| {
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
        self.level_rows(x, g, wins, level - 1, b, j0, j1, &mut mid[..mlen]);
        let sub = Window { n: 1, h: j1 - j0, ho: r1 - r0, top: win.top + j0 - r0 * win.s, ..*win };
        depthwise_rows_best(&mid[..mlen], dw, &sub, 0, &mut a[..alen]);
        gemm_epilogue(&a[..alen], pw, out);
        STEM_LEVELS.with(|l| l.borrow_mut()[level - 1] = (mid, a));
    }
}

impl CustomOp1 for StemConv<'_> {
    fn name(&self) -> &'static str {
        "facebench-stem-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(storage, layout, "stem conv")?;
        let pre_win = Window::new(layout.shape().dims4()?, self.pre.k, self.pre_s);
        let (c1, c2) = (self.pre.cout, self.pw.cout);
        if self.pre.w_host.len() != pre_win.k * pre_win.k * pre_win.c * c1 || c1 % 32 != 0 {
            bail!("stem conv: first filter does not fit {} input channels", pre_win.c);
        }
        if self.dw.w.len() != self.dw.k * self.dw.k * c1 || self.pw.k != 1 || self.pw.w_host.len() != c1 * c2 {
            bail!("stem conv: depthwise/pointwise filters do not fit {c1} channels");
        }
        let n = pre_win.n;
        let dwin = Window::new((1, pre_win.ho, pre_win.wo, c1), self.dw.k, self.s);
        let g = StemGeom { pre_win, dwin };
        let (ho, wo) = (dwin.ho, dwin.wo);
        let threads = rayon::current_num_threads();
        // Whole output rows per chunk: an A block of about `floats`, at least one chunk per thread.
        let rows_for = |floats: usize, c: usize, ho: usize, wo: usize| {
            let mut rows = (floats / c / wo).clamp(1, ho);
            if n * ho.div_ceil(rows) < threads {
                rows = ho.div_ceil(threads.div_ceil(n)).max(1);
            }
            rows
        };
        // The depthwise windows of the later layers, over their (whole) inputs.
        let mut wins = Vec::with_capacity(self.next.len());
        let (mut hl, mut wl, mut cl) = (ho, wo, c2);
        for &(dw, s, pw) in self.next {
            if dw.w.len() != dw.k * dw.k * cl || pw.k != 1 || pw.w_host.len() != cl * pw.cout {
                bail!("stem conv: a later layer's filters do not fit {cl} channels");
            }
            let win = Window::new((1, hl, wl, cl), dw.k, s);
            (hl, wl, cl) = (win.ho, win.wo, pw.cout);
            wins.push(win);
        }
        // Whole output rows per chunk; with later layers smaller chunks (8 rows of the
        // detector's 128-wide layer 2; measured best of 4-32), so that the earlier layers' rows
        // of a chunk stay in cache.
        let floats = if self.next.is_empty() { CHUNK_FLOATS } else { CHUNK_FLOATS / 4 };
        let cin_last = if self.next.is_empty() { c1 } else { wins[wins.len() - 1].c };
        let rows = rows_for(floats, cin_last, hl, wl);
        let mut out = uninit(n * hl * wl * cl);
        out.par_chunks_mut(hl * wl * cl).enumerate().for_each(|(b, image_out)| {
            image_out.par_chunks_mut(rows * wl * cl).enumerate().for_each(|(i, dst)| {
                // SAFETY: same layout; the last gemm writes every element before any read.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr() as *mut f32, dst.len()) };
                let r0 = i * rows;
                self.level_rows(x, &g, &wins, self.next.len(), b, r0, r0 + dst.len() / (wl * cl), dst);
            });
        });
        // SAFETY: every chunk was written.
        Ok((CpuStorage::F32(unsafe { assume_init(out) }), Shape::from((n, hl, wl, cl))))
    }
}

/// (batch, row, column) of output pixel `p`.
#[inline(always)]
fn pixel_pos(win: &Window, p: usize) -> (usize, usize, usize) {
    (p / (win.ho * win.wo), (p / win.wo) % win.ho, p % win.wo)
}

/// The im2col rows of output pixels `p0..p0 + a.len() / (k*k*c)`, zeros in the padding.
fn im2col_rows(x: &[f32], win: &Window, p0: usize, a: &mut [f32]) {
    let (k, c) = (win.k, win.c);
    for (j, row) in a.chunks_exact_mut(k * k * c).enumerate() {
        let (b, oy, ox) = pixel_pos(win, p0 + j);
        for ky in 0..k {
            for kx in 0..k {
                let d = &mut row[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                match win.tap(b, oy, ox, ky, kx) {
                    Some(p) => d.copy_from_slice(&x[p * c..p * c + c]),
                    None => d.fill(0.0),
                }
            }
        }
    }
}

/// `acc += x * w` lane by lane (a multiply then an add, as the baseline kernels: no FMA, so
/// that both paths round alike).
#[inline(always)]
fn mul_add_block(acc: &mut [f32; 32], x: &[f32; 32], w: &[f32; 32]) {
    for i in 0..32 {
        acc[i] += x[i] * w[i];
    }
}

/// `acc += xv * w` lane by lane (multiply, then add).
#[inline(always)]
fn scale_add_block(acc: &mut [f32; 32], xv: f32, w: &[f32; 32]) {
    for i in 0..32 {
        acc[i] += xv * w[i];
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

/// Depthwise values (with the depthwise epilogue) of output pixels `p0..p0 + a.len() / c`
/// (k <= 3). Per pixel and block of 32 channels the taps accumulate in registers, in (ky, kx)
/// order from 0, skipping padding: the baseline kernel's sums exactly. Away from the borders
/// four pixels of a row go together, sharing each weight load.
#[inline(always)]
fn depthwise_rows(x: &[f32], dw: &Depthwise, win: &Window, p0: usize, a: &mut [f32]) {
    let (k, c, s) = (win.k, win.c, win.s);
    let (mut b, mut oy, mut ox) = pixel_pos(win, p0);
    let mut taps = [(0usize, 0usize); 9];
    // Interior taps: offsets from the window's top-left input pixel.
    let mut inner = [(0usize, 0usize); 9];
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
                let acc = dw_quad(x, &dw.w, inner, base, s * c, cb);
                for (q, acc) in acc.iter().enumerate() {
                    out[q * c + cb..q * c + cb + 32].copy_from_slice(acc);
                }
            }
            if let Some(e) = &dw.epilogue {
                for o in out.chunks_exact_mut(c) {
                    e.apply_row(o);
                }
            }
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
                    if ix < win.w && nt < taps.len() {
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
                    mul_add_block(&mut acc, block32(x, xo + cb), block32(&dw.w, wo + cb));
                }
                out[cb..cb + 32].copy_from_slice(&acc);
                cb += 32;
            }
            for ch in cb..c {
                let mut acc = 0f32;
                for &(wo, xo) in taps {
                    acc += x[xo + ch] * dw.w[wo + ch];
                }
                out[ch] = acc;
            }
            if let Some(e) = &dw.epilogue {
                e.apply_row(out);
            }
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_rows_avx2(x: &[f32], dw: &Depthwise, win: &Window, p0: usize, a: &mut [f32]) {
    depthwise_rows(x, dw, win, p0, a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn depthwise_rows_avx512(x: &[f32], dw: &Depthwise, win: &Window, p0: usize, a: &mut [f32]) {
    depthwise_rows(x, dw, win, p0, a)
}

/// [`depthwise_rows`] compiled for the widest vectors the CPU has.
fn depthwise_rows_best(x: &[f32], dw: &Depthwise, win: &Window, p0: usize, a: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time).
            return unsafe { depthwise_rows_avx512(x, dw, win, p0, a) };
        }
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            return unsafe { depthwise_rows_avx2(x, dw, win, p0, a) };
        }
    }
    depthwise_rows(x, dw, win, p0, a)
}

/// True when the CPU runs AVX-512F code (besides AVX2 + FMA).
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2_fma() && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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
        if !baseline() && cout % 32 == 0 {
            let mut out = uninit(win.n * win.ho * win.wo * cout);
            let (avx2, avx512) = (has_avx2_fma(), has_avx512());
            out.par_chunks_mut(win.wo * cout).enumerate().for_each(|(row, orow)| {
                // SAFETY: f32 and MaybeUninit<f32> have the same layout; run_blocked writes
                // every element before anything reads it.
                let orow = unsafe { std::slice::from_raw_parts_mut(orow.as_mut_ptr() as *mut f32, orow.len()) };
                let job = ConvRow { x, conv: self.conv, win: &win, row };
                #[cfg(target_arch = "x86_64")]
                if avx512 {
                    // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked at run time).
                    unsafe { job.run_blocked_avx512(orow) };
                    return;
                }
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                    unsafe { job.run_blocked_avx2(orow) };
                    return;
                }
                let _ = (avx2, avx512);
                job.run_blocked(orow);
            });
            // SAFETY: every row was written by run_blocked.
            let out = unsafe { assume_init(out) };
            return Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, cout))));
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

    /// [`Self::run`] with each pixel's outputs in registers (blocks of 32 channels; `cout` a
    /// multiple of 32), written once, so `orow` need not be zeroed. Same sums, same order. Away
    /// from the borders four pixels go together, sharing each filter load.
    #[inline(always)]
    fn run_blocked(&self, orow: &mut [f32]) {
        let (win, cout) = (self.win, self.conv.cout);
        let (k, c, s) = (win.k, win.c, win.s);
        let (b, oy) = (self.row / win.ho, self.row % win.ho);
        let w = &self.conv.w_host;
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
                assert!(x_end <= self.x.len() && k * k * c * cout <= w.len(), "convolution window outside its buffers");
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
                                    let xv = unsafe { *self.x.get_unchecked(xo + q * s * c + ci) };
                                    scale_add_block(acc, xv, wb);
                                }
                            }
                        }
                    }
                    for (q, acc) in acc.iter().enumerate() {
                        orow[(ox + q) * cout + cb..(ox + q) * cout + cb + 32].copy_from_slice(acc);
                    }
                }
                for o in orow[ox * cout..(ox + 4) * cout].chunks_exact_mut(cout) {
                    self.conv.epilogue.apply_row(o);
                }
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
                            scale_add_block(&mut acc, self.x[p * c + ci], block32(w, at));
                        }
                    }
                }
                o[cb..cb + 32].copy_from_slice(&acc);
            }
            self.conv.epilogue.apply_row(o);
            ox += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run_blocked_avx512(&self, orow: &mut [f32]) {
        self.run_blocked(orow)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_blocked_avx2(&self, orow: &mut [f32]) {
        self.run_blocked(orow)
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
        if !baseline() && k <= 3 {
            // Pixel blocks of the register-blocked kernel, written once (no zeroing pass).
            let total = win.n * win.ho * win.wo;
            let rows = 256;
            let mut out = uninit(total * c);
            out.par_chunks_mut(rows * c).enumerate().for_each(|(i, o)| {
                // SAFETY: same layout; depthwise_rows writes every element before any read.
                let o = unsafe { std::slice::from_raw_parts_mut(o.as_mut_ptr() as *mut f32, o.len()) };
                depthwise_rows_best(x, self.dw, &win, i * rows, o);
            });
            // SAFETY: every chunk was written.
            let out = unsafe { assume_init(out) };
            return Ok((CpuStorage::F32(out), Shape::from((win.n, win.ho, win.wo, c))));
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

/// `a + (b + (c + ...))`, then relu when asked: the dense blocks' residual sums in TF.js's
/// association order. On the CPU one rayon pass per three terms; candle's element-wise ops would
/// run on its own spinning thread pool beside rayon's (measured ~9% of CPU time lost to spinning).
pub(crate) fn sum_right(terms: &[&Tensor], relu: bool) -> Result<Tensor> {
    if terms.is_empty() || terms.len() > 4 {
        bail!("sum_right: {} terms", terms.len());
    }
    if !use_cpu_kernels(terms[0].device()) || baseline() {
        let mut acc = terms[terms.len() - 1].clone();
        for t in terms[..terms.len() - 1].iter().rev() {
            acc = (*t + &acc)?;
        }
        return if relu { acc.relu() } else { Ok(acc) };
    }
    let c = |t: &Tensor| t.contiguous();
    match terms {
        [a] => {
            if relu {
                c(a)?.apply_op1_no_bwd(&SumRelu(true))
            } else {
                Ok((*a).clone())
            }
        }
        [a, b] => c(a)?.apply_op2_no_bwd(&c(b)?, &SumRelu(relu)),
        [a, b, d] => c(a)?.apply_op3_no_bwd(&c(b)?, &c(d)?, &SumRelu(relu)),
        [a, b, d, e] => {
            let de = c(d)?.apply_op2_no_bwd(&c(e)?, &SumRelu(false))?;
            c(a)?.apply_op3_no_bwd(&c(b)?, &de, &SumRelu(relu))
        }
        _ => unreachable!("1..=4 terms checked above"),
    }
}

/// The CPU kernel of [`sum_right`] (the flag: relu).
struct SumRelu(bool);

impl SumRelu {
    fn run(&self, parts: &[&[f32]], shape: &Shape) -> Result<(CpuStorage, Shape)> {
        let len = parts[0].len();
        if parts.iter().any(|p| p.len() != len) {
            bail!("sum_right: terms of different sizes");
        }
        let relu = self.0;
        let mut out = uninit(len);
        out.par_chunks_mut(16384).enumerate().for_each(|(i, o)| {
            let at = i * 16384;
            for (j, o) in o.iter_mut().enumerate() {
                let mut acc = parts[parts.len() - 1][at + j];
                for p in parts[..parts.len() - 1].iter().rev() {
                    acc += p[at + j]; // a + b == b + a exactly: the association is what matters
                }
                o.write(if relu { acc.max(0.0) } else { acc });
            }
        });
        // SAFETY: every element was written above.
        Ok((CpuStorage::F32(unsafe { assume_init(out) }), shape.clone()))
    }
}

impl CustomOp1 for SumRelu {
    fn name(&self) -> &'static str {
        "facebench-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        SumRelu(true).run(&[cpu_f32(s, l, "relu")?], l.shape())
    }
}

impl CustomOp2 for SumRelu {
    fn name(&self) -> &'static str {
        "facebench-sum2"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(&[cpu_f32(s1, l1, "sum")?, cpu_f32(s2, l2, "sum")?], l1.shape())
    }
}

impl CustomOp3 for SumRelu {
    fn name(&self) -> &'static str {
        "facebench-sum3"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(&[cpu_f32(s1, l1, "sum")?, cpu_f32(s2, l2, "sum")?, cpu_f32(s3, l3, "sum")?], l1.shape())
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
///
/// Each source row's horizontal interpolation (`left + (right - left) * fx`, f64) is computed
/// once and shared by the output rows that read it (about two per row when upscaling LFW's 250
/// to 512): the same operations as interpolating per output pixel, half of them.
pub(crate) fn resize_square_into(
    side: usize,
    out: usize,
    px: impl Fn(usize, usize) -> [f32; 3] + Sync,
    f: impl Fn(f32, usize) -> f32 + Sync,
    dst: &mut [f32],
) {
    let taps = bilinear_taps(side, out);
    if baseline() {
        // The first port's loop: every output pixel interpolates its four source pixels.
        for (row, &(y0, y1, fy)) in dst.chunks_exact_mut(out * 3).zip(&taps) {
            for (o, &(x0, x1, fx)) in row.chunks_exact_mut(3).zip(&taps) {
                let (tl, tr, bl, br) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
                for ch in 0..3 {
                    let top = tl[ch] as f64 + (tr[ch] as f64 - tl[ch] as f64) * fx;
                    let bottom = bl[ch] as f64 + (br[ch] as f64 - bl[ch] as f64) * fx;
                    o[ch] = f((top + (bottom - top) * fy) as f32, ch);
                }
            }
        }
        return;
    }
    let horizontal = |y: usize, buf: &mut Vec<f64>| {
        buf.clear();
        for &(x0, x1, fx) in &taps {
            let (l, r) = (px(x0, y), px(x1, y));
            for ch in 0..3 {
                buf.push(l[ch] as f64 + (r[ch] as f64 - l[ch] as f64) * fx);
            }
        }
    };
    // Two cached source rows: (row index, interpolated values).
    let mut slots: [(usize, Vec<f64>); 2] = [(usize::MAX, Vec::new()), (usize::MAX, Vec::new())];
    for (row, &(y0, y1, fy)) in dst.chunks_exact_mut(out * 3).zip(&taps) {
        for y in [y0, y1] {
            if slots[0].0 != y && slots[1].0 != y {
                // Replace the slot not needed by this output row.
                let other = if y == y0 { y1 } else { y0 };
                let i = if slots[0].0 == other { 1 } else { 0 };
                horizontal(y, &mut slots[i].1);
                slots[i].0 = y;
            }
        }
        let pick = |y: usize| if slots[0].0 == y { &slots[0].1 } else { &slots[1].1 };
        vertical_lerp(pick(y0), pick(y1), fy, row);
        for px in row.chunks_exact_mut(3) {
            for (ch, o) in px.iter_mut().enumerate() {
                *o = f(*o, ch);
            }
        }
    }
}

/// `row[i] = (top[i] + (bottom[i] - top[i]) * fy) as f32`, vectorised where the CPU allows.
fn vertical_lerp(top: &[f64], bottom: &[f64], fy: f64, row: &mut [f32]) {
    #[inline(always)]
    fn body(top: &[f64], bottom: &[f64], fy: f64, row: &mut [f32]) {
        for ((o, &t), &b) in row.iter_mut().zip(top).zip(bottom) {
            *o = (t + (b - t) * fy) as f32;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn body_avx2(top: &[f64], bottom: &[f64], fy: f64, row: &mut [f32]) {
        body(top, bottom, fy, row)
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        return unsafe { body_avx2(top, bottom, fy, row) };
    }
    body(top, bottom, fy, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct (naive) SAME convolution on NHWC data, the definition the kernels must match.
    fn naive_conv(
        x: &[f32],
        dims: (usize, usize, usize, usize),
        w: &[f32],
        k: usize,
        cout: usize,
        s: usize,
        depthwise: bool,
    ) -> Vec<f32> {
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
            let conv = Conv::new(
                &w3,
                3,
                3,
                6,
                Epilogue::new(None, bias.clone(), Act::Relu6, &Device::Cpu).unwrap(),
                &Device::Cpu,
            )
            .unwrap();
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

    /// The register-blocked kernels (four-pixel groups inside, single pixels at the borders,
    /// 32-channel blocks) on shapes where all of those occur: the direct and depthwise kernels
    /// give the naive sums bit for bit (same operations, same order); the chunked GEMM paths
    /// (depthwise + 1x1, im2col 3x3, plain 1x1) agree to rounding.
    #[test]
    fn blocked_and_fused_kernels_match_naive() {
        let dev = Device::Cpu;
        for &s in &[1usize, 2] {
            // thin input: 3 -> 64 channels
            let dims3 = (2, 13, 17, 3);
            let x3 = pattern(2 * 13 * 17 * 3, 7);
            let w3 = pattern(9 * 3 * 64, 8);
            let bias: Vec<f32> = (0..64).map(|i| (i % 9) as f32 * 0.3 - 1.0).collect();
            let conv =
                Conv::new(&w3, 3, 3, 64, Epilogue::new(None, bias.clone(), Act::Relu6, &dev).unwrap(), &dev).unwrap();
            let mut want = naive_conv(&x3, dims3, &w3, 3, 64, s, false);
            for (i, v) in want.iter_mut().enumerate() {
                *v = (*v + bias[i % 64]).clamp(0.0, 6.0);
            }
            let t3 = Tensor::from_slice(&x3, dims3, &dev).unwrap();
            let got: Vec<f32> = conv.forward(&t3, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got, want, "blocked direct conv s{s}");

            // depthwise on 64 channels (four-pixel groups) and 64 + 8 (a 32-block remainder:
            // single pixels), with BN epilogue
            for c in [64usize, 72] {
                let dims = (2, 11, 14, c);
                let x = pattern(2 * 11 * 14 * c, 9);
                let xt = Tensor::from_slice(&x, dims, &dev).unwrap();
                let wd = pattern(9 * c, 10);
                let scale: Vec<f32> = (0..c).map(|i| 0.5 + (i % 4) as f32).collect();
                let shift: Vec<f32> = (0..c).map(|i| (i % 5) as f32 - 2.0).collect();
                let ep = Epilogue::new(Some(scale.clone()), shift.clone(), Act::Relu6, &dev).unwrap();
                let dw = Depthwise::new(&wd, 3, c, Some(ep), &dev).unwrap();
                let mut want_dw = naive_conv(&x, dims, &wd, 3, c, s, true);
                for (i, v) in want_dw.iter_mut().enumerate() {
                    *v = (*v * scale[i % c] + shift[i % c]).clamp(0.0, 6.0);
                }
                let got: Vec<f32> = dw.forward(&xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(got, want_dw, "blocked depthwise s{s}");

                // depthwise + pointwise as one kernel, 72 -> 40 channels
                let wp = pattern(c * 40, 11);
                let pb: Vec<f32> = (0..40).map(|i| i as f32 * 0.05).collect();
                let pw =
                    Conv::new(&wp, 1, c, 40, Epilogue::new(None, pb.clone(), Act::Relu6, &dev).unwrap(), &dev).unwrap();
                let (n, ho, wo) = (2, 11usize.div_ceil(s), 14usize.div_ceil(s));
                let mut want = naive_conv(&want_dw, (n, ho, wo, c), &wp, 1, 40, 1, false);
                for (i, v) in want.iter_mut().enumerate() {
                    *v = (*v + pb[i % 40]).clamp(0.0, 6.0);
                }
                let got: Vec<f32> = pw.forward_sep(&dw, &xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                assert!(max_diff(&got, &want) < 1e-4, "fused depthwise + pointwise s{s}");

                // 3x3 convolution on 72 channels through im2col chunks, and a plain 1x1
                let wk = pattern(9 * c * 24, 12);
                let conv = Conv::new(&wk, 3, c, 24, Epilogue::new(None, vec![0.0; 24], Act::None, &dev).unwrap(), &dev)
                    .unwrap();
                let want = naive_conv(&x, dims, &wk, 3, 24, s, false);
                let got: Vec<f32> = conv.forward(&xt, s).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                assert!(max_diff(&got, &want) < 1e-3, "im2col conv s{s}");
            }
        }
        let x = pattern(3 * 5 * 64, 13);
        let w = pattern(64 * 16, 14);
        let conv =
            Conv::new(&w, 1, 64, 16, Epilogue::new(None, vec![0.5; 16], Act::None, &dev).unwrap(), &dev).unwrap();
        let mut want = naive_conv(&x, (1, 3, 5, 64), &w, 1, 16, 1, false);
        want.iter_mut().for_each(|v| *v += 0.5);
        let got: Vec<f32> = conv
            .forward(&Tensor::from_slice(&x, (1, 3, 5, 64), &dev).unwrap(), 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(max_diff(&got, &want) < 1e-4, "1x1 conv");
    }

    /// The row-streaming stem (thin conv, then one or two separable layers) gives exactly what
    /// the layers give one by one, on odd sizes where chunks and padding meet.
    #[test]
    fn stem_streams_rows_exactly_as_layer_by_layer() {
        let dev = Device::Cpu;
        // Wide enough for several row chunks per image (odd sizes: partial last chunks).
        let (n, h, w) = (2, 199, 601);
        let x = Tensor::from_vec(pattern(n * h * w * 3, 21), (n, h, w, 3), &dev).unwrap();
        let ep = |c: usize, seed: usize| {
            Epilogue::new(
                Some(pattern(c, seed).iter().map(|v| v + 1.5).collect()),
                pattern(c, seed + 1),
                Act::Relu6,
                &dev,
            )
            .unwrap()
        };
        let pre = Conv::new(&pattern(27 * 32, 22), 3, 3, 32, ep(32, 23).without_scale(), &dev).unwrap();
        let dw1 = Depthwise::new(&pattern(9 * 32, 24), 3, 32, Some(ep(32, 25)), &dev).unwrap();
        let pw1 = Conv::new(&pattern(32 * 64, 26), 1, 32, 64, ep(64, 27).without_scale(), &dev).unwrap();
        let dw2 = Depthwise::new(&pattern(9 * 64, 28), 3, 64, Some(ep(64, 29)), &dev).unwrap();
        let pw2 = Conv::new(&pattern(64 * 40, 30), 1, 64, 40, ep(40, 31).without_scale(), &dev).unwrap();
        let v = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        let y1 = pw1.forward_sep(&dw1, &pre.forward(&x, 2).unwrap(), 1).unwrap();
        let y2 = pw2.forward_sep(&dw2, &y1, 2).unwrap();
        let s1 = pw1.forward_stem(&pre, 2, &dw1, &x, 1, &[]).unwrap();
        let s2 = pw1.forward_stem(&pre, 2, &dw1, &x, 1, &[(&dw2, 2, &pw2)]).unwrap();
        // three separable layers: the third (stride 1) reads the second's rows
        let dw3 = Depthwise::new(&pattern(9 * 40, 32), 3, 40, Some(ep(40, 33)), &dev).unwrap();
        let pw3 = Conv::new(&pattern(40 * 32, 34), 1, 40, 32, ep(32, 35).without_scale(), &dev).unwrap();
        let s3 = pw1.forward_stem(&pre, 2, &dw1, &x, 1, &[(&dw2, 2, &pw2), (&dw3, 1, &pw3)]).unwrap();
        assert_eq!(s1.dims(), y1.dims());
        assert_eq!(s2.dims(), &[n, 50, 151, 40]);
        let (y1, y2) = (v(y1), v(y2));
        assert!(y2.iter().any(|&a| a > 0.0 && a < 6.0), "the test must exercise the epilogue");
        let y3 = v(pw3.forward_sep(&dw3, &Tensor::from_vec(y2.clone(), (n, 50, 151, 40), &dev).unwrap(), 1).unwrap());
        assert_eq!(v(s1), y1);
        assert_eq!(v(s2), y2);
        assert_eq!(v(s3), y3);
    }

    #[test]
    fn residual_sums_keep_tfjs_association() {
        let dev = Device::Cpu;
        let t = |seed| Tensor::from_vec(pattern(2 * 3 * 70000, seed), (2, 3, 70000), &dev).unwrap();
        let (a, b, c, d) = (t(1), t(2), t(3), t(4));
        let got = sum_right(&[&a, &b, &c, &d], true).unwrap();
        let want = (&a + (&b + (&c + &d).unwrap()).unwrap()).unwrap().relu().unwrap();
        let (g, w): (Vec<f32>, Vec<f32>) =
            (got.flatten_all().unwrap().to_vec1().unwrap(), want.flatten_all().unwrap().to_vec1().unwrap());
        assert_eq!(g, w);
        assert!(g.contains(&0.0) && g.iter().any(|&v| v > 0.0));
        let got: Vec<f32> = sum_right(&[&a, &b], false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = (&a + &b).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
        assert!(sum_right(&[], true).is_err());
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
