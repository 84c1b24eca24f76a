//! Layers shared by the ports: explicit zero padding (TF `SAME` is asymmetric for stride 2 on
//! even sizes, which candle's symmetric `padding` cannot express), convolution and depthwise
//! convolution with a fused per-channel epilogue (bias, affine scale, ReLU/PReLU).
//!
//! Every layer has two paths computing the same function on NCHW f32 tensors:
//! * on CPU, a direct kernel (`CustomOp1`): im2col + `gemm` for convolutions, written straight
//!   into NCHW, and a per-plane stencil for depthwise layers. Candle's own grouped convolution
//!   runs one convolution per channel, and its tiled conv re-lays the input out single-threaded;
//!   both are far slower here (see the bench example);
//! * elsewhere (CUDA), plain candle ops: [`pad2d`], `conv2d` (grouped for depthwise) and
//!   broadcast arithmetic. [`Conv2d::forward_candle`] exposes that path so tests can check one
//!   against the other.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
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

/// Zero-pads an NCHW tensor spatially.
pub fn pad2d(x: &Tensor, p: Pads) -> Result<Tensor> {
    let mut x = x.clone();
    if p.top + p.bottom > 0 {
        x = x.pad_with_zeros(2, p.top, p.bottom)?;
    }
    if p.left + p.right > 0 {
        x = x.pad_with_zeros(3, p.left, p.right)?;
    }
    Ok(x)
}

/// Activation applied last in a layer's epilogue.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    /// `max(0,z) + alpha[c] * min(0,z)`, one slope per channel.
    PRelu(Vec<f32>),
}

/// `prelu(x) = max(0,x) + alpha*min(0,x)` over channel dim 1 of an NCHW tensor (candle ops).
pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let c = alpha.elem_count();
    let a = alpha.reshape((1, c, 1, 1))?;
    let zero = x.zeros_like()?;
    Ok(x.maximum(&zero)?.add(&x.minimum(&zero)?.broadcast_mul(&a)?)?)
}

/// Per-channel epilogue `act((z + bias) * scale + shift)`, in that order (as TF runs it).
#[derive(Debug, Clone, PartialEq)]
struct Epilogue {
    bias: Option<Vec<f32>>,
    affine: Option<(Vec<f32>, Vec<f32>)>,
    act: Activation,
}

impl Epilogue {
    #[inline]
    fn apply(&self, c: usize, plane: &mut [f32]) {
        if let Some(b) = &self.bias {
            let b = b[c];
            plane.iter_mut().for_each(|v| *v += b);
        }
        if let Some((s, t)) = &self.affine {
            let (s, t) = (s[c], t[c]);
            plane.iter_mut().for_each(|v| *v = *v * s + t);
        }
        match &self.act {
            Activation::None => {}
            Activation::Relu => plane.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::PRelu(a) => {
                let a = a[c];
                plane.iter_mut().for_each(|v| *v = v.max(0.0) + a * v.min(0.0));
            }
        }
    }

    fn apply_candle(&self, mut y: Tensor, device: &Device) -> Result<Tensor> {
        let chan = |v: &[f32]| Tensor::from_slice(v, (1, v.len(), 1, 1), device);
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&chan(b)?)?;
        }
        if let Some((s, t)) = &self.affine {
            y = y.broadcast_mul(&chan(s)?)?.broadcast_add(&chan(t)?)?;
        }
        Ok(match &self.act {
            Activation::None => y,
            Activation::Relu => y.relu()?,
            Activation::PRelu(a) => prelu(&y, &Tensor::from_slice(a, a.len(), device)?)?,
        })
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
            Some(l) => Err(Error::Input(format!("{layer}: per-channel parameter of length {l}, layer has {c} channels"))),
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
    fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let ph = h + self.pads.top + self.pads.bottom;
        let pw = w + self.pads.left + self.pads.right;
        if ph < self.kh || pw < self.kw {
            return Err(Error::Input(format!(
                "input {h}x{w} (padded {ph}x{pw}) smaller than kernel {}x{}",
                self.kh, self.kw
            )));
        }
        Ok(((ph - self.kh) / self.stride + 1, (pw - self.kw) / self.stride + 1))
    }

    /// Output columns `ox` whose input column `ox*s + k - left` lies inside `0..w`.
    #[inline]
    fn valid_range(out: usize, n: usize, s: usize, k: usize, before: usize) -> (usize, usize) {
        // need ox*s + k >= before  and  ox*s + k - before < n
        let lo = if k >= before { 0 } else { (before - k).div_ceil(s) };
        let hi = if n + before > k { ((n + before - k - 1) / s + 1).min(out) } else { 0 };
        (lo.min(hi), hi)
    }
}

/// A convolution (groups = 1) with TF weights, explicit padding and a fused epilogue.
#[derive(Debug, Clone)]
pub struct Conv2d {
    name: String,
    c_in: usize,
    c_out: usize,
    geom: Geom,
    /// OIHW flattened: row `o` is `(c, ky, kx)` — the im2col row order.
    wmat: Vec<f32>,
    weight: Tensor,
    epi: Epilogue,
}

impl Conv2d {
    /// `w` is a TF HWIO filter of `shape = [kh, kw, c_in, c_out]`.
    pub fn new(name: &str, w: &[f32], shape: [usize; 4], stride: usize, pads: Pads, device: &Device) -> Result<Self> {
        let [kh, kw, c_in, c_out] = shape;
        if w.len() != kh * kw * c_in * c_out || stride == 0 {
            return Err(Error::Input(format!("{name}: {} weights for filter shape {shape:?}, stride {stride}", w.len())));
        }
        let mut wmat = vec![0f32; w.len()];
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..c_in {
                    for o in 0..c_out {
                        wmat[((o * c_in + i) * kh + y) * kw + x] = w[((y * kw + x) * c_in + i) * c_out + o];
                    }
                }
            }
        }
        let weight = Tensor::from_slice(&wmat, (c_out, c_in, kh, kw), device)?;
        Ok(Conv2d {
            name: name.to_string(),
            c_in,
            c_out,
            geom: Geom { kh, kw, stride, pads },
            wmat,
            weight,
            epi: Epilogue { bias: None, affine: None, act: Activation::None },
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.bias = Some(bias.to_vec());
        self.epi.check(&self.name, self.c_out)?;
        Ok(self)
    }

    /// `y = y * scale + shift` per channel after the bias (dlib's affine / folded BatchNorm).
    pub fn with_affine(mut self, scale: &[f32], shift: &[f32]) -> Result<Self> {
        self.epi.affine = Some((scale.to_vec(), shift.to_vec()));
        self.epi.check(&self.name, self.c_out)?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.act = act;
        self.epi.check(&self.name, self.c_out)?;
        Ok(self)
    }

    pub fn out_channels(&self) -> usize {
        self.c_out
    }

    /// NCHW in, NCHW out; the fast kernel on CPU, candle ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        if x.device().is_cpu() {
            Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
        } else {
            self.forward_candle(x)
        }
    }

    /// The same layer with candle's own ops (explicit pad, `conv2d`, broadcast epilogue).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let y = pad2d(x, self.geom.pads)?.conv2d(&self.weight, 0, self.geom.stride, 1, 1)?;
        self.epi.apply_candle(y, x.device())
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let (_, c, h, w) = x.dims4().map_err(|_| Error::Input(format!("{}: expected NCHW input, got {:?}", self.name, x.dims())))?;
        if c != self.c_in {
            return Err(Error::Input(format!("{}: input has {c} channels, layer expects {}", self.name, self.c_in)));
        }
        self.geom.out_hw(h, w).map_err(|e| Error::Input(format!("{}: {e}", self.name)))?;
        Ok(())
    }

    /// im2col of one image `[c_in, h, w]` into `col [c_in*kh*kw, oh*ow]`.
    fn im2col(&self, img: &[f32], h: usize, w: usize, oh: usize, ow: usize, col: &mut [f32]) {
        let g = self.geom;
        let s = g.stride;
        let m = oh * ow;
        for c in 0..self.c_in {
            let plane = &img[c * h * w..(c + 1) * h * w];
            for ky in 0..g.kh {
                let (oy_lo, oy_hi) = Geom::valid_range(oh, h, s, ky, g.pads.top);
                for kx in 0..g.kw {
                    let row = &mut col[((c * g.kh + ky) * g.kw + kx) * m..][..m];
                    let (ox_lo, ox_hi) = Geom::valid_range(ow, w, s, kx, g.pads.left);
                    row[..oy_lo * ow].fill(0.0);
                    row[oy_hi * ow..].fill(0.0);
                    for oy in oy_lo..oy_hi {
                        let iy = oy * s + ky - g.pads.top;
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        dst[..ox_lo].fill(0.0);
                        dst[ox_hi..].fill(0.0);
                        let src = &plane[iy * w..(iy + 1) * w];
                        let ix0 = ox_lo * s + kx - g.pads.left;
                        if s == 1 {
                            dst[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                        } else {
                            for (d, ix) in dst[ox_lo..ox_hi].iter_mut().zip((ix0..).step_by(s)) {
                                *d = src[ix];
                            }
                        }
                    }
                }
            }
        }
    }

    /// One image: `out [c_out, oh*ow] = wmat [c_out, K] x col [K, oh*ow]`, then the epilogue.
    fn run_image(&self, img: &[f32], h: usize, w: usize, out: &mut [f32], par: gemm::Parallelism) {
        let g = self.geom;
        let (oh, ow) = self.geom.out_hw(h, w).expect("checked in forward");
        let m = oh * ow;
        let k = self.c_in * g.kh * g.kw;
        let direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pads == Pads::NONE;
        let col_buf;
        let col: &[f32] = if direct {
            img
        } else {
            let mut buf = vec![0f32; k * m];
            self.im2col(img, h, w, oh, ow, &mut buf);
            col_buf = buf;
            &col_buf
        };
        // SAFETY: all three buffers are row-major with the given sizes and strides.
        unsafe {
            gemm::gemm(
                self.c_out, m, k,
                out.as_mut_ptr(), 1, m as isize, false,
                self.wmat.as_ptr(), 1, k as isize,
                col.as_ptr(), 1, m as isize,
                0.0, 1.0, false, false, false, par,
            );
        }
        for (c, plane) in out.chunks_exact_mut(m).enumerate() {
            self.epi.apply(c, plane);
        }
    }
}

/// Runs `f(image_in, image_out, parallelism)` over a batch: images in parallel when there are
/// enough of them to feed every thread, otherwise one after the other with a parallel gemm.
fn over_batch<F>(n: usize, in_len: usize, out_len: usize, src: &[f32], f: F) -> Vec<f32>
where
    F: Fn(&[f32], &mut [f32], gemm::Parallelism) + Sync,
{
    let mut out = vec![0f32; n * out_len];
    let threads = rayon::current_num_threads();
    if n >= threads && threads > 1 {
        out.par_chunks_mut(out_len)
            .zip(src.par_chunks(in_len))
            .for_each(|(o, i)| f(i, o, gemm::Parallelism::None));
    } else {
        let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        for (o, i) in out.chunks_mut(out_len).zip(src.chunks(in_len)) {
            f(i, o, par);
        }
    }
    out
}

fn cpu_input<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<(&'a [f32], usize, usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("{op}: expected f32 input"),
    };
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op}: input not contiguous")))?;
    Ok((&data[start..end], n, c, h, w))
}

impl CustomOp1 for Conv2d {
    fn name(&self) -> &'static str {
        "facebench-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (src, n, c, h, w) = cpu_input("conv2d", s, l)?;
        debug_assert_eq!(c, self.c_in);
        let (oh, ow) = self.geom.out_hw(h, w).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let out = over_batch(n, c * h * w, self.c_out * oh * ow, src, |i, o, par| self.run_image(i, h, w, o, par));
        Ok((CpuStorage::F32(out), Shape::from((n, self.c_out, oh, ow))))
    }
}

/// A depthwise convolution (channel multiplier 1) with TF weights, explicit padding and a fused
/// epilogue.
#[derive(Debug, Clone)]
pub struct DepthwiseConv2d {
    name: String,
    c: usize,
    geom: Geom,
    /// `[c, kh*kw]`.
    wmat: Vec<f32>,
    weight: Tensor,
    epi: Epilogue,
}

impl DepthwiseConv2d {
    /// `w` is a TF depthwise filter of `shape = [kh, kw, c, 1]`.
    pub fn new(name: &str, w: &[f32], shape: [usize; 4], stride: usize, pads: Pads, device: &Device) -> Result<Self> {
        let [kh, kw, c, mult] = shape;
        if mult != 1 || w.len() != kh * kw * c || stride == 0 {
            return Err(Error::Input(format!("{name}: {} weights for depthwise filter shape {shape:?}, stride {stride}", w.len())));
        }
        let mut wmat = vec![0f32; w.len()];
        for y in 0..kh {
            for x in 0..kw {
                for ch in 0..c {
                    wmat[(ch * kh + y) * kw + x] = w[(y * kw + x) * c + ch];
                }
            }
        }
        let weight = Tensor::from_slice(&wmat, (c, 1, kh, kw), device)?;
        Ok(DepthwiseConv2d {
            name: name.to_string(),
            c,
            geom: Geom { kh, kw, stride, pads },
            wmat,
            weight,
            epi: Epilogue { bias: None, affine: None, act: Activation::None },
        })
    }

    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self> {
        self.epi.bias = Some(bias.to_vec());
        self.epi.check(&self.name, self.c)?;
        Ok(self)
    }

    pub fn with_activation(mut self, act: Activation) -> Result<Self> {
        self.epi.act = act;
        self.epi.check(&self.name, self.c)?;
        Ok(self)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        if x.device().is_cpu() {
            Ok(x.contiguous()?.apply_op1_no_bwd(self)?)
        } else {
            self.forward_candle(x)
        }
    }

    /// The same layer with candle's grouped `conv2d` (one convolution per channel on CPU).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let y = pad2d(x, self.geom.pads)?.conv2d(&self.weight, 0, self.geom.stride, 1, self.c)?;
        self.epi.apply_candle(y, x.device())
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let (_, c, h, w) = x.dims4().map_err(|_| Error::Input(format!("{}: expected NCHW input, got {:?}", self.name, x.dims())))?;
        if c != self.c {
            return Err(Error::Input(format!("{}: input has {c} channels, layer expects {}", self.name, self.c)));
        }
        self.geom.out_hw(h, w).map_err(|e| Error::Input(format!("{}: {e}", self.name)))?;
        Ok(())
    }

    /// One channel plane: the stencil summed in (ky, kx) order, then the epilogue.
    fn run_plane(&self, c: usize, src: &[f32], h: usize, w: usize, oh: usize, ow: usize, out: &mut [f32]) {
        let g = self.geom;
        let s = g.stride;
        let wk = &self.wmat[c * g.kh * g.kw..(c + 1) * g.kh * g.kw];
        out.fill(0.0);
        for ky in 0..g.kh {
            let (oy_lo, oy_hi) = Geom::valid_range(oh, h, s, ky, g.pads.top);
            for kx in 0..g.kw {
                let wv = wk[ky * g.kw + kx];
                let (ox_lo, ox_hi) = Geom::valid_range(ow, w, s, kx, g.pads.left);
                if ox_lo >= ox_hi {
                    continue;
                }
                let ix0 = ox_lo * s + kx - g.pads.left;
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky - g.pads.top;
                    let srow = &src[iy * w..(iy + 1) * w];
                    let drow = &mut out[oy * ow + ox_lo..oy * ow + ox_hi];
                    if s == 1 {
                        let len = drow.len();
                        for (d, &v) in drow.iter_mut().zip(&srow[ix0..ix0 + len]) {
                            *d += wv * v;
                        }
                    } else {
                        for (d, ix) in drow.iter_mut().zip((ix0..).step_by(s)) {
                            *d += wv * srow[ix];
                        }
                    }
                }
            }
        }
        self.epi.apply(c, out);
    }
}

impl CustomOp1 for DepthwiseConv2d {
    fn name(&self) -> &'static str {
        "facebench-depthwise-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (src, n, c, h, w) = cpu_input("depthwise_conv2d", s, l)?;
        let (oh, ow) = self.geom.out_hw(h, w).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut out = vec![0f32; n * c * oh * ow];
        // Planes are independent; chunks of planes keep rayon overhead low for small layers.
        let per = (4096 / (oh * ow).max(1)).max(1);
        out.par_chunks_mut(oh * ow * per).enumerate().for_each(|(ci, chunk)| {
            for (j, o) in chunk.chunks_exact_mut(oh * ow).enumerate() {
                let p = ci * per + j;
                self.run_plane(p % c, &src[p * h * w..(p + 1) * h * w], h, w, oh, ow, o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let y = pad2d(&x, Pads { top: 0, bottom: 1, left: 2, right: 0 }).unwrap();
        assert_eq!(y.dims(), &[1, 1, 3, 4]);
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0., 0., 1., 2., 0., 0., 3., 4., 0., 0., 0., 0.]);
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
        ];
        for (i, &(n, ci, co, h, w, k, s, p)) in cases.iter().enumerate() {
            let wts = pseudo(k * k * ci * co, i as u32);
            let conv = Conv2d::new("t", &wts, [k, k, ci, co], s, p, &dev)
                .unwrap()
                .with_bias(&pseudo(co, 10 + i as u32))
                .unwrap()
                .with_affine(&pseudo(co, 20 + i as u32), &pseudo(co, 30 + i as u32))
                .unwrap()
                .with_activation(Activation::PRelu(pseudo(co, 40 + i as u32)))
                .unwrap();
            let x = Tensor::from_vec(pseudo(n * ci * h * w, 50 + i as u32), (n, ci, h, w), &dev).unwrap();
            let a = conv.forward(&x).unwrap();
            let b = conv.forward_candle(&x).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "case {i}: {}", max_diff(&a, &b));
        }
    }

    #[test]
    fn depthwise_kernel_matches_candle_grouped_conv() {
        let dev = Device::Cpu;
        let cases = [
            (2, 5, 8, 8, 3, 2, Pads::uniform(1)),
            (3, 4, 7, 9, 3, 1, Pads::uniform(1)),
            (1, 6, 8, 8, 3, 2, Pads::same(8, 8, 3, 2)),
            (2, 3, 7, 7, 7, 1, Pads::NONE),
            (1, 2, 5, 6, 3, 2, Pads { top: 0, bottom: 2, left: 3, right: 0 }),
        ];
        for (i, &(n, c, h, w, k, s, p)) in cases.iter().enumerate() {
            let dw = DepthwiseConv2d::new("t", &pseudo(k * k * c, i as u32), [k, k, c, 1], s, p, &dev)
                .unwrap()
                .with_bias(&pseudo(c, 7 + i as u32))
                .unwrap()
                .with_activation(if i % 2 == 0 { Activation::PRelu(pseudo(c, 9)) } else { Activation::Relu })
                .unwrap();
            let x = Tensor::from_vec(pseudo(n * c * h * w, 3 + i as u32), (n, c, h, w), &dev).unwrap();
            let a = dw.forward(&x).unwrap();
            let b = dw.forward_candle(&x).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "case {i}: {}", max_diff(&a, &b));
        }
    }

    #[test]
    fn conv_matches_hand_computed_values() {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, TF SAME pads (0 before, 1 after).
        let dev = Device::Cpu;
        let conv = Conv2d::new("t", &[1., 1., 1., 1.], [2, 2, 1, 1], 1, Pads::same(3, 3, 2, 1), &dev).unwrap();
        let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 7., 8., 9.], (1, 1, 3, 3), &dev).unwrap();
        let y = conv.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![12., 16., 9., 24., 28., 15., 15., 17., 9.]);
        let prelu = DepthwiseConv2d::new("t", &[1.0], [1, 1, 1, 1], 1, Pads::NONE, &dev)
            .unwrap()
            .with_activation(Activation::PRelu(vec![0.25]))
            .unwrap();
        let x = Tensor::from_slice(&[-4f32, 2.], (1, 1, 1, 2), &dev).unwrap();
        assert_eq!(prelu.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![-1., 2.]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        assert!(Conv2d::new("c", &[0.0; 5], [1, 1, 2, 3], 1, Pads::NONE, &dev).is_err());
        let conv = Conv2d::new("c", &[0.0; 6], [1, 1, 2, 3], 1, Pads::NONE, &dev).unwrap();
        assert!(conv.clone().with_bias(&[0.0; 2]).is_err());
        let e = conv.forward(&Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &dev).unwrap()).unwrap_err();
        assert!(e.to_string().contains("3 channels"), "{e}");
        let k3 = Conv2d::new("k3", &[0.0; 9], [3, 3, 1, 1], 1, Pads::NONE, &dev).unwrap();
        assert!(k3.forward(&Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &dev).unwrap()).is_err());
    }
}
