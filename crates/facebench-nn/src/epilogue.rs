//! The per-channel epilogue every layer ends with: `act((z + bias) * scale + shift [+ residual])`,
//! in that order (as TF runs the separate ops; with a residual the activation comes after the
//! add). Each step rounds as its own op did, so fusing them changes no bit.

use candle_core::{Device, Tensor};

use crate::elementwise::prelu;
use crate::{Error, Result};

/// Channels per step of the row epilogue: one AVX-512 vector, two AVX2 ones. A fixed width
/// inlined into each vector level's kernel: an open loop gets auto-vectorised 64 wide under
/// AVX-512, which leaves 32-channel rows to its scalar tail.
const LANES: usize = 16;

/// `v[c0..c0 + N]` as an array.
#[inline(always)]
fn lanes<const N: usize>(v: &[f32], c0: usize) -> &[f32; N] {
    v[c0..c0 + N].try_into().expect("N floats")
}

#[inline(always)]
fn lanes_mut<const N: usize>(v: &mut [f32], c0: usize) -> &mut [f32; N] {
    (&mut v[c0..c0 + N]).try_into().expect("N floats")
}

/// A layer's per-channel epilogue parameters, each cut to its `c` channels.
struct RowParams<'a> {
    bias: Option<&'a [f32]>,
    affine: Option<(&'a [f32], &'a [f32])>,
    alpha: Option<&'a [f32]>,
}

impl RowParams<'_> {
    /// One row of `c` channels: [`LANES`] channels a step, then channel by channel for the rest.
    #[inline(always)]
    fn apply_row(&self, row: &mut [f32], res: Option<&[f32]>, act: impl Fn(f32) -> f32) {
        let n = row.len();
        let mut c0 = 0;
        while c0 + LANES <= n {
            self.apply::<LANES>(lanes_mut(row, c0), c0, res.map(|r| lanes::<LANES>(r, c0)), &act);
            c0 += LANES;
        }
        while c0 < n {
            self.apply::<1>(lanes_mut(row, c0), c0, res.map(|r| lanes::<1>(r, c0)), &act);
            c0 += 1;
        }
    }

    /// Channels `c0..c0 + N`: bias, affine, residual, `act`, PReLU, each rounded as its own op,
    /// on a copy in registers (stored once, not after each step).
    #[inline(always)]
    fn apply<const N: usize>(&self, out: &mut [f32; N], c0: usize, res: Option<&[f32; N]>, act: impl Fn(f32) -> f32) {
        let mut v = *out;
        if let Some(b) = self.bias {
            let b = lanes::<N>(b, c0);
            for i in 0..N {
                v[i] += b[i];
            }
        }
        if let Some((s, t)) = self.affine {
            let (s, t) = (lanes::<N>(s, c0), lanes::<N>(t, c0));
            for i in 0..N {
                v[i] = v[i] * s[i] + t[i];
            }
        }
        if let Some(r) = res {
            for i in 0..N {
                v[i] += r[i];
            }
        }
        for v in &mut v {
            *v = act(*v);
        }
        if let Some(a) = self.alpha {
            let a = lanes::<N>(a, c0);
            for i in 0..N {
                v[i] = v[i].max(0.0) + a[i] * v[i].min(0.0);
            }
        }
        *out = v;
    }
}

/// Activation applied last in a layer's epilogue.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    /// `clipByValue(x, 0, 6)`, MobileNet's activation.
    Relu6,
    /// `max(0,z) + alpha[c] * min(0,z)`, one slope per channel.
    PRelu(Vec<f32>),
}

#[derive(Debug, Clone)]
pub(crate) struct Epilogue {
    bias: Option<Vec<f32>>,
    affine: Option<(Vec<f32>, Vec<f32>)>,
    act: Activation,
    /// The same parameters as tensors on the layer's device, for the candle path:
    /// [bias, scale, shift, prelu alpha].
    tensors: [Option<Tensor>; 4],
}

impl Epilogue {
    pub fn new() -> Self {
        Epilogue { bias: None, affine: None, act: Activation::None, tensors: [None, None, None, None] }
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    pub fn act(&self) -> &Activation {
        &self.act
    }

    pub fn has_affine(&self) -> bool {
        self.affine.is_some()
    }

    pub fn set_bias(&mut self, layer: &str, c: usize, bias: &[f32], device: &Device) -> Result<()> {
        self.bias = Some(bias.to_vec());
        self.finish(layer, c, device)
    }

    pub fn set_affine(&mut self, layer: &str, c: usize, scale: &[f32], shift: &[f32], device: &Device) -> Result<()> {
        self.affine = Some((scale.to_vec(), shift.to_vec()));
        self.finish(layer, c, device)
    }

    pub fn set_act(&mut self, layer: &str, c: usize, act: Activation, device: &Device) -> Result<()> {
        self.act = act;
        self.finish(layer, c, device)
    }

    /// One row of `c` channels; `res` (same length) is added before the activation.
    #[inline(always)]
    pub fn apply_row(&self, row: &mut [f32], res: Option<&[f32]>) {
        self.apply_rows(row, row.len(), res)
    }

    /// Rows of `c` channels each (a block of a layer's output), with the residual's matching block.
    #[inline(always)]
    pub fn apply_rows(&self, rows: &mut [f32], c: usize, res: Option<&[f32]>) {
        match &self.act {
            Activation::None => self.apply_rows_then(rows, c, res, None, |v| v),
            Activation::Relu => self.apply_rows_then(rows, c, res, None, |v| v.max(0.0)),
            Activation::Relu6 => self.apply_rows_then(rows, c, res, None, |v| v.clamp(0.0, 6.0)),
            Activation::PRelu(a) => self.apply_rows_then(rows, c, res, Some(a), |v| v),
        }
    }

    /// The affine steps, the residual, `act` and then the PReLU of slopes `alpha`, one pass per
    /// row. The activation is picked and every parameter cut to `c` once per call, not per row
    /// (the detector's early layers have 32-channel rows: two steps of work each).
    #[inline(always)]
    fn apply_rows_then(
        &self,
        rows: &mut [f32],
        c: usize,
        res: Option<&[f32]>,
        alpha: Option<&[f32]>,
        act: impl Fn(f32) -> f32,
    ) {
        let p = RowParams {
            bias: self.bias.as_deref().map(|b| &b[..c]),
            affine: self.affine.as_ref().map(|(s, t)| (&s[..c], &t[..c])),
            alpha: alpha.map(|a| &a[..c]),
        };
        match res {
            Some(r) => {
                for (row, r) in rows.chunks_exact_mut(c).zip(r.chunks_exact(c)) {
                    p.apply_row(row, Some(r), &act);
                }
            }
            None => {
                for row in rows.chunks_exact_mut(c) {
                    p.apply_row(row, None, &act);
                }
            }
        }
    }

    pub fn apply_candle(&self, mut y: Tensor, res: Option<&Tensor>) -> Result<Tensor> {
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
            (Activation::Relu6, _) => y.clamp(0f32, 6f32)?,
            (Activation::PRelu(_), Some(a)) => prelu(&y, a)?,
            _ => y,
        })
    }

    /// Checks every per-channel parameter has `c` values and uploads them to `device`.
    fn finish(&mut self, layer: &str, c: usize, device: &Device) -> Result<()> {
        let alpha = match &self.act {
            Activation::PRelu(a) => Some(a),
            _ => None,
        };
        let params =
            [self.bias.as_ref(), self.affine.as_ref().map(|a| &a.0), self.affine.as_ref().map(|a| &a.1), alpha];
        if let Some(l) = params.iter().flatten().map(|v| v.len()).find(|&l| l != c) {
            return Err(Error::Input(format!("{layer}: per-channel parameter of length {l}, layer has {c} channels")));
        }
        let mut tensors = [None, None, None, None];
        for (t, v) in tensors.iter_mut().zip(params) {
            *t = v.map(|v| Tensor::from_slice(v, v.len(), device)).transpose()?;
        }
        self.tensors = tensors;
        Ok(())
    }
}

crate::simd::simd_kernel! {
    /// [`Epilogue::apply_rows`] for the CPU's vector level.
    pub(crate) fn apply_rows_best(e: &Epilogue, rows: &mut [f32], c: usize, res: Option<&[f32]>) => apply_rows_body;
}

#[inline(always)]
fn apply_rows_body(e: &Epilogue, rows: &mut [f32], c: usize, res: Option<&[f32]>) {
    e.apply_rows(rows, c, res)
}
