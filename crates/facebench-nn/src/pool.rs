//! Pooling over `k x k` windows, NHWC.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::cpu::{cpu_f32, for_each_chunk, nchw_to_nhwc, nhwc_to_nchw, use_kernels};
use crate::{Error, Result};

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
        Ok(nchw_to_nhwc(&y)?)
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
