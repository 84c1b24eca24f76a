//! face-api's `FaceLandmark68Net` (`src/faceLandmarkNet/*`, `src/faceFeatureExtractor/*`):
//! four dense blocks of depthwise-separable convolutions on a 112x112 face crop, 7x7 average
//! pool, and a 256 -> 136 fully connected layer giving 68 (x, y) pairs relative to the crop.

use std::path::Path;

use candle_core::{Device, Tensor};
use facebench_model::TfjsWeights;
use image::RgbImage;
use rayon::prelude::*;

use facebench_nn::{add, fused, Conv2d, DepthwiseConv2d, Padding};

use crate::prof::{span, Kind};
use crate::ssd::Detection;
use crate::Result;

/// The landmark net's input side.
pub const LANDMARK_INPUT: usize = 112;
/// face-api's per-channel mean, subtracted before dividing by 255.
const MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];

/// `tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias`.
/// Without the depthwise part (the first block's first layer): a plain convolution.
struct SepConv {
    dw: Option<DepthwiseConv2d>,
    pw: Conv2d,
}

impl SepConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.dw {
            Some(dw) => fused::separable(dw, &self.pw, x)?,
            None => self.pw.forward(x)?,
        })
    }
}

struct DenseBlock {
    conv0: SepConv,
    convs: [SepConv; 3],
}

impl DenseBlock {
    /// face-api `denseBlock4` with `isScaleDown = true`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out1 = add(&[&self.conv0.forward(x)?], true)?;
        let out2 = self.convs[0].forward(&out1)?;
        let in3 = add(&[&out1, &out2], true)?;
        let out3 = self.convs[1].forward(&in3)?;
        let in4 = add(&[&out1, &out2, &out3], true)?;
        let out4 = self.convs[2].forward(&in4)?;
        Ok(add(&[&out1, &out2, &out3, &out4], true)?)
    }
}

pub(crate) struct LandmarkNet {
    blocks: Vec<DenseBlock>,
    fc_w: Tensor,
    fc_b: Tensor,
}

/// `tf.separableConv2d` with TF `SAME` padding and stride `s`, plus bias.
fn sep(w: &TfjsWeights, p: &str, s: usize, cin: usize, cout: usize, dev: &Device) -> Result<SepConv> {
    let dwf = w.f32_values(&format!("{p}/depthwise_filter"), &[3, 3, cin, 1])?;
    let pwf = w.f32_values(&format!("{p}/pointwise_filter"), &[1, 1, cin, cout])?;
    let bias = w.f32_values(&format!("{p}/bias"), &[cout])?;
    let dw = DepthwiseConv2d::new(&format!("{p}/depthwise"), dwf, [3, 3, cin, 1], s, Padding::Same, dev)?;
    let pw = Conv2d::new(&format!("{p}/pointwise"), pwf, [1, 1, cin, cout], 1, Padding::Same, dev)?.with_bias(bias)?;
    Ok(SepConv { dw: Some(dw), pw })
}

impl LandmarkNet {
    pub(crate) fn load(manifest: &Path, dev: &Device) -> Result<Self> {
        let w = TfjsWeights::load(manifest)?;
        let widths = [(3, 32), (32, 64), (64, 128), (128, 256)];
        let mut blocks = Vec::new();
        for (i, &(cin, cout)) in widths.iter().enumerate() {
            let p = format!("dense{i}");
            let conv0 = if i == 0 {
                let f = w.f32_values(&format!("{p}/conv0/filters"), &[3, 3, cin, cout])?;
                let b = w.f32_values(&format!("{p}/conv0/bias"), &[cout])?;
                let conv = Conv2d::new(&format!("{p}/conv0"), f, [3, 3, cin, cout], 2, Padding::Same, dev)?;
                SepConv { dw: None, pw: conv.with_bias(b)?.with_direct_thin_input() }
            } else {
                sep(&w, &format!("{p}/conv0"), 2, cin, cout, dev)?
            };
            let convs = [
                sep(&w, &format!("{p}/conv1"), 1, cout, cout, dev)?,
                sep(&w, &format!("{p}/conv2"), 1, cout, cout, dev)?,
                sep(&w, &format!("{p}/conv3"), 1, cout, cout, dev)?,
            ];
            blocks.push(DenseBlock { conv0, convs });
        }
        let fc_w = w.tensor("fc/weights", &[256, 136], dev)?;
        let fc_b = w.tensor("fc/bias", &[136], dev)?;
        Ok(LandmarkNet { blocks, fc_w, fc_b })
    }

    /// Raw network output (136 values per crop, x0 y0 x1 y1 ...) for a `[n, 112, 112, 3]` batch.
    fn forward(&self, x: &Tensor) -> Result<Vec<Vec<f32>>> {
        let mut t = x.clone();
        for b in &self.blocks {
            t = b.forward(&t)?;
        }
        // avgPool 7x7 stride 2 'valid' on a 7x7 map = mean over the 49 positions.
        let (n, h, w, c) = t.dims4()?;
        let pooled = (t.reshape((n, h * w, c))?.sum(1)? / (h * w) as f64)?;
        let out = pooled.matmul(&self.fc_w)?.broadcast_add(&self.fc_b)?;
        Ok(out.to_vec2()?)
    }

    /// face-api `DetectAllFaceLandmarksTask` on tensor input: cut each detection's box out of
    /// the image (`extractFaceTensors`), run the net on all crops as one batch, and map the
    /// points back to image pixels (`postProcess`, `FaceLandmarks`, `shiftBy(box.x, box.y)`).
    /// Returns, for each (image index, detection), its 68 points or None when face-api would drop
    /// the face (a box with no pixels inside the image).
    pub(crate) fn landmarks(
        &self,
        jobs: &[(&RgbImage, Detection)],
        dev: &Device,
    ) -> Result<Vec<Option<Vec<[f64; 2]>>>> {
        let crops: Vec<Option<CropBox>> = jobs.iter().map(|(img, d)| crop_box(d, img.width(), img.height())).collect();
        let valid: Vec<usize> = (0..jobs.len()).filter(|&i| crops[i].is_some()).collect();
        let mut result = vec![None; jobs.len()];
        if valid.is_empty() {
            return Ok(result);
        }
        let per = LANDMARK_INPUT * LANDMARK_INPUT * 3;
        let mut data = vec![0f32; valid.len() * per];
        span(Kind::Resize, || {
            data.par_chunks_mut(per).zip(valid.par_iter()).for_each(|(dst, &i)| {
                preprocess(jobs[i].0, crops[i].as_ref().expect("valid"), dst);
            })
        });
        let x = Tensor::from_vec(data, (valid.len(), LANDMARK_INPUT, LANDMARK_INPUT, 3), dev)?;
        let out = span(Kind::Landmarks, || self.forward(&x))?;
        for (&i, raw) in valid.iter().zip(out) {
            let c = crops[i].as_ref().expect("valid");
            result[i] = Some(to_image_points(&raw, c, &jobs[i].1));
        }
        Ok(result)
    }
}

/// An integer crop rectangle of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CropBox {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// face-api `det.forSize(W, H).box.clipAtImageBorders(W, H)` (floors x, y, width, height
/// separately); None when the box has no pixel inside the image (face-api filters those out).
pub(crate) fn crop_box(d: &Detection, width: u32, height: u32) -> Option<CropBox> {
    let (iw, ih) = (width as f64, height as f64);
    // forSize: relative box (x * (1/W)) rescaled by W again, as face-api computes it.
    let (x, y) = (d.x * (1.0 / iw) * iw, d.y * (1.0 / ih) * ih);
    let (w, h) = (d.w * (1.0 / iw) * iw, d.h * (1.0 / ih) * ih);
    let (right, bottom) = (x + w, y + h);
    let cx = x.max(0.0);
    let cy = y.max(0.0);
    let cw = (right - cx).min(iw - cx).floor();
    let ch = (bottom - cy).min(ih - cy).floor();
    let (cx, cy) = (cx.floor(), cy.floor());
    if !(cw > 0.0 && ch > 0.0) || cx >= iw || cy >= ih {
        return None;
    }
    Some(CropBox { x: cx as usize, y: cy as usize, w: cw as usize, h: ch as usize })
}

/// The landmark net's input: the crop zero-padded to a square with `padToSquare(isCenter=true)`
/// (`round(diff/2)` appended after, the rest before), TF.js bilinear resize to 112, then
/// `(v - mean_rgb) / 255`.
fn preprocess(img: &RgbImage, c: &CropBox, dst: &mut [f32]) {
    let side = c.w.max(c.h);
    let diff = side - c.w.min(c.h);
    let before = diff - js_round_half(diff);
    let (pad_x, pad_y) = if c.w < c.h { (before, 0) } else { (0, before) };
    let (iw, raw) = (img.width() as usize, img.as_raw());
    let px = |x: usize, y: usize| -> [f32; 3] {
        match (x.checked_sub(pad_x), y.checked_sub(pad_y)) {
            (Some(sx), Some(sy)) if sx < c.w && sy < c.h => {
                let i = ((c.y + sy) * iw + c.x + sx) * 3;
                [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
            }
            _ => [0.0; 3],
        }
    };
    let (side, out) = (side as u32, LANDMARK_INPUT as u32);
    facebench_image::resize_tf_bilinear_into((side, side), (out, out), px, |v, ch| (v - MEAN_RGB[ch]) / 255.0, dst);
}

/// `Math.round(n * 0.5)` for a non-negative integer n.
fn js_round_half(n: usize) -> usize {
    n.div_ceil(2)
}

/// face-api `FaceLandmark68NetBase.postProcess` (in f32, its tensor ops), then
/// `FaceLandmarks68` positions `rel * crop size` shifted by the (unfloored) detection box corner.
fn to_image_points(raw: &[f32], c: &CropBox, d: &Detection) -> Vec<[f64; 2]> {
    let size = LANDMARK_INPUT as f64;
    let scale = size / (c.w.max(c.h) as f64);
    let (iw, ih) = (c.w as f64 * scale, c.h as f64 * scale);
    let pad_x = if iw < ih { (iw - ih).abs() / 2.0 } else { 0.0 };
    let pad_y = if ih < iw { (iw - ih).abs() / 2.0 } else { 0.0 };
    let (pad_x, pad_y, iw32, ih32) = (pad_x as f32, pad_y as f32, iw as f32, ih as f32);
    raw.chunks_exact(2)
        .map(|p| {
            let rx = (p[0] * size as f32 - pad_x) / iw32;
            let ry = (p[1] * size as f32 - pad_y) / ih32;
            [rx as f64 * c.w as f64 + d.x, ry as f64 * c.h as f64 + d.y]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f64, y: f64, w: f64, h: f64) -> Detection {
        Detection { score: 0.9, x, y, w, h }
    }

    #[test]
    fn crop_box_floors_and_clips_like_face_api() {
        assert_eq!(crop_box(&det(10.7, 20.2, 30.9, 40.5), 100, 100), Some(CropBox { x: 10, y: 20, w: 30, h: 40 }));
        // negative corner: clipped to 0, width measured from the clipped corner
        assert_eq!(crop_box(&det(-5.5, 0.0, 20.0, 10.0), 100, 100), Some(CropBox { x: 0, y: 0, w: 14, h: 10 }));
        // beyond the right/bottom border
        assert_eq!(crop_box(&det(90.0, 95.0, 20.0, 20.0), 100, 100), Some(CropBox { x: 90, y: 95, w: 10, h: 5 }));
        // nothing inside
        assert_eq!(crop_box(&det(100.0, 0.0, 20.0, 20.0), 100, 100), None);
        assert_eq!(crop_box(&det(10.0, 10.0, 0.5, 20.0), 100, 100), None);
    }

    #[test]
    fn landmark_mapping_inverts_centre_padding() {
        // a 50 wide, 100 high crop: padded by 25 on each side in x (112-scale: 28)
        let c = CropBox { x: 10, y: 20, w: 50, h: 100 };
        let d = det(10.4, 20.6, 50.0, 100.0);
        // the centre of the padded square maps to the centre of the crop
        let pts = to_image_points(&[0.5, 0.5, 0.25, 0.0], &c, &d);
        assert!((pts[0][0] - (10.4 + 25.0)).abs() < 1e-4 && (pts[0][1] - (20.6 + 50.0)).abs() < 1e-4, "{pts:?}");
        // x = 0.25 of the square is the left edge of the crop (pad = 25 of 100)
        assert!((pts[1][0] - 10.4).abs() < 1e-4 && (pts[1][1] - 20.6).abs() < 1e-4, "{pts:?}");
        assert_eq!(js_round_half(5), 3);
        assert_eq!(js_round_half(4), 2);
    }
}
