//! Loss values against a direct f64 implementation of each paper's formula, candle gradients
//! against finite differences of that formula, and the degenerate cases of the family.

use std::f64::consts::PI;

use candle_core::{DType, Device, Tensor, Var};
use facebench_lmcl::{ArcFallback, MarginLoss};

const N: usize = 6;
const D: usize = 4;
const K: usize = 5;
/// Angle between each feature and its own class weight (radians), spread over [0, π) so that
/// every SphereFace segment k = 0..3 (m = 4) and ArcFace's fallback region (θ > π - m) occur.
const ANGLES: [f64; N] = [0.3, 1.0, 1.7, 2.4, 2.9, 0.8];
const NORMS: [f64; N] = [1.0, 2.5, 0.7, 3.0, 1.3, 5.0];
const LABELS: [usize; N] = [0, 3, 1, 4, 3, 2];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Fixed inputs: random class weights, features placed at `ANGLES` from their class weight.
fn fixture() -> (Vec<f64>, Vec<f64>) {
    let mut rng = Lcg(42);
    let w = rng.vec(K * D);
    let mut x = Vec::with_capacity(N * D);
    for i in 0..N {
        let wy = &w[LABELS[i] * D..(LABELS[i] + 1) * D];
        let wh: Vec<f64> = wy.iter().map(|v| v / norm(wy)).collect();
        let r = rng.vec(D);
        let p = dot(&r, &wh);
        let u: Vec<f64> = r.iter().zip(&wh).map(|(a, b)| a - p * b).collect();
        let un = norm(&u);
        for j in 0..D {
            x.push(NORMS[i] * (ANGLES[i].cos() * wh[j] + ANGLES[i].sin() * u[j] / un));
        }
    }
    (x, w)
}

/// The logits written straight from the papers, in f64 with `acos`/`cos` (no Chebyshev, no
/// masks): an independent implementation to check the candle one against.
fn reference_logits(loss: &MarginLoss, x: &[f64], w: &[f64], labels: &[usize]) -> Vec<f64> {
    let n = labels.len();
    let mut z = vec![0.0; n * K];
    for i in 0..n {
        let xi = &x[i * D..(i + 1) * D];
        for j in 0..K {
            let wj = &w[j * D..(j + 1) * D];
            let c = dot(xi, wj) / (norm(xi) * norm(wj));
            let is_y = j == labels[i];
            let theta = c.clamp(-1.0, 1.0).acos();
            z[i * K + j] = match *loss {
                MarginLoss::Softmax => dot(xi, wj),
                MarginLoss::NormFace { s } => s * c,
                MarginLoss::CosFace { s, m } => s * (c - if is_y { m } else { 0.0 }),
                MarginLoss::SphereFace { m, lambda } => {
                    let f = if is_y {
                        let mf = m as f64;
                        let k = ((mf * theta / PI).floor()).min(mf - 1.0);
                        let psi = (-1f64).powi(k as i32) * (mf * theta).cos() - 2.0 * k;
                        (lambda * c + psi) / (1.0 + lambda)
                    } else {
                        c
                    };
                    norm(xi) * f
                }
                MarginLoss::ArcFace { s, m, fallback } => {
                    let f = if !is_y {
                        c
                    } else {
                        match fallback {
                            ArcFallback::None => (theta + m).cos(),
                            ArcFallback::Easy if c > 0.0 => (theta + m).cos(),
                            ArcFallback::Easy => c,
                            ArcFallback::InsightFace if c > (PI - m).cos() => (theta + m).cos(),
                            ArcFallback::InsightFace => c - (PI - m).sin() * m,
                        }
                    };
                    s * f
                }
                MarginLoss::Combined { s, m1, m2, m3 } => s * if is_y { (m1 * theta + m2).cos() - m3 } else { c },
            };
        }
    }
    z
}

fn reference_loss(loss: &MarginLoss, x: &[f64], w: &[f64], labels: &[usize]) -> f64 {
    let z = reference_logits(loss, x, w, labels);
    let n = labels.len();
    (0..n)
        .map(|i| {
            let row = &z[i * K..(i + 1) * K];
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
            lse - row[labels[i]]
        })
        .sum::<f64>()
        / n as f64
}

fn tensors(x: &[f64], w: &[f64], labels: &[usize]) -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let n = labels.len();
    let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    (
        Tensor::from_slice(x, (n, D), &dev).unwrap(),
        Tensor::from_slice(w, (K, D), &dev).unwrap(),
        Tensor::from_vec(lab, n, &dev).unwrap(),
    )
}

fn all_losses() -> Vec<MarginLoss> {
    vec![
        MarginLoss::Softmax,
        MarginLoss::NormFace { s: 16.0 },
        MarginLoss::CosFace { s: 30.0, m: 0.35 },
        MarginLoss::SphereFace { m: 4, lambda: 0.0 },
        MarginLoss::SphereFace { m: 4, lambda: 5.0 },
        MarginLoss::SphereFace { m: 3, lambda: 1.5 },
        MarginLoss::SphereFace { m: 2, lambda: 0.0 },
        MarginLoss::ArcFace { s: 64.0, m: 0.5, fallback: ArcFallback::InsightFace },
        MarginLoss::ArcFace { s: 32.0, m: 0.4, fallback: ArcFallback::Easy },
        MarginLoss::ArcFace { s: 32.0, m: 0.3, fallback: ArcFallback::None },
        MarginLoss::Combined { s: 32.0, m1: 0.9, m2: 0.4, m3: 0.15 },
        MarginLoss::Combined { s: 20.0, m1: 1.0, m2: 0.3, m3: 0.2 },
        MarginLoss::Combined { s: 20.0, m1: 1.35, m2: 0.0, m3: 0.0 },
    ]
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn fixture_covers_every_branch() {
    // SphereFace m = 4 segments k = floor(4θ/π) and ArcFace m = 0.5 fallback (θ > π - 0.5).
    let ks: std::collections::BTreeSet<i64> = ANGLES.iter().map(|t| (4.0 * t / PI).floor() as i64).collect();
    assert_eq!(ks.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert!(ANGLES.iter().any(|&t| t > PI - 0.5) && ANGLES.iter().any(|&t| t < PI - 0.5));
    assert!(ANGLES.iter().any(|&t| t > PI / 2.0));
    // The fixture really has those angles.
    let (x, w) = fixture();
    for i in 0..N {
        let (xi, wy) = (&x[i * D..(i + 1) * D], &w[LABELS[i] * D..(LABELS[i] + 1) * D]);
        let c = dot(xi, wy) / (norm(xi) * norm(wy));
        assert!((c.acos() - ANGLES[i]).abs() < 1e-9);
        assert!((norm(xi) - NORMS[i]).abs() < 1e-12);
    }
}

#[test]
fn loss_values_match_the_f64_formulas() {
    let (x, w) = fixture();
    let (xt, wt, lt) = tensors(&x, &w, &LABELS);
    for loss in all_losses() {
        let logits = loss.logits(&xt, &wt, &lt).unwrap();
        assert_eq!(logits.dims(), [N, K]);
        let got: Vec<f64> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let want = reference_logits(&loss, &x, &w, &LABELS);
        assert!(max_abs_diff(&got, &want) < 1e-10, "{loss}: logits {got:?} vs {want:?}");
        let l = loss.loss(&xt, &wt, &lt).unwrap().to_scalar::<f64>().unwrap();
        let r = reference_loss(&loss, &x, &w, &LABELS);
        assert!((l - r).abs() < 1e-10 * r.abs().max(1.0), "{loss}: loss {l} vs {r}");
    }
}

#[test]
fn f32_logits_agree_with_f64() {
    let (x, w) = fixture();
    let (xt, wt, lt) = tensors(&x, &w, &LABELS);
    let (x32, w32) = (xt.to_dtype(DType::F32).unwrap(), wt.to_dtype(DType::F32).unwrap());
    for loss in all_losses() {
        let a: Vec<f32> = loss.logits(&x32, &w32, &lt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b = reference_logits(&loss, &x, &w, &LABELS);
        let a: Vec<f64> = a.into_iter().map(f64::from).collect();
        // f32 cosines carry ~1e-7 error; s up to 64 and acos slopes scale it.
        assert!(max_abs_diff(&a, &b) < 2e-4, "{loss}: {a:?} vs {b:?}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (x, w) = fixture();
    let dev = Device::Cpu;
    let (_, _, lt) = tensors(&x, &w, &LABELS);
    let h = 1e-6;
    for loss in all_losses() {
        let xv = Var::from_tensor(&Tensor::from_slice(&x, (N, D), &dev).unwrap()).unwrap();
        let wv = Var::from_tensor(&Tensor::from_slice(&w, (K, D), &dev).unwrap()).unwrap();
        let l = loss.loss(xv.as_tensor(), wv.as_tensor(), &lt).unwrap();
        let grads = l.backward().unwrap();
        for (name, var, base, is_x) in [("features", &xv, &x, true), ("weights", &wv, &w, false)] {
            let g: Vec<f64> = grads.get(var).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for (e, &ge) in g.iter().enumerate() {
                let mut plus = base.clone();
                let mut minus = base.clone();
                plus[e] += h;
                minus[e] -= h;
                let f = |v: &Vec<f64>| {
                    if is_x {
                        reference_loss(&loss, v, &w, &LABELS)
                    } else {
                        reference_loss(&loss, &x, v, &LABELS)
                    }
                };
                let fd = (f(&plus) - f(&minus)) / (2.0 * h);
                let tol = 1e-6 * (1.0 + fd.abs());
                assert!((ge - fd).abs() < tol, "{loss}: d/d{name}[{e}] autograd {ge} vs fd {fd}");
            }
        }
    }
}

fn logits_of(loss: MarginLoss) -> Vec<f64> {
    let (x, w) = fixture();
    let (xt, wt, lt) = tensors(&x, &w, &LABELS);
    loss.logits(&xt, &wt, &lt).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn zero_margin_cosface_is_normface() {
    let a = logits_of(MarginLoss::CosFace { s: 30.0, m: 0.0 });
    let b = logits_of(MarginLoss::NormFace { s: 30.0 });
    assert!(max_abs_diff(&a, &b) < 1e-12);
    let c = logits_of(MarginLoss::CosFace { s: 30.0, m: 0.2 });
    assert!(max_abs_diff(&c, &b) > 1.0, "a margin must change the logits");
}

#[test]
fn zero_margin_arcface_and_combined_are_normface() {
    let nf = logits_of(MarginLoss::NormFace { s: 30.0 });
    for fallback in [ArcFallback::InsightFace, ArcFallback::Easy, ArcFallback::None] {
        let a = logits_of(MarginLoss::ArcFace { s: 30.0, m: 0.0, fallback });
        assert!(max_abs_diff(&a, &nf) < 1e-9, "{fallback:?}");
    }
    let c = logits_of(MarginLoss::Combined { s: 30.0, m1: 1.0, m2: 0.0, m3: 0.0 });
    assert!(max_abs_diff(&c, &nf) < 1e-12);
}

#[test]
fn combined_one_zero_m_is_cosface() {
    for m in [0.1, 0.35] {
        let a = logits_of(MarginLoss::Combined { s: 64.0, m1: 1.0, m2: 0.0, m3: m });
        let b = logits_of(MarginLoss::CosFace { s: 64.0, m });
        assert!(max_abs_diff(&a, &b) < 1e-12, "m = {m}");
    }
}

#[test]
fn combined_one_m_zero_is_arcface_where_no_fallback_applies() {
    let m = 0.5;
    let comb = logits_of(MarginLoss::Combined { s: 64.0, m1: 1.0, m2: m, m3: 0.0 });
    let plain = logits_of(MarginLoss::ArcFace { s: 64.0, m, fallback: ArcFallback::None });
    assert!(max_abs_diff(&comb, &plain) < 1e-12);
    let insight = logits_of(MarginLoss::ArcFace { s: 64.0, m, fallback: ArcFallback::InsightFace });
    for i in 0..N {
        let (a, b) = (&comb[i * K..(i + 1) * K], &insight[i * K..(i + 1) * K]);
        if ANGLES[i] + m <= PI {
            assert!(max_abs_diff(a, b) < 1e-12, "row {i}");
        } else {
            // θ + m > π: InsightFace's fallback replaces cos(θ + m).
            assert!(max_abs_diff(a, b) > 0.1, "row {i} should use the fallback");
        }
    }
}

#[test]
fn sphereface_m1_is_softmax_on_normalised_weights() {
    let (x, w) = fixture();
    let wn: Vec<f64> = w
        .chunks(D)
        .flat_map(|r| {
            let n = norm(r);
            r.iter().map(move |v| v / n)
        })
        .collect();
    let (xt, wt, lt) = tensors(&x, &w, &LABELS);
    let (_, wnt, _) = tensors(&x, &wn, &LABELS);
    let a: Vec<f64> = MarginLoss::SphereFace { m: 1, lambda: 0.0 }
        .logits(&xt, &wt, &lt)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f64> = MarginLoss::Softmax.logits(&xt, &wnt, &lt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-12);
}

/// Target logit as a function of θ for unit features in 2-D with class weight (1, 0).
fn target_curve(loss: MarginLoss, thetas: &[f64]) -> Vec<f64> {
    let dev = Device::Cpu;
    let x: Vec<f64> = thetas.iter().flat_map(|t| [t.cos(), t.sin()]).collect();
    let xt = Tensor::from_vec(x, (thetas.len(), 2), &dev).unwrap();
    let wt = Tensor::new(&[[1.0f64, 0.0], [0.0, 1.0]], &dev).unwrap();
    let lt = Tensor::from_vec(vec![0u32; thetas.len()], thetas.len(), &dev).unwrap();
    let z: Vec<Vec<f64>> = loss.logits(&xt, &wt, &lt).unwrap().to_vec2().unwrap();
    z.into_iter().map(|r| r[0]).collect()
}

#[test]
fn sphereface_psi_is_continuous_and_decreasing() {
    let thetas: Vec<f64> = (0..=2000).map(|i| i as f64 * PI / 2000.0).collect();
    for m in 1..=4 {
        let z = target_curve(MarginLoss::SphereFace { m, lambda: 0.0 }, &thetas);
        for i in 1..z.len() {
            assert!(z[i] <= z[i - 1] + 1e-12, "m={m}: ψ rises at θ={}", thetas[i]);
            assert!(z[i - 1] - z[i] < 0.01, "m={m}: ψ jumps at θ={}", thetas[i]);
        }
        assert!((z[0] - 1.0).abs() < 1e-12);
        assert!((z[z.len() - 1] - (1.0 - 2.0 * m as f64)).abs() < 1e-9, "ψ(π) = 1 - 2m");
    }
}

#[test]
fn arcface_insightface_fallback_keeps_the_target_logit_monotonic() {
    let m = 0.5;
    let thetas: Vec<f64> = (0..=2000).map(|i| i as f64 * PI / 2000.0).collect();
    let mono = |z: &[f64]| z.windows(2).all(|p| p[1] <= p[0] + 1e-12);
    let fb = target_curve(MarginLoss::ArcFace { s: 1.0, m, fallback: ArcFallback::InsightFace }, &thetas);
    assert!(mono(&fb));
    let none = target_curve(MarginLoss::ArcFace { s: 1.0, m, fallback: ArcFallback::None }, &thetas);
    assert!(!mono(&none), "plain cos(θ+m) rises again past π - m");
    // At the switch θ = π - m the rule steps from cos(π) = -1 down to -cos m - m·sin m;
    // the step between neighbouring grid points must be exactly the formula's.
    let i = thetas.iter().position(|&t| t > PI - m).unwrap();
    let jump = fb[i - 1] - fb[i];
    let want = (thetas[i - 1] + m).cos() - (thetas[i].cos() - (PI - m).sin() * m);
    assert!((jump - want).abs() < 1e-12);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (x, w) = fixture();
    let (xt, wt, _) = tensors(&x, &w, &LABELS);
    let loss = MarginLoss::CosFace { s: 30.0, m: 0.35 };
    let dev = Device::Cpu;
    let bad_label = Tensor::new(&[0u32, 1, 2, 9, 0, 0], &dev).unwrap();
    let e = loss.logits(&xt, &wt, &bad_label).unwrap_err().to_string();
    assert!(e.contains("label 9") && e.contains("row 3"), "{e}");
    let short = Tensor::new(&[0u32, 1], &dev).unwrap();
    assert!(loss.logits(&xt, &wt, &short).is_err());
    let i64_labels = Tensor::new(&[0i64, 1, 2, 3, 0, 0], &dev).unwrap();
    assert!(loss.logits(&xt, &wt, &i64_labels).is_err());
    let w3 = wt.narrow(1, 0, 3).unwrap();
    let e = loss.logits(&xt, &w3, &bad_label).unwrap_err().to_string();
    assert!(e.contains("dimension 4") && e.contains("have 3"), "{e}");
    let bad = MarginLoss::CosFace { s: -1.0, m: 0.35 };
    assert!(bad.loss(&xt, &wt, &short).is_err());
    assert!(MarginLoss::SphereFace { m: 0, lambda: 0.0 }.validate().is_err());
    assert!(MarginLoss::ArcFace { s: 64.0, m: 4.0, fallback: ArcFallback::None }.validate().is_err());
}

#[test]
fn specs_parse_and_round_trip() {
    for loss in all_losses() {
        let back: MarginLoss = loss.to_string().parse().unwrap();
        assert_eq!(back, loss);
    }
    assert_eq!("lmcl:s=64,m=0.35".parse::<MarginLoss>().unwrap(), MarginLoss::CosFace { s: 64.0, m: 0.35 });
    assert_eq!(
        "arcface:s=64,m=0.5".parse::<MarginLoss>().unwrap(),
        MarginLoss::ArcFace { s: 64.0, m: 0.5, fallback: ArcFallback::InsightFace }
    );
    assert_eq!("asoftmax:m=4".parse::<MarginLoss>().unwrap(), MarginLoss::SphereFace { m: 4, lambda: 0.0 });
    for (bad, why) in [
        ("cosface:s=64", "missing m"),
        ("cosface:s=64,m=x", "not a number"),
        ("cosface:s=64,m=0.3,q=1", "unknown parameter"),
        ("cosface:s=64,s=3,m=0.3", "twice"),
        ("sphereface:m=2.5", "integer"),
        ("arcface:s=64,m=0.5,fallback=magic", "fallback"),
        ("triplet", "unknown loss"),
        ("normface:s=0", "must be > 0"),
    ] {
        let e = bad.parse::<MarginLoss>().unwrap_err().to_string();
        assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
    }
}
