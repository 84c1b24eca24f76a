//! The margin-loss family as logit transforms followed by softmax cross-entropy.
//!
//! All of them are "replace the target logit": compute the plain logits (linear, or cosines
//! between L2-normalised features and L2-normalised class weights), then replace the logit of
//! each sample's own class by a margin-penalised value. Doing the replacement with a mask and
//! `where_cond` keeps every step differentiable with candle's backprop.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor, D};

use crate::error::{input, LmclError};
use crate::Result;

/// Floor under `1 - cos²θ` before the square root, so that `sin θ >= 1e-6` and the gradient
/// of `sin θ` stays finite when a feature lies exactly on its class direction.
const SIN2_FLOOR: f64 = 1e-12;
/// Floor under a vector norm before dividing by it (PyTorch's `F.normalize` eps).
const NORM_FLOOR: f64 = 1e-12;

/// What ArcFace does when `θ + m` leaves `[0, π]`, where `cos(θ + m)` stops decreasing in θ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArcFallback {
    /// InsightFace with `easy_margin=False` (arcface_torch `losses.py` ArcFace, and the MXNet
    /// `train_softmax.py` it came from): use `cos(θ + m)` while `cos θ > cos(π - m)`
    /// (strictly), otherwise `cos θ - sin(π - m)·m` (= `cos θ - m·sin m`), which continues the
    /// curve with the slope it has at the switch point and keeps the target logit monotonic.
    InsightFace,
    /// InsightFace with `easy_margin=True`: `cos(θ + m)` while `cos θ > 0`, else `cos θ`.
    Easy,
    /// Plain `cos(θ + m)` everywhere (not monotonic for `θ > π - m`).
    None,
}

impl ArcFallback {
    fn name(self) -> &'static str {
        match self {
            ArcFallback::InsightFace => "insightface",
            ArcFallback::Easy => "easy",
            ArcFallback::None => "none",
        }
    }
}

/// One loss of the margin family. Shapes everywhere: `features` is `(n, d)`, `weights` holds
/// one row per class `(k, d)`, `labels` is `(n,)` u32 with values `< k`.
///
/// `cos θ_j` below is the cosine between a feature and class weight `j` (both L2-normalised),
/// `y` is the sample's label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MarginLoss {
    /// Baseline: plain linear logits `x·w_j` (no bias, no normalisation).
    Softmax,
    /// NormFace: `s cos θ_j`, no margin.
    NormFace { s: f64 },
    /// LMCL / CosFace: `s (cos θ_y - m)` on the target, `s cos θ_j` elsewhere.
    CosFace { s: f64, m: f64 },
    /// A-Softmax / SphereFace: weights normalised, features not; target logit
    /// `‖x‖ (λ cos θ_y + ψ(θ_y)) / (1 + λ)` with `ψ(θ) = (-1)^k cos(mθ) - 2k` for
    /// `θ ∈ [kπ/m, (k+1)π/m]`, other logits `‖x‖ cos θ_j`. `cos(mθ)` is the Chebyshev
    /// polynomial `T_m(cos θ)` as in the SphereFace Caffe layer; λ is the annealing weight
    /// (large at the start of training, see [`crate::SphereAnneal`]).
    SphereFace { m: u32, lambda: f64 },
    /// ArcFace: `s cos(θ_y + m)` on the target with the given [`ArcFallback`].
    ArcFace { s: f64, m: f64, fallback: ArcFallback },
    /// Combined margin (InsightFace): `s (cos(m1 θ_y + m2) - m3)` on the target, no fallback.
    /// `(1, 0, m)` is LMCL, `(1, m, 0)` is ArcFace without fallback, `(m, 0, 0)` is a
    /// SphereFace-style multiplicative margin without ψ.
    Combined { s: f64, m1: f64, m2: f64, m3: f64 },
}

impl MarginLoss {
    /// Checks the parameters (scale positive, margins finite and in their usable range).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(LmclError::Input(format!("{self}: {msg}")));
        let scale_ok = |s: f64| s.is_finite() && s > 0.0;
        match *self {
            MarginLoss::Softmax => Ok(()),
            MarginLoss::NormFace { s } if !scale_ok(s) => bad(format!("scale s = {s} must be > 0")),
            MarginLoss::NormFace { .. } => Ok(()),
            MarginLoss::CosFace { s, m } => {
                if !scale_ok(s) {
                    bad(format!("scale s = {s} must be > 0"))
                } else if !(m.is_finite() && m >= 0.0) {
                    bad(format!("margin m = {m} must be >= 0"))
                } else {
                    Ok(())
                }
            }
            MarginLoss::SphereFace { m, lambda } => {
                if m == 0 {
                    bad("margin m must be an integer >= 1".into())
                } else if !(lambda.is_finite() && lambda >= 0.0) {
                    bad(format!("lambda = {lambda} must be >= 0"))
                } else {
                    Ok(())
                }
            }
            MarginLoss::ArcFace { s, m, .. } => {
                if !scale_ok(s) {
                    bad(format!("scale s = {s} must be > 0"))
                } else if !(m.is_finite() && (0.0..PI).contains(&m)) {
                    bad(format!("margin m = {m} must be in [0, pi)"))
                } else {
                    Ok(())
                }
            }
            MarginLoss::Combined { s, m1, m2, m3 } => {
                if !scale_ok(s) {
                    bad(format!("scale s = {s} must be > 0"))
                } else if !(m1.is_finite() && m1 > 0.0) {
                    bad(format!("m1 = {m1} must be > 0"))
                } else if !(m2.is_finite() && m3.is_finite()) {
                    bad("m2 and m3 must be finite".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// True when the loss only sees the direction of a feature (everything but Softmax and
    /// SphereFace), i.e. when features should be compared by cosine.
    pub fn is_angular(&self) -> bool {
        !matches!(self, MarginLoss::Softmax | MarginLoss::SphereFace { .. })
    }

    /// The logits without any margin: what the classifier predicts at test time (`x·w_j` for
    /// Softmax, `‖x‖ cos θ_j` for SphereFace, `s cos θ_j` otherwise). Used for accuracy.
    pub fn plain_logits(&self, features: &Tensor, weights: &Tensor) -> Result<Tensor> {
        check_fw(features, weights)?;
        Ok(match *self {
            MarginLoss::Softmax => features.matmul(&weights.t()?)?,
            MarginLoss::SphereFace { .. } => features.matmul(&l2_normalize(weights)?.t()?)?,
            MarginLoss::NormFace { s }
            | MarginLoss::CosFace { s, .. }
            | MarginLoss::ArcFace { s, .. }
            | MarginLoss::Combined { s, .. } => (cosines(features, weights)? * s)?,
        })
    }

    /// The margin-penalised logits `(n, k)`, differentiable in `features` and `weights`.
    pub fn logits(&self, features: &Tensor, weights: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.validate()?;
        let k = check_all(features, weights, labels)?;
        let idx = labels.unsqueeze(1)?;
        let out = match *self {
            MarginLoss::Softmax => features.matmul(&weights.t()?)?,
            MarginLoss::NormFace { s } => (cosines(features, weights)? * s)?,
            MarginLoss::CosFace { s, m } => {
                let cos = cosines(features, weights)?;
                let target = (cos.gather(&idx, 1)? - m)?;
                (replace_target(&cos, &target, labels, k)? * s)?
            }
            MarginLoss::SphereFace { m, lambda } => {
                let wn = l2_normalize(weights)?;
                let xw = features.matmul(&wn.t()?)?; // ‖x‖ cos θ_j
                let norm = features.sqr()?.sum_keepdim(1)?.sqrt()?;
                let cy = xw.gather(&idx, 1)?.broadcast_div(&norm.maximum(NORM_FLOOR)?)?;
                let psi = sphere_psi(&cy, m)?;
                let mixed = ((cy * lambda)? + psi)?.affine(1.0 / (1.0 + lambda), 0.0)?;
                replace_target(&xw, &(mixed * norm)?, labels, k)?
            }
            MarginLoss::ArcFace { s, m, fallback } => {
                let cos = cosines(features, weights)?;
                let cy = cos.gather(&idx, 1)?;
                let phi = cos_plus(&cy, m)?;
                let target = match fallback {
                    ArcFallback::None => phi,
                    ArcFallback::InsightFace => {
                        let th = (PI - m).cos();
                        let sinmm = (PI - m).sin() * m;
                        cy.gt(th)?.where_cond(&phi, &(&cy - sinmm)?)?
                    }
                    ArcFallback::Easy => cy.gt(0.0)?.where_cond(&phi, &cy)?,
                };
                (replace_target(&cos, &target, labels, k)? * s)?
            }
            MarginLoss::Combined { s, m1, m2, m3 } => {
                let cos = cosines(features, weights)?;
                let cy = cos.gather(&idx, 1)?;
                let phi = if m1 == 1.0 {
                    // Exact trigonometric identity; avoids the arccos round trip.
                    cos_plus(&cy, m2)?
                } else {
                    acos_with_grad(&cy)?.affine(m1, m2)?.cos()?
                };
                (replace_target(&cos, &(phi - m3)?, labels, k)? * s)?
            }
        };
        Ok(out)
    }

    /// Mean softmax cross-entropy of [`MarginLoss::logits`] against `labels` (a scalar).
    pub fn loss(&self, features: &Tensor, weights: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let logits = self.logits(features, weights, labels)?;
        Ok(candle_nn::loss::cross_entropy(&logits, labels)?)
    }
}

/// Rows scaled to unit L2 norm (norms below 1e-12 are treated as 1e-12).
pub(crate) fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(NORM_FLOOR)?;
    Ok(x.broadcast_div(&norm)?)
}

/// `cos θ_j` for every sample and class, `(n, k)`.
fn cosines(features: &Tensor, weights: &Tensor) -> Result<Tensor> {
    Ok(l2_normalize(features)?.matmul(&l2_normalize(weights)?.t()?)?)
}

/// `cos(θ + m) = cos θ cos m - sin θ sin m` with `sin θ = sqrt(max(1 - cos²θ, 1e-12))`.
fn cos_plus(cy: &Tensor, m: f64) -> Result<Tensor> {
    let sin = cy.sqr()?.affine(-1.0, 1.0)?.maximum(SIN2_FLOOR)?.sqrt()?;
    Ok(((cy * m.cos())? - (sin * m.sin())?)?)
}

/// SphereFace's `ψ(θ) = (-1)^k T_m(cos θ) - 2k`, with `k = #{j in 1..m : cos θ <= cos(jπ/m)}`
/// (= floor(mθ/π) clamped to m-1, where ψ is continuous anyway). `k` carries no gradient.
fn sphere_psi(cy: &Tensor, m: u32) -> Result<Tensor> {
    // Chebyshev recursion T_{i+1} = 2c T_i - T_{i-1} gives cos(mθ) from c = cos θ.
    let mut prev = cy.ones_like()?; // T_0
    let mut cur = cy.clone();
    for _ in 1..m {
        let next = ((cy * &cur)? * 2.0)?.sub(&prev)?;
        prev = cur;
        cur = next;
    }
    let cos_m = cur;
    let c0 = cy.detach();
    let mut k = c0.zeros_like()?;
    for j in 1..m {
        let edge = (j as f64 * PI / m as f64).cos();
        k = (k + c0.le(edge)?.to_dtype(c0.dtype())?)?;
    }
    let parity = (&k - ((&k * 0.5)?.floor()? * 2.0)?)?;
    let sign = parity.affine(-2.0, 1.0)?;
    Ok(((sign * cos_m)? - (k * 2.0)?)?)
}

/// `arccos` with its true first derivative `-1/sin θ`. candle has no `acos` op, so the value
/// is computed on the host and the gradient is attached as `θ0 + slope·(c - detach(c))`,
/// whose value is exactly θ0 and whose derivative in `c` is `slope`.
fn acos_with_grad(c: &Tensor) -> Result<Tensor> {
    let c0 = c.detach();
    let host = c0.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let theta: Vec<f64> = host.iter().map(|v| v.clamp(-1.0, 1.0).acos()).collect();
    let slope: Vec<f64> = host.iter().map(|v| -1.0 / (1.0 - v * v).max(SIN2_FLOOR).sqrt()).collect();
    let to = |v: Vec<f64>| -> Result<Tensor> { Ok(Tensor::from_vec(v, c.shape(), c.device())?.to_dtype(c.dtype())?) };
    Ok(((c - &c0)?.mul(&to(slope)?)? + to(theta)?)?)
}

/// `base` with the label column of each row replaced by `target` `(n, 1)`.
fn replace_target(base: &Tensor, target: &Tensor, labels: &Tensor, k: usize) -> Result<Tensor> {
    let classes = Tensor::arange(0u32, k as u32, base.device())?.unsqueeze(0)?;
    let mask = labels.unsqueeze(1)?.broadcast_eq(&classes)?;
    Ok(mask.where_cond(&target.broadcast_as(base.shape())?, base)?)
}

fn check_fw(features: &Tensor, weights: &Tensor) -> Result<(usize, usize, usize)> {
    let (n, d) = match features.dims() {
        [n, d] => (*n, *d),
        other => return input(format!("features must be (n, d), got shape {other:?}")),
    };
    let (k, dw) = match weights.dims() {
        [k, dw] => (*k, *dw),
        other => return input(format!("class weights must be (k, d), got shape {other:?}")),
    };
    if d != dw {
        return input(format!("features have dimension {d} but class weights have {dw}"));
    }
    if !features.dtype().is_float() || features.dtype() != weights.dtype() {
        return input(format!(
            "features ({:?}) and weights ({:?}) must share one float dtype",
            features.dtype(),
            weights.dtype()
        ));
    }
    Ok((n, d, k))
}

fn check_all(features: &Tensor, weights: &Tensor, labels: &Tensor) -> Result<usize> {
    let (n, _, k) = check_fw(features, weights)?;
    if labels.dtype() != DType::U32 || labels.dims() != [n] {
        return input(format!("labels must be u32 of shape [{n}], got {:?} {:?}", labels.dtype(), labels.dims()));
    }
    if n > 0 {
        let max = labels.max(0)?.to_scalar::<u32>()? as usize;
        if max >= k {
            let row = labels.to_vec1::<u32>()?.iter().position(|&l| l as usize >= k);
            return input(format!("label {max} (row {}) is out of range for {k} classes", row.unwrap_or(0)));
        }
    }
    Ok(k)
}

impl fmt::Display for MarginLoss {
    /// The spec string accepted by `FromStr`, e.g. `cosface:s=30,m=0.35`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MarginLoss::Softmax => write!(f, "softmax"),
            MarginLoss::NormFace { s } => write!(f, "normface:s={s}"),
            MarginLoss::CosFace { s, m } => write!(f, "cosface:s={s},m={m}"),
            MarginLoss::SphereFace { m, lambda } => write!(f, "sphereface:m={m},lambda={lambda}"),
            MarginLoss::ArcFace { s, m, fallback } => {
                write!(f, "arcface:s={s},m={m},fallback={}", fallback.name())
            }
            MarginLoss::Combined { s, m1, m2, m3 } => {
                write!(f, "combined:s={s},m1={m1},m2={m2},m3={m3}")
            }
        }
    }
}

impl FromStr for MarginLoss {
    type Err = LmclError;

    /// Parses `name[:key=value,...]`: `softmax`, `normface:s=`, `cosface:s=,m=` (alias `lmcl`),
    /// `sphereface:m=[,lambda=0]` (alias `asoftmax`), `arcface:s=,m=[,fallback=insightface|easy|none]`,
    /// `combined:s=,m1=,m2=,m3=`. Numeric parameters other than `lambda` have no default.
    fn from_str(spec: &str) -> Result<Self> {
        let err = |msg: String| LmclError::LossSpec { spec: spec.to_string(), msg };
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut params: BTreeMap<&str, &str> = BTreeMap::new();
        for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| err(format!("parameter {item:?} is not key=value")))?;
            if params.insert(k.trim(), v.trim()).is_some() {
                return Err(err(format!("parameter {k:?} given twice")));
            }
        }
        let take = |key: &str| -> Result<Option<f64>> {
            match params.get(key) {
                None => Ok(None),
                Some(v) => v.parse::<f64>().map(Some).map_err(|_| err(format!("{key}={v:?} is not a number"))),
            }
        };
        let need = |v: Option<f64>, key: &str| v.ok_or_else(|| err(format!("missing {key}=")));
        let loss = match name.trim().to_ascii_lowercase().as_str() {
            "softmax" => MarginLoss::Softmax,
            "normface" => MarginLoss::NormFace { s: need(take("s")?, "s")? },
            "cosface" | "lmcl" => MarginLoss::CosFace { s: need(take("s")?, "s")?, m: need(take("m")?, "m")? },
            "sphereface" | "asoftmax" | "a-softmax" => {
                let m = need(take("m")?, "m")?;
                if m.fract() != 0.0 || !(1.0..=64.0).contains(&m) {
                    return Err(err(format!("m={m} must be an integer in 1..=64")));
                }
                MarginLoss::SphereFace { m: m as u32, lambda: take("lambda")?.unwrap_or(0.0) }
            }
            "arcface" => {
                let s = need(take("s")?, "s")?;
                let m = need(take("m")?, "m")?;
                let fallback = match params.get("fallback").copied() {
                    None | Some("insightface") => ArcFallback::InsightFace,
                    Some("easy") => ArcFallback::Easy,
                    Some("none") => ArcFallback::None,
                    Some(other) => return Err(err(format!("fallback={other:?}: expected insightface, easy or none"))),
                };
                MarginLoss::ArcFace { s, m, fallback }
            }
            "combined" => MarginLoss::Combined {
                s: need(take("s")?, "s")?,
                m1: need(take("m1")?, "m1")?,
                m2: need(take("m2")?, "m2")?,
                m3: need(take("m3")?, "m3")?,
            },
            other => {
                return Err(err(format!(
                    "unknown loss {other:?} (softmax, normface, cosface, sphereface, arcface, combined)"
                )))
            }
        };
        let used: &[&str] = match loss {
            MarginLoss::Softmax => &[],
            MarginLoss::NormFace { .. } => &["s"],
            MarginLoss::CosFace { .. } => &["s", "m"],
            MarginLoss::SphereFace { .. } => &["m", "lambda"],
            MarginLoss::ArcFace { .. } => &["s", "m", "fallback"],
            MarginLoss::Combined { .. } => &["s", "m1", "m2", "m3"],
        };
        if let Some(key) = params.keys().find(|k| !used.contains(k)) {
            return Err(err(format!("unknown parameter {key:?} for {name}")));
        }
        loss.validate().map_err(|e| err(e.to_string()))?;
        Ok(loss)
    }
}
