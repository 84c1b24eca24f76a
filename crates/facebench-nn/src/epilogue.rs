//! The per-channel epilogue every layer ends with: `act((z + bias) * scale + shift [+ residual])`,
//! in that order (as TF runs the separate ops; with a residual the activation comes after the
//! add). Each step rounds as its own op did, so fusing them changes no bit.

use candle_core::{Device, Tensor};

use crate::elementwise::prelu;
use crate::{Error, Result};

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
        match &self.act {
            Activation::None => self.apply_row_then(row, res, |v| v),
            Activation::Relu => self.apply_row_then(row, res, |v| v.max(0.0)),
            Activation::Relu6 => self.apply_row_then(row, res, |v| v.clamp(0.0, 6.0)),
            Activation::PRelu(a) => {
                self.apply_row_then(row, res, |v| v);
                row.iter_mut().zip(a).for_each(|(v, a)| *v = v.max(0.0) + a * v.min(0.0));
            }
        }
    }

    /// The affine steps and the residual, then `act`, in one pass over the row.
    #[inline(always)]
    fn apply_row_then(&self, row: &mut [f32], res: Option<&[f32]>, act: impl Fn(f32) -> f32) {
        match (&self.bias, &self.affine) {
            (None, None) => {}
            (Some(b), None) => row.iter_mut().zip(b).for_each(|(v, b)| *v += b),
            (None, Some((s, t))) => row.iter_mut().zip(s.iter().zip(t)).for_each(|(v, (s, t))| *v = *v * s + t),
            (Some(b), Some((s, t))) => {
                row.iter_mut().zip(b).zip(s.iter().zip(t)).for_each(|((v, b), (s, t))| *v = (*v + b) * s + t)
            }
        }
        match res {
            Some(r) => row.iter_mut().zip(r).for_each(|(v, r)| *v = act(*v + r)),
            None => row.iter_mut().for_each(|v| *v = act(*v)),
        }
    }

    /// Rows of `c` channels each (a block of a layer's output), with the residual's matching block.
    #[inline(always)]
    pub fn apply_rows(&self, rows: &mut [f32], c: usize, res: Option<&[f32]>) {
        match res {
            Some(r) => {
                rows.chunks_exact_mut(c).zip(r.chunks_exact(c)).for_each(|(row, r)| self.apply_row(row, Some(r)))
            }
            None => rows.chunks_exact_mut(c).for_each(|row| self.apply_row(row, None)),
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
