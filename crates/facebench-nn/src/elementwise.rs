//! Element-wise steps between layers: per-channel arithmetic and residual sums. The CPU
//! kernels stay off candle's element-wise ops, which serialise concurrent callers on one
//! spinning thread pool beside rayon's (measured ~9% of CPU time lost to spinning).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::cpu::{assume_init, cpu_f32, for_each_chunk, for_each_chunk_uninit, uninit, use_kernels};
use crate::{Error, Result};

/// `prelu(x) = max(0,x) + alpha*min(0,x)` over the last (channel) dim, with candle ops.
pub(crate) fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let zero = x.zeros_like()?;
    Ok(x.maximum(&zero)?.add(&x.minimum(&zero)?.broadcast_mul(&alpha.flatten_all()?)?)?)
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

/// `a + (b + (c + ...))` over 1 to 4 tensors of one shape, then ReLU if `relu`: residual sums
/// in TF.js's association order (the dense blocks' sums of up to four terms).
pub fn add(terms: &[&Tensor], relu: bool) -> Result<Tensor> {
    let Some(first) = terms.first() else { return Err(Error::Input("add: no terms".into())) };
    if terms.len() > 4 {
        return Err(Error::Input(format!("add: {} terms, at most 4", terms.len())));
    }
    if let Some(t) = terms.iter().find(|t| t.dims() != first.dims()) {
        return Err(Error::Input(format!("add: shapes {:?} and {:?} differ", first.dims(), t.dims())));
    }
    if !use_kernels(first) {
        let mut acc = terms[terms.len() - 1].clone();
        for t in terms[..terms.len() - 1].iter().rev() {
            acc = (*t + &acc)?;
        }
        return Ok(if relu { acc.relu()? } else { acc });
    }
    let c = |t: &Tensor| t.contiguous();
    Ok(match terms {
        [a] if relu => c(a)?.apply_op1_no_bwd(&Sum { relu })?,
        [a] => (*a).clone(),
        [a, b] => c(a)?.apply_op2_no_bwd(&c(b)?, &Sum { relu })?,
        [a, b, d] => c(a)?.apply_op3_no_bwd(&c(b)?, &c(d)?, &Sum { relu })?,
        [a, b, d, e] => {
            let de = c(d)?.apply_op2_no_bwd(&c(e)?, &Sum { relu: false })?;
            c(a)?.apply_op3_no_bwd(&c(b)?, &de, &Sum { relu })?
        }
        _ => unreachable!("1..=4 terms checked above"),
    })
}

/// The CPU kernel of [`add`].
struct Sum {
    relu: bool,
}

impl Sum {
    fn run(&self, parts: &[&[f32]], shape: &Shape) -> candle_core::Result<(CpuStorage, Shape)> {
        let len = parts[0].len();
        if parts.iter().any(|p| p.len() != len) {
            candle_core::bail!("add: terms of different sizes");
        }
        let mut out = uninit(len);
        for_each_chunk_uninit(&mut out, 16384, |i, o| {
            let at = i * 16384;
            for (j, o) in o.iter_mut().enumerate() {
                let mut acc = parts[parts.len() - 1][at + j];
                for p in parts[..parts.len() - 1].iter().rev() {
                    acc += p[at + j]; // a + b == b + a exactly: the association is what matters
                }
                *o = if self.relu { acc.max(0.0) } else { acc };
            }
        });
        // SAFETY: every element was written above.
        Ok((CpuStorage::F32(unsafe { assume_init(out) }), shape.clone()))
    }
}

impl CustomOp1 for Sum {
    fn name(&self) -> &'static str {
        "facebench-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(&[cpu_f32("relu", s, l)?], l.shape())
    }
}

impl CustomOp2 for Sum {
    fn name(&self) -> &'static str {
        "facebench-sum2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(&[cpu_f32("add", s1, l1)?, cpu_f32("add", s2, l2)?], l1.shape())
    }
}

impl CustomOp3 for Sum {
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
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(&[cpu_f32("add", s1, l1)?, cpu_f32("add", s2, l2)?, cpu_f32("add", s3, l3)?], l1.shape())
    }
}
