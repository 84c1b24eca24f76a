//! The CPU kernels against candle's own ops, a naive convolution and hand-computed values.

use candle_core::{DType, Device, Tensor};

use crate::elementwise::prelu;
use crate::pad::Window;
use crate::*;

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

fn pattern(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 500.0) - 1.0).collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tdiff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    max_diff(&flat(a), &flat(b))
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
        (2, 4, 3, 5, 5, 1, 1, Pads { top: 0, bottom: 1, left: 0, right: 2 }),
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
        assert!(tdiff(&a, &b) < 1e-5, "case {i}: {}", tdiff(&a, &b));
        // fused residual = candle conv, then add, then activation
        let r = Tensor::from_vec(pseudo(a.elem_count(), 60 + i), a.dims(), &dev).unwrap();
        let fused = conv.forward_residual(&x, &r).unwrap();
        let plain = conv.clone().with_activation(Activation::None).unwrap().forward_candle(&x).unwrap();
        let z = (plain + &r).unwrap();
        let alpha = Tensor::from_vec(pseudo(co, 40 + i), co, &dev).unwrap();
        assert!(tdiff(&fused, &prelu(&z, &alpha).unwrap()) < 1e-5, "residual case {i}");
    }
}

#[test]
fn depthwise_kernel_matches_candle_grouped_conv() {
    let dev = Device::Cpu;
    let cases = [
        (2, 5, 8, 8, 3, 2, Pads::uniform(1)),
        (3, 4, 7, 9, 3, 1, Pads::uniform(1)),
        // multiples of 32 channels take the register-blocked four-pixel path
        (2, 32, 8, 8, 3, 2, Pads::uniform(1)),
        (1, 64, 9, 10, 3, 1, Pads::uniform(1)),
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
        assert!(tdiff(&a, &b) < 1e-5, "case {i}: {}", tdiff(&a, &b));
    }
}

#[test]
fn pools_match_candle() {
    let dev = Device::Cpu;
    for (n, h, w, c) in [(2, 7, 7, 3), (1, 8, 5, 4), (3, 35, 35, 2)] {
        let x = Tensor::from_vec(pseudo(n * h * w * c, h as u32), (n, h, w, c), &dev).unwrap();
        for p in [Pool::Max { k: 3, s: 2 }, Pool::Avg { k: 2, s: 2 }] {
            let (a, b) = (p.forward(&x).unwrap(), p.forward_candle(&x).unwrap());
            assert!(tdiff(&a, &b) < 1e-6, "{p:?} {h}x{w}");
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
        let a = add(&[&x, &y], relu).unwrap();
        let b = with_candle_ops(|| add(&[&x, &y], relu)).unwrap();
        assert_eq!(flat(&a), flat(&b));
    }
    assert_eq!(flat(&add(&[&x, &y], true).unwrap()).iter().filter(|v| **v < 0.0).count(), 0);
    assert!(add(&[&x, &y.narrow(0, 0, 1).unwrap()], false).is_err());
}

#[test]
fn residual_sums_keep_tfjs_association() {
    let dev = Device::Cpu;
    let t = |seed| Tensor::from_vec(pattern(2 * 3 * 70000, seed), (2, 3, 70000), &dev).unwrap();
    let (a, b, c, d) = (t(1), t(2), t(3), t(4));
    let got = flat(&add(&[&a, &b, &c, &d], true).unwrap());
    let want = flat(&(&a + (&b + (&c + &d).unwrap()).unwrap()).unwrap().relu().unwrap());
    assert_eq!(got, want);
    assert!(got.contains(&0.0) && got.iter().any(|&v| v > 0.0));
    assert_eq!(flat(&add(&[&a, &b], false).unwrap()), flat(&(&a + &b).unwrap()));
    assert_eq!(flat(&add(&[&a], true).unwrap()), flat(&a.relu().unwrap()));
    assert!(add(&[], true).is_err());
}

#[test]
fn conv_matches_hand_computed_values() {
    // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, TF SAME pads (0 before, 1 after).
    let dev = Device::Cpu;
    let conv = Conv2d::new("t", &[1., 1., 1., 1.], [2, 2, 1, 1], 1, Pads::same(3, 3, 2, 1), &dev).unwrap();
    let x = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6., 7., 8., 9.], (1, 3, 3, 1), &dev).unwrap();
    assert_eq!(flat(&conv.forward(&x).unwrap()), vec![12., 16., 9., 24., 28., 15., 15., 17., 9.]);
    let same = Conv2d::new("t", &[1., 1., 1., 1.], [2, 2, 1, 1], 1, Padding::Same, &dev).unwrap();
    assert_eq!(flat(&same.forward(&x).unwrap()), vec![12., 16., 9., 24., 28., 15., 15., 17., 9.]);
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

/// Direct (naive) SAME convolution on NHWC data, the definition the kernels must match: taps
/// in (ky, kx) order from 0, skipping padding, input channels in order.
fn naive_conv(
    x: &[f32],
    dims: (usize, usize, usize, usize),
    w: &[f32],
    k: usize,
    cout: usize,
    s: usize,
    depthwise: bool,
) -> Vec<f32> {
    let win = Window::new(dims, k, s, Padding::Same).unwrap();
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
                            let Some(p) = win.tap(b, oy, ox, ky, kx) else { continue };
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

fn relu6_conv(w: &[f32], k: usize, s: usize, cin: usize, cout: usize, bias: &[f32]) -> Conv2d {
    Conv2d::new("t", w, [k, k, cin, cout], s, Padding::Same, &Device::Cpu)
        .unwrap()
        .with_bias(bias)
        .unwrap()
        .with_activation(Activation::Relu6)
        .unwrap()
}

fn bn_depthwise(w: &[f32], c: usize, s: usize, scale: &[f32], shift: &[f32]) -> DepthwiseConv2d {
    DepthwiseConv2d::new("t", w, [3, 3, c, 1], s, Padding::Same, &Device::Cpu)
        .unwrap()
        .with_affine(scale, shift)
        .unwrap()
        .with_activation(Activation::Relu6)
        .unwrap()
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
        let conv = relu6_conv(&w3, 3, s, 3, 64, &bias).with_direct_thin_input();
        let mut want = naive_conv(&x3, dims3, &w3, 3, 64, s, false);
        for (i, v) in want.iter_mut().enumerate() {
            *v = (*v + bias[i % 64]).clamp(0.0, 6.0);
        }
        let t3 = Tensor::from_slice(&x3, dims3, &dev).unwrap();
        assert_eq!(flat(&conv.forward(&t3).unwrap()), want, "blocked direct conv s{s}");
        assert!(tdiff(&conv.forward(&t3).unwrap(), &conv.forward_candle(&t3).unwrap()) < 1e-4);

        // depthwise on 64 channels (four-pixel groups) and 64 + 8 (a 32-block remainder:
        // single pixels), with BN epilogue
        for c in [64usize, 72] {
            let dims = (2, 11, 14, c);
            let x = pattern(2 * 11 * 14 * c, 9);
            let xt = Tensor::from_slice(&x, dims, &dev).unwrap();
            let wd = pattern(9 * c, 10);
            let scale: Vec<f32> = (0..c).map(|i| 0.5 + (i % 4) as f32).collect();
            let shift: Vec<f32> = (0..c).map(|i| (i % 5) as f32 - 2.0).collect();
            let dw = bn_depthwise(&wd, c, s, &scale, &shift);
            let mut want_dw = naive_conv(&x, dims, &wd, 3, c, s, true);
            for (i, v) in want_dw.iter_mut().enumerate() {
                *v = (*v * scale[i % c] + shift[i % c]).clamp(0.0, 6.0);
            }
            assert_eq!(flat(&dw.forward(&xt).unwrap()), want_dw, "blocked depthwise s{s}");
            assert!(max_diff(&flat(&dw.forward_candle(&xt).unwrap()), &want_dw) < 1e-4, "candle depthwise s{s}");
            assert!(want_dw.iter().any(|&v| v > 0.0 && v < 6.0), "test input must exercise the epilogue");

            // depthwise + pointwise as one kernel, 72 -> 40 channels
            let wp = pattern(c * 40, 11);
            let pb: Vec<f32> = (0..40).map(|i| i as f32 * 0.05).collect();
            let pw = relu6_conv(&wp, 1, 1, c, 40, &pb);
            let (n, ho, wo) = (2, 11usize.div_ceil(s), 14usize.div_ceil(s));
            let mut want = naive_conv(&want_dw, (n, ho, wo, c), &wp, 1, 40, 1, false);
            for (i, v) in want.iter_mut().enumerate() {
                *v = (*v + pb[i % 40]).clamp(0.0, 6.0);
            }
            let got = flat(&fused::separable(&dw, &pw, &xt).unwrap());
            assert!(max_diff(&got, &want) < 1e-4, "fused depthwise + pointwise s{s}");
            assert_eq!(got, flat(&pw.forward(&dw.forward(&xt).unwrap()).unwrap()), "fused = layer by layer s{s}");

            // 3x3 convolution on 72 channels through im2col chunks
            let wk = pattern(9 * c * 24, 12);
            let conv = Conv2d::new("t", &wk, [3, 3, c, 24], s, Padding::Same, &dev).unwrap();
            let want = naive_conv(&x, dims, &wk, 3, 24, s, false);
            assert!(max_diff(&flat(&conv.forward(&xt).unwrap()), &want) < 1e-3, "im2col conv s{s}");
        }
    }
    let x = pattern(3 * 5 * 64, 13);
    let w = pattern(64 * 16, 14);
    let conv = Conv2d::new("t", &w, [1, 1, 64, 16], 1, Padding::Same, &dev).unwrap().with_bias(&[0.5; 16]).unwrap();
    let mut want = naive_conv(&x, (1, 3, 5, 64), &w, 1, 16, 1, false);
    want.iter_mut().for_each(|v| *v += 0.5);
    let got = flat(&conv.forward(&Tensor::from_slice(&x, (1, 3, 5, 64), &dev).unwrap()).unwrap());
    assert!(max_diff(&got, &want) < 1e-4, "1x1 conv");
}

/// Stacked convolutions compute their parts side by side.
#[test]
fn concatenated_outputs_are_the_parts_side_by_side() {
    let dev = Device::Cpu;
    let part = |co: usize, seed: u32| {
        Conv2d::new("p", &pseudo(8 * co, seed), [1, 1, 8, co], 1, Padding::Same, &dev)
            .unwrap()
            .with_bias(&pseudo(co, seed + 1))
            .unwrap()
    };
    let (a, b) = (part(12, 1), part(9, 3));
    let both = Conv2d::concat_outputs("ab", &[a.clone(), b.clone()]).unwrap();
    let x = Tensor::from_vec(pseudo(2 * 4 * 5 * 8, 5), (2, 4, 5, 8), &dev).unwrap();
    let want = Tensor::cat(&[a.forward(&x).unwrap(), b.forward(&x).unwrap()], 3).unwrap();
    assert_eq!(flat(&both.forward(&x).unwrap()), flat(&want));
    assert!(Conv2d::concat_outputs("ab", &[a.with_activation(Activation::Relu).unwrap(), b]).is_err());
}

/// The row-streaming stem (thin conv, then one to three separable layers) gives exactly what
/// the layers give one by one, on odd sizes where chunks and padding meet.
#[test]
fn stem_streams_rows_exactly_as_layer_by_layer() {
    let dev = Device::Cpu;
    // Wide enough for several row chunks per image (odd sizes: partial last chunks).
    let (n, h, w) = (2, 199, 601);
    let x = Tensor::from_vec(pattern(n * h * w * 3, 21), (n, h, w, 3), &dev).unwrap();
    let dwl = |c: usize, s: usize, seed: usize| {
        let scale: Vec<f32> = pattern(c, seed + 1).iter().map(|v| v + 1.5).collect();
        bn_depthwise(&pattern(9 * c, seed), c, s, &scale, &pattern(c, seed + 2))
    };
    let pwl = |cin: usize, cout: usize, seed: usize| {
        relu6_conv(&pattern(cin * cout, seed), 1, 1, cin, cout, &pattern(cout, seed + 1))
    };
    let pre = relu6_conv(&pattern(27 * 32, 22), 3, 2, 3, 32, &pattern(32, 23)).with_direct_thin_input();
    let (dw1, pw1) = (dwl(32, 1, 24), pwl(32, 64, 27));
    let (dw2, pw2) = (dwl(64, 2, 28), pwl(64, 40, 31));
    let (dw3, pw3) = (dwl(40, 1, 32), pwl(40, 32, 35));
    let y1 = fused::separable(&dw1, &pw1, &pre.forward(&x).unwrap()).unwrap();
    let y2 = fused::separable(&dw2, &pw2, &y1).unwrap();
    let y3 = fused::separable(&dw3, &pw3, &y2).unwrap();
    let s1 = fused::stem(&pre, &dw1, &pw1, &[], &x).unwrap();
    let s2 = fused::stem(&pre, &dw1, &pw1, &[(&dw2, &pw2)], &x).unwrap();
    // three separable layers: the third (stride 1) reads the second's rows
    let s3 = fused::stem(&pre, &dw1, &pw1, &[(&dw2, &pw2), (&dw3, &pw3)], &x).unwrap();
    assert_eq!(s1.dims(), y1.dims());
    assert_eq!(s2.dims(), &[n, 50, 151, 40]);
    assert!(flat(&y2).iter().any(|&a| a > 0.0 && a < 6.0), "the test must exercise the epilogue");
    assert_eq!(flat(&s1), flat(&y1));
    assert_eq!(flat(&s2), flat(&y2));
    assert_eq!(flat(&s3), flat(&y3));
    // off the kernels the stem runs layer by layer on candle's ops
    let small = x.narrow(1, 0, 17).unwrap().narrow(2, 0, 23).unwrap();
    let k = fused::stem(&pre, &dw1, &pw1, &[(&dw2, &pw2)], &small).unwrap();
    let c = with_candle_ops(|| fused::stem(&pre, &dw1, &pw1, &[(&dw2, &pw2)], &small)).unwrap();
    assert!(tdiff(&k, &c) < 1e-3, "stem vs candle: {}", tdiff(&k, &c));
}

/// The epilogue, in blocks of lanes with a channel-by-channel tail, at every vector level, rounds
/// each step as the per-element definition does: bias, affine, residual, then the activation.
#[test]
fn epilogue_blocks_match_per_element_steps() {
    use crate::epilogue::{apply_rows_best, Epilogue};
    let dev = Device::Cpu;
    for (i, c) in [1usize, 7, 16, 17, 32, 40, 136].into_iter().enumerate() {
        let seed = 10 * i as u32;
        let (b, s, t, a) = (pseudo(c, seed), pseudo(c, seed + 1), pseudo(c, seed + 2), pseudo(c, seed + 3));
        let z: Vec<f32> = pseudo(5 * c, seed + 4).iter().map(|v| 8.0 * v).collect();
        let r = pseudo(5 * c, seed + 5);
        let acts = [Activation::None, Activation::Relu, Activation::Relu6, Activation::PRelu(a.clone())];
        for (bias, affine, res, act) in (0..32).map(|m| (m & 1 != 0, m & 2 != 0, m & 4 != 0, &acts[m >> 3])) {
            let mut e = Epilogue::new();
            if bias {
                e.set_bias("t", c, &b, &dev).unwrap();
            }
            if affine {
                e.set_affine("t", c, &s, &t, &dev).unwrap();
            }
            e.set_act("t", c, act.clone(), &dev).unwrap();
            let want: Vec<f32> = z
                .iter()
                .enumerate()
                .map(|(j, &z)| {
                    let ch = j % c;
                    let mut v = if bias { z + b[ch] } else { z };
                    if affine {
                        v = v * s[ch] + t[ch];
                    }
                    if res {
                        v += r[j];
                    }
                    match act {
                        Activation::None => v,
                        Activation::Relu => v.max(0.0),
                        Activation::Relu6 => v.clamp(0.0, 6.0),
                        Activation::PRelu(a) => v.max(0.0) + a[ch] * v.min(0.0),
                    }
                })
                .collect();
            let res = res.then_some(&r[..]);
            let (mut plain, mut best) = (z.clone(), z.clone());
            e.apply_rows(&mut plain, c, res);
            apply_rows_best(&e, &mut best, c, res);
            let case = format!("c {c}, bias {bias}, affine {affine}, residual {}, {act:?}", res.is_some());
            assert_eq!(plain, want, "{case}");
            assert_eq!(best, want, "{case}");
        }
    }
}
