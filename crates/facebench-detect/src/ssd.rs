//! face-api's SSD MobileNetV1 face detector (`src/ssdMobilenetv1/*` of
//! `@vladmandic/face-api@1.7.15`): input preprocessing, MobileNetV1 backbone, SSD prediction
//! layer, box decoding against the stored anchors (`Output/extra_dim`), score threshold and
//! face-api's own greedy non-maximum suppression, and its mapping of boxes back to pixels.

use std::path::Path;

use candle_core::{Device, Tensor};
use facebench_model::TfjsWeights;
use image::RgbImage;

use facebench_nn::{fused, Activation, Conv2d, DepthwiseConv2d, Padding};

use crate::prof::{span, Kind};
use crate::Result;

/// The detector's input side: every image is padded to a square and resized to this.
pub const SSD_INPUT: usize = 512;
/// Number of anchors: 32²·3 + (16² + 8² + 4² + 2² + 1²)·6.
const ANCHORS: usize = 5118;
/// `tf.batchNorm` epsilon of face-api's MobileNetV1.
const BN_EPSILON: f64 = 0.0010000000474974513;

/// One raw detection: box in original-image pixels (face-api's `FaceDetection.box`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Detection {
    pub score: f32,
    /// x, y, width, height (f64, as JS numbers).
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Per image: box encodings `[ANCHORS][4]` and face scores `[ANCHORS]`.
type RawPredictions = (Vec<[f32; 4]>, Vec<f32>);

pub(crate) struct Ssd {
    conv0: Conv2d,
    /// (depthwise with BN + relu6, pointwise + relu6), layers 1..=13.
    pairs: Vec<(DepthwiseConv2d, Conv2d)>,
    /// Prediction/Conv2d_0..7.
    extra: Vec<Conv2d>,
    /// Box encoding and class predictors of each of the 6 feature maps, fused into one conv.
    heads: Vec<Conv2d>,
    /// `[ANCHORS][ymin, xmin, ymax, xmax]`.
    anchors: Vec<[f32; 4]>,
}

/// A TF `SAME` convolution + bias + relu6 (MobileNet's batch norm folded into the bias).
fn pointwise(
    w: &TfjsWeights,
    prefix: &str,
    k: usize,
    s: usize,
    cin: usize,
    cout: usize,
    dev: &Device,
) -> Result<Conv2d> {
    let filt = w.f32_values(&format!("{prefix}/weights"), &[k, k, cin, cout])?;
    let bias = w.f32_values(&format!("{prefix}/convolution_bn_offset"), &[cout])?;
    Ok(Conv2d::new(prefix, filt, [k, k, cin, cout], s, Padding::Same, dev)?
        .with_bias(bias)?
        .with_activation(Activation::Relu6)?
        .with_direct_thin_input())
}

fn depthwise_bn(w: &TfjsWeights, idx: usize, c: usize, s: usize, dev: &Device) -> Result<DepthwiseConv2d> {
    let p = format!("MobilenetV1/Conv2d_{idx}_depthwise");
    let filt = w.f32_values(&format!("{p}/depthwise_weights"), &[3, 3, c, 1])?;
    let get = |n: &str| w.f32_values(&format!("{p}/BatchNorm/{n}"), &[c]);
    let (gamma, beta, mean, var) = (get("gamma")?, get("beta")?, get("moving_mean")?, get("moving_variance")?);
    // batchNorm(x) = (x - mean) * gamma / sqrt(var + eps) + beta, folded to x * a + b.
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for i in 0..c {
        let a = gamma[i] as f64 / (var[i] as f64 + BN_EPSILON).sqrt();
        scale.push(a as f32);
        shift.push((beta[i] as f64 - mean[i] as f64 * a) as f32);
    }
    Ok(DepthwiseConv2d::new(&p, filt, [3, 3, c, 1], s, Padding::Same, dev)?
        .with_affine(&scale, &shift)?
        .with_activation(Activation::Relu6)?)
}

fn head(w: &TfjsWeights, idx: usize, cin: usize, anchors: usize, dev: &Device) -> Result<Conv2d> {
    let part = |kind: &str, per: usize| -> Result<Conv2d> {
        let p = format!("Prediction/BoxPredictor_{idx}/{kind}");
        let filt = w.f32_values(&format!("{p}/weights"), &[1, 1, cin, anchors * per])?;
        let bias = w.f32_values(&format!("{p}/biases"), &[anchors * per])?;
        Ok(Conv2d::new(&p, filt, [1, 1, cin, anchors * per], 1, Padding::Same, dev)?.with_bias(bias)?)
    };
    let name = format!("Prediction/BoxPredictor_{idx}");
    Ok(Conv2d::concat_outputs(&name, &[part("BoxEncodingPredictor", 4)?, part("ClassPredictor", 3)?])?)
}

/// MobileNetV1 channel widths: input of pair i is WIDTHS[i-1], output WIDTHS[i].
const WIDTHS: [usize; 14] = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024];

impl Ssd {
    pub(crate) fn load(manifest: &Path, dev: &Device) -> Result<Self> {
        let w = TfjsWeights::load(manifest)?;
        let conv0 = pointwise(&w, "MobilenetV1/Conv2d_0_pointwise", 3, 2, 3, 32, dev)?;
        let mut pairs = Vec::new();
        for i in 1..=13 {
            let (cin, cout) = (WIDTHS[i - 1], WIDTHS[i]);
            let stride = if [2, 4, 6, 12].contains(&i) { 2 } else { 1 };
            let dw = depthwise_bn(&w, i, cin, stride, dev)?;
            let pw = pointwise(&w, &format!("MobilenetV1/Conv2d_{i}_pointwise"), 1, 1, cin, cout, dev)?;
            pairs.push((dw, pw));
        }
        // Prediction/Conv2d_i: 1x1 on even i, 3x3 stride 2 on odd i.
        let extra_dims =
            [(1024, 256), (256, 512), (512, 128), (128, 256), (256, 128), (128, 256), (256, 64), (64, 128)];
        let mut extra = Vec::new();
        for (i, &(cin, cout)) in extra_dims.iter().enumerate() {
            let (k, s) = if i % 2 == 1 { (3, 2) } else { (1, 1) };
            extra.push(pointwise(&w, &format!("Prediction/Conv2d_{i}_pointwise"), k, s, cin, cout, dev)?);
        }
        let head_dims = [(512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6)];
        let heads =
            head_dims.iter().enumerate().map(|(i, &(cin, a))| head(&w, i, cin, a, dev)).collect::<Result<Vec<_>>>()?;
        let raw = w.f32_values("Output/extra_dim", &[1, ANCHORS, 4])?;
        let anchors = raw.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        Ok(Ssd { conv0, pairs, extra, heads, anchors })
    }

    /// Forward pass on a `[n, 512, 512, 3]` batch scaled to -1..1. Returns per image the raw
    /// (undecoded) box encodings `[ANCHORS][4]` and face scores `[ANCHORS]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<RawPredictions>> {
        let mut conv11 = None;
        // The first convolution and layers 1-2 run as one row-streaming kernel (their outputs,
        // the largest tensors, never go to memory), profiled as pointwise. Streaming layer 3 too
        // was measured slower (recomputed rows outweigh the traffic).
        let ((dw1, pw1), (dw2, pw2)) = (&self.pairs[0], &self.pairs[1]);
        let mut out = span(Kind::Pointwise, || fused::stem(&self.conv0, dw1, pw1, &[(dw2, pw2)], x))?;
        for (i, (dw, pw)) in self.pairs.iter().enumerate().skip(2) {
            out = span(Kind::Pointwise, || fused::separable(dw, pw, &out))?;
            if i + 1 == 11 {
                conv11 = Some(out.clone());
            }
        }
        let conv11 = conv11.expect("13 layers");
        let mut feats = vec![conv11, out.clone()];
        let mut t = out;
        for (i, conv) in self.extra.iter().enumerate() {
            t = span(Kind::Extra, || conv.forward(&t))?;
            if i % 2 == 1 {
                feats.push(t.clone());
            }
        }
        let n = x.dim(0)?;
        let mut boxes: Vec<Vec<[f32; 4]>> = vec![Vec::with_capacity(ANCHORS); n];
        let mut scores: Vec<Vec<f32>> = vec![Vec::with_capacity(ANCHORS); n];
        for (feat, head) in feats.iter().zip(&self.heads) {
            let (y, v) = span(Kind::BoxHead, || -> Result<(Tensor, Vec<f32>)> {
                let y = head.forward(feat)?;
                let v = y.flatten_all()?.to_vec1()?;
                Ok((y, v))
            })?;
            let (_, h, w, ch) = y.dims4()?;
            let a = ch / 7;
            for (b, img) in v.chunks_exact(h * w * ch).enumerate() {
                for cell in img.chunks_exact(ch) {
                    let (enc, cls) = cell.split_at(4 * a);
                    for j in 0..a {
                        boxes[b].push([enc[4 * j], enc[4 * j + 1], enc[4 * j + 2], enc[4 * j + 3]]);
                        // sigmoid of class 1 (face) of [background, face, unused]
                        scores[b].push(sigmoid(cls[3 * j + 1]));
                    }
                }
            }
        }
        if boxes.iter().any(|b| b.len() != ANCHORS) {
            return Err(
                candle_core::Error::Msg(format!("ssd: {} predictions, expected {ANCHORS}", boxes[0].len())).into()
            );
        }
        Ok(boxes.into_iter().zip(scores).collect())
    }

    /// Detects faces in a batch of images (any sizes): face-api's `locateFaces` per image.
    pub(crate) fn detect(
        &self,
        images: &[&RgbImage],
        dev: &Device,
        min_confidence: f32,
        max_results: usize,
    ) -> Result<Vec<Vec<Detection>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        // On the CPU one image per pass: a 512x512 image's largest activation (16.7 MB) stays
        // under glibc's mmap ceiling (32 MB), so freed activations are reused instead of being
        // unmapped and faulted in again; a batch of 8 spent as much time in page faults as in
        // arithmetic (measured: 4.3 s of system time against 1.3 s for 72 images). The GEMMs are
        // large enough at one image. Other devices take the whole batch in one pass.
        let group = if dev.is_cpu() { 1 } else { images.len() };
        let per = SSD_INPUT * SSD_INPUT * 3;
        use rayon::prelude::*;
        let candle = facebench_nn::candle_ops_forced();
        let run = |part: &[&RgbImage]| -> Result<Vec<RawPredictions>> {
            let mut data = vec![0f32; part.len() * per];
            span(Kind::Resize, || {
                data.par_chunks_mut(per).zip(part.par_iter()).for_each(|(dst, img)| preprocess(img, dst))
            });
            let x = Tensor::from_vec(data, (part.len(), SSD_INPUT, SSD_INPUT, 3), dev)?;
            // On rayon's threads too: the caller's choice of kernels (`with_candle_ops`).
            facebench_nn::with_candle_ops_if(candle, || self.forward(&x))
        };
        let parts: Vec<&[&RgbImage]> = images.chunks(group).collect();
        // Image-level parallelism on top of the kernels' own: with one image per pass the late
        // 16x16 layers are too small to keep every core busy (measured ~10% less CPU time).
        let raw: Vec<RawPredictions> =
            parts.par_iter().map(|p| run(p)).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
        Ok(span(Kind::Nms, || {
            raw.into_iter()
                .zip(images)
                .map(|((enc, scores), img)| {
                    let boxes = decode_boxes(&self.anchors, &enc);
                    let keep = non_max_suppression(&boxes, &scores, max_results, 0.5, min_confidence);
                    keep.into_iter().map(|i| to_pixels(boxes[i], scores[i], img.width(), img.height())).collect()
                })
                .collect()
        }))
    }
}

fn sigmoid(v: f32) -> f32 {
    // tfjs CPU sigmoid: 1 / (1 + Math.exp(-x)) in f64, stored as f32.
    (1.0 / (1.0 + (-(v as f64)).exp())) as f32
}

#[cfg(test)]
pub(crate) fn preprocess_for_test(img: &RgbImage) -> Vec<f32> {
    let mut v = vec![0f32; SSD_INPUT * SSD_INPUT * 3];
    preprocess(img, &mut v);
    v
}

/// face-api's detector input: `padToSquare` (zeros appended at the bottom or right), TF.js
/// `resizeBilinear` to 512x512, then `x / 127.5 - 1`.
fn preprocess(img: &RgbImage, dst: &mut [f32]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let side = w.max(h);
    let raw = img.as_raw();
    let px = |x: usize, y: usize| -> [f32; 3] {
        if x < w && y < h {
            let i = (y * w + x) * 3;
            [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
        } else {
            [0.0; 3]
        }
    };
    let side = side as u32;
    let out = SSD_INPUT as u32;
    facebench_image::resize_tf_bilinear_into((side, side), (out, out), px, |v, _| v / 127.5 - 1.0, dst);
}

/// face-api `outputLayer.decodeBoxesLayer`: TF object-detection box coder with scales
/// (10, 10, 5, 5), in f32 in face-api's operation order. Output `[ymin, xmin, ymax, xmax]`
/// relative to the 512 square.
pub(crate) fn decode_boxes(anchors: &[[f32; 4]], enc: &[[f32; 4]]) -> Vec<[f32; 4]> {
    anchors
        .iter()
        .zip(enc)
        .map(|(a, e)| {
            let sizes = [a[2] - a[0], a[3] - a[1]];
            let centers = [a[0] + sizes[0] / 2.0, a[1] + sizes[1] / 2.0];
            let exp = |v: f32| ((v as f64).exp()) as f32;
            let div0 = exp(e[2] / 5.0) * sizes[0] / 2.0;
            let add0 = (e[0] / 10.0) * sizes[0] + centers[0];
            let div1 = exp(e[3] / 5.0) * sizes[1] / 2.0;
            let add1 = (e[1] / 10.0) * sizes[1] + centers[1];
            [add0 - div0, add1 - div1, add0 + div0, add1 + div1]
        })
        .collect()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let f = |v: f32| v as f64;
    let (ay0, ax0, ay1, ax1) = (f(a[0].min(a[2])), f(a[1].min(a[3])), f(a[0].max(a[2])), f(a[1].max(a[3])));
    let (by0, bx0, by1, bx1) = (f(b[0].min(b[2])), f(b[1].min(b[3])), f(b[0].max(b[2])), f(b[1].max(b[3])));
    let area_a = (ay1 - ay0) * (ax1 - ax0);
    let area_b = (by1 - by0) * (bx1 - bx0);
    if area_a <= 0.0 || area_b <= 0.0 {
        return 0.0;
    }
    let inter = (ay1.min(by1) - ay0.max(by0)).max(0.0) * (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
    inter / (area_a + area_b - inter)
}

/// face-api `ssdMobilenetv1/nonMaxSuppression`: candidates with score strictly above the
/// threshold, by descending score (stable for ties, as `Array.sort`); a candidate is dropped when
/// its IoU with any already selected box exceeds `iou_threshold`; at most `max_output` kept.
pub(crate) fn non_max_suppression(
    boxes: &[[f32; 4]],
    scores: &[f32],
    max_output: usize,
    iou_threshold: f64,
    score_threshold: f32,
) -> Vec<usize> {
    let out_size = max_output.min(boxes.len());
    let mut cand: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > score_threshold).collect();
    cand.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut selected: Vec<usize> = Vec::new();
    for c in cand {
        if selected.len() >= out_size {
            break;
        }
        if selected.iter().all(|&s| iou(&boxes[c], &boxes[s]) <= iou_threshold) {
            selected.push(c);
        }
    }
    selected
}

/// face-api `locateFaces` + `FaceDetection`: clip top/left at 0 and bottom/right at 1, undo the
/// bottom/right padding with its rounded reshaped size (`512 / round(side_min * 512 / side_max)`,
/// a face-api quirk kept on purpose), then scale to the image's pixels.
pub(crate) fn to_pixels(b: [f32; 4], score: f32, width: u32, height: u32) -> Detection {
    let (w, h) = (width as f64, height as f64);
    let scale = SSD_INPUT as f64 / w.max(h);
    let (rw, rh) = (js_round(w * scale), js_round(h * scale));
    let (pad_x, pad_y) = (SSD_INPUT as f64 / rw, SSD_INPUT as f64 / rh);
    let top = (b[0] as f64).max(0.0) * pad_y;
    let bottom = (b[2] as f64).min(1.0) * pad_y;
    let left = (b[1] as f64).max(0.0) * pad_x;
    let right = (b[3] as f64).min(1.0) * pad_x;
    Detection { score, x: left * w, y: top * h, w: (right - left) * w, h: (bottom - top) * h }
}

/// JavaScript `Math.round` (halves towards +infinity).
pub(crate) fn js_round(v: f64) -> f64 {
    (v + 0.5).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_respects_threshold_and_limit() {
        let boxes = [
            [0.0, 0.0, 1.0, 1.0],   // 0: 0.9
            [0.0, 0.1, 1.0, 1.1],   // 1: IoU with 0 = 0.9/1.1 > 0.5 -> suppressed
            [0.0, 0.6, 1.0, 1.6],   // 2: IoU with 0 = 0.4/1.6 = 0.25 -> kept
            [5.0, 5.0, 6.0, 6.0],   // 3: disjoint but below threshold
            [5.0, 5.0, 6.0, 6.0],   // 4: exactly at threshold: not strictly above -> dropped
            [9.0, 9.0, 10.0, 10.0], // 5: disjoint
        ];
        let scores = [0.9, 0.95, 0.7, 0.3, 0.5, 0.6];
        // 1 (0.95) wins over 0 (0.9); 2 overlaps 1 by 0.5/1.5 = 0.33 -> kept
        assert_eq!(non_max_suppression(&boxes, &scores, 100, 0.5, 0.5), vec![1, 2, 5]);
        assert_eq!(non_max_suppression(&boxes, &scores, 2, 0.5, 0.5), vec![1, 2]);
        assert_eq!(non_max_suppression(&boxes, &scores, 100, 0.5, 0.99), Vec::<usize>::new());
        // identical boxes: the second is suppressed; zero-area boxes never suppress anything
        let boxes = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]];
        assert_eq!(non_max_suppression(&boxes, &[0.9, 0.8], 10, 0.5, 0.5), vec![0]);
        let boxes = [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(non_max_suppression(&boxes, &[0.9, 0.8], 10, 0.5, 0.5), vec![0, 1]);
    }

    #[test]
    fn box_decoding_is_the_tf_box_coder() {
        let anchors = [[0.2f32, 0.4, 0.6, 0.6]]; // centre (0.4, 0.5), size (0.4, 0.2)
                                                 // zero encoding gives the anchor back
        let d = decode_boxes(&anchors, &[[0.0; 4]])[0];
        for (a, b) in d.iter().zip(&anchors[0]) {
            assert!((a - b).abs() < 1e-6);
        }
        // ty = 10 shifts the centre by one anchor height; th = 5 ln 2 doubles the height
        let d = decode_boxes(&anchors, &[[10.0, 0.0, 5.0 * 2f32.ln(), 0.0]])[0];
        let want = [0.4f32, 0.4, 1.2, 0.6];
        for (a, b) in d.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{d:?}");
        }
    }

    #[test]
    fn pixel_mapping_undoes_bottom_padding_with_rounded_size() {
        // 1920x1280: reshaped height round(341.33) = 341, so y scale = 512/341 * 1280
        let d = to_pixels([0.1, 0.2, 0.5, 1.3], 0.9, 1920, 1280);
        assert!((d.x - 0.2 * 1920.0).abs() < 1e-4);
        assert!((d.w - 0.8 * 1920.0).abs() < 1e-4, "right clipped at 1");
        let py = 512.0 / 341.0 * 1280.0;
        assert!((d.y - 0.1f32 as f64 * py).abs() < 1e-6);
        assert!((d.h - (0.5f32 as f64 - 0.1f32 as f64) * py).abs() < 1e-6);
        // negative top is clipped to 0
        let d = to_pixels([-0.1, 0.0, 0.5, 0.5], 0.9, 100, 100);
        assert_eq!(d.y, 0.0);
    }
}
