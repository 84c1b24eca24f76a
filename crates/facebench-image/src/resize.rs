use serde::{Deserialize, Serialize};

use crate::pixels::ImageF32;

/// How an image is resampled to the model's size. Every mode computes in `f64` and does not
/// round (rounding is [`crate::Preprocess::round`]'s job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Box filter: output pixel `(ox, oy)` is the overlap-area-weighted mean of the source over
    /// `[ox*w/outW, (ox+1)*w/outW) x [oy*h/outH, (oy+1)*h/outH)` — the rule of the reference
    /// inputs, equal to OpenCV `INTER_AREA` / PIL `reduce` when downscaling.
    Area,
    /// TF 1.x / TF.js `resizeBilinear(alignCorners=false, halfPixelCenters=false)`: source
    /// coordinate `dst * in/out`, upper neighbour clamped to the last pixel. face-api feeds its
    /// recognition net this way.
    BilinearTfLegacy,
    /// Half-pixel-centre bilinear, source `(dst + 0.5) * in/out - 0.5` clamped to the image:
    /// OpenCV `INTER_LINEAR` (float), PyTorch `align_corners=False` (no antialias), TF 2.
    BilinearHalfPixel,
}

/// Resizes to `width` x `height`; a same-size request returns a copy.
pub fn resize(img: &ImageF32, width: u32, height: u32, mode: ResizeMode) -> ImageF32 {
    if img.width() == width && img.height() == height {
        return img.clone();
    }
    if img.width() == 0 || img.height() == 0 {
        return ImageF32::zeros(width, height);
    }
    match mode {
        ResizeMode::Area => separable(img, &area_weights(img.width(), width), &area_weights(img.height(), height)),
        ResizeMode::BilinearTfLegacy | ResizeMode::BilinearHalfPixel => {
            let half = mode == ResizeMode::BilinearHalfPixel;
            bilinear(img, &lerp_table(img.width(), width, half), &lerp_table(img.height(), height, half))
        }
    }
}

/// One output index's source span: first source index and normalised weights.
struct Taps {
    start: usize,
    weights: Vec<f64>,
}

fn area_weights(input: u32, output: u32) -> Vec<Taps> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|o| {
            let lo = o as f64 * scale;
            let hi = ((o + 1) as f64 * scale).min(input as f64);
            let start = lo.floor() as usize;
            let end = (hi.ceil() as usize).min(input as usize).max(start + 1);
            let mut weights: Vec<f64> =
                (start..end).map(|i| (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0)).collect();
            let total: f64 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= total);
            Taps { start, weights }
        })
        .collect()
}

/// Horizontal pass then vertical pass, both in `f64`.
fn separable(img: &ImageF32, wx: &[Taps], wy: &[Taps]) -> ImageF32 {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (wx.len(), wy.len());
    let src = img.as_slice();
    let mut tmp = vec![0.0f64; ih * ow * 3];
    for y in 0..ih {
        let row = &src[y * iw * 3..(y + 1) * iw * 3];
        for (ox, t) in wx.iter().enumerate() {
            let mut acc = [0.0f64; 3];
            for (k, &w) in t.weights.iter().enumerate() {
                let p = &row[(t.start + k) * 3..(t.start + k) * 3 + 3];
                for c in 0..3 {
                    acc[c] += p[c] as f64 * w;
                }
            }
            tmp[(y * ow + ox) * 3..(y * ow + ox) * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = ImageF32::zeros(ow as u32, oh as u32);
    let data = out.data_mut();
    for (oy, t) in wy.iter().enumerate() {
        for ox in 0..ow {
            let mut acc = [0.0f64; 3];
            for (k, &w) in t.weights.iter().enumerate() {
                let p = &tmp[((t.start + k) * ow + ox) * 3..((t.start + k) * ow + ox) * 3 + 3];
                for c in 0..3 {
                    acc[c] += p[c] * w;
                }
            }
            for c in 0..3 {
                data[(oy * ow + ox) * 3 + c] = acc[c] as f32;
            }
        }
    }
    out
}

/// Per output index: (lower source index, upper source index, fraction toward upper).
fn lerp_table(input: u32, output: u32, half_pixel: bool) -> Vec<(usize, usize, f64)> {
    let ratio = input as f64 / output as f64;
    let last = input as usize - 1;
    (0..output)
        .map(|o| {
            if half_pixel {
                let src = ((o as f64 + 0.5) * ratio - 0.5).max(0.0);
                let lo = (src.floor() as usize).min(last);
                let hi = (lo + 1).min(last);
                (lo, hi, src - lo as f64)
            } else {
                // tfjs-backend-cpu ResizeBilinear: floor/ceil of `ratio * o`, ceil clamped.
                let src = ratio * o as f64;
                let lo = src.floor().max(0.0);
                let hi = (src.ceil() as usize).min(last);
                (lo as usize, hi, src - lo)
            }
        })
        .collect()
}

fn bilinear(img: &ImageF32, tx: &[(usize, usize, f64)], ty: &[(usize, usize, f64)]) -> ImageF32 {
    let iw = img.width() as usize;
    let src = img.as_slice();
    let mut out = ImageF32::zeros(tx.len() as u32, ty.len() as u32);
    let px = |x: usize, y: usize| -> [f32; 3] { src[(y * iw + x) * 3..(y * iw + x) * 3 + 3].try_into().expect("3") };
    bilinear_rows(tx, ty, px, |v, _| v, out.data_mut());
    out
}

/// [`ResizeMode::BilinearTfLegacy`] of a virtual `in_w x in_h` RGB image (pixel lookup
/// `px(x, y)`) to `out_w x out_h`, storing `f(value, channel)` into `dst` (`out_h` rows of
/// `out_w * 3`): for callers that resample without building the source image (the detector's
/// zero-padded squares) and map values on the way (its input normalisation).
pub fn resize_tf_bilinear_into(
    (in_w, in_h): (u32, u32),
    (out_w, out_h): (u32, u32),
    px: impl Fn(usize, usize) -> [f32; 3],
    f: impl Fn(f32, usize) -> f32,
    dst: &mut [f32],
) {
    bilinear_rows(&lerp_table(in_w, out_w, false), &lerp_table(in_h, out_h, false), px, f, dst)
}

/// TF.js's operation order: `top = tl + (tr - tl) * fx`, same for bottom, then
/// `top + (bottom - top) * fy`, in `f64`. Each source row's horizontal interpolation is computed
/// once and shared by the output rows that read it (about two per row when upscaling): the
/// same operations as interpolating per output pixel, half of them.
fn bilinear_rows(
    tx: &[(usize, usize, f64)],
    ty: &[(usize, usize, f64)],
    px: impl Fn(usize, usize) -> [f32; 3],
    f: impl Fn(f32, usize) -> f32,
    dst: &mut [f32],
) {
    let horizontal = |y: usize, buf: &mut Vec<f64>| {
        buf.clear();
        for &(x0, x1, fx) in tx {
            let (l, r) = (px(x0, y), px(x1, y));
            for ch in 0..3 {
                buf.push(l[ch] as f64 + (r[ch] as f64 - l[ch] as f64) * fx);
            }
        }
    };
    // Two cached source rows: (row index, interpolated values).
    let mut slots: [(usize, Vec<f64>); 2] = [(usize::MAX, Vec::new()), (usize::MAX, Vec::new())];
    for (row, &(y0, y1, fy)) in dst.chunks_exact_mut(tx.len() * 3).zip(ty) {
        for y in [y0, y1] {
            if slots[0].0 != y && slots[1].0 != y {
                // Replace the slot not needed by this output row.
                let other = if y == y0 { y1 } else { y0 };
                let i = if slots[0].0 == other { 1 } else { 0 };
                horizontal(y, &mut slots[i].1);
                slots[i].0 = y;
            }
        }
        let pick = |y: usize| if slots[0].0 == y { &slots[0].1 } else { &slots[1].1 };
        let (top, bottom) = (pick(y0), pick(y1));
        for ((o, &t), &b) in row.iter_mut().zip(top).zip(bottom) {
            *o = (t + (b - t) * fy) as f32;
        }
        for px in row.chunks_exact_mut(3) {
            for (ch, o) in px.iter_mut().enumerate() {
                *o = f(*o, ch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey image (all channels equal) from rows of values.
    fn grey(rows: &[&[f32]]) -> ImageF32 {
        let data = rows.iter().flat_map(|r| r.iter().flat_map(|&v| [v, v, v])).collect();
        ImageF32::from_raw(rows[0].len() as u32, rows.len() as u32, data).unwrap()
    }

    fn channel0(img: &ImageF32) -> Vec<f32> {
        img.as_slice().iter().step_by(3).copied().collect()
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{got:?} != {want:?}");
        }
    }

    #[test]
    fn area_integer_factor_is_block_mean() {
        let img = grey(&[&[0., 2., 4., 6.], &[8., 10., 12., 14.], &[1., 1., 1., 1.], &[3., 3., 5., 5.]]);
        let r = resize(&img, 2, 2, ResizeMode::Area);
        assert_close(&channel0(&r), &[5.0, 9.0, 2.0, 3.0]);
    }

    #[test]
    fn area_fractional_overlaps() {
        // 3 -> 2: spans [0, 1.5) and [1.5, 3): (p0 + 0.5 p1) / 1.5 and (0.5 p1 + p2) / 1.5.
        let img = grey(&[&[30., 60., 90.]]);
        let r = resize(&img, 2, 1, ResizeMode::Area);
        assert_close(&channel0(&r), &[40.0, 80.0]);
    }

    #[test]
    fn tf_legacy_bilinear() {
        // 4 -> 3: source x = 0, 4/3, 8/3 (no half-pixel offset).
        let img = grey(&[&[0., 30., 60., 120.]]);
        let r = resize(&img, 3, 1, ResizeMode::BilinearTfLegacy);
        assert_close(&channel0(&r), &[0.0, 30.0 + 30.0 / 3.0, 60.0 + 60.0 * 2.0 / 3.0]);
        // 2 -> 4 upscale: source 0, 0.5, 1, 1.5; the upper neighbour clamps to the last pixel.
        let img = grey(&[&[10., 50.]]);
        let r = resize(&img, 4, 1, ResizeMode::BilinearTfLegacy);
        assert_close(&channel0(&r), &[10.0, 30.0, 50.0, 50.0]);
    }

    #[test]
    fn half_pixel_bilinear() {
        // 2 -> 4: source -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last pixel).
        let img = grey(&[&[10., 50.]]);
        let r = resize(&img, 4, 1, ResizeMode::BilinearHalfPixel);
        assert_close(&channel0(&r), &[10.0, 20.0, 40.0, 50.0]);
        // 4 -> 2 on both axes: source 0.5 and 2.5 = mean of the neighbour pairs.
        let img = grey(&[&[0., 10., 20., 30.], &[40., 50., 60., 70.], &[0., 0., 0., 0.], &[8., 8., 8., 8.]]);
        let r = resize(&img, 2, 2, ResizeMode::BilinearHalfPixel);
        assert_close(&channel0(&r), &[25.0, 45.0, 4.0, 4.0]);
    }

    #[test]
    fn same_size_is_identity_and_channels_stay_apart() {
        let img = ImageF32::from_raw(2, 1, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        for mode in [ResizeMode::Area, ResizeMode::BilinearTfLegacy, ResizeMode::BilinearHalfPixel] {
            assert_eq!(resize(&img, 2, 1, mode), img);
            assert_close(
                resize(&img, 1, 1, mode).as_slice(),
                match mode {
                    ResizeMode::BilinearTfLegacy => &[1.0, 2.0, 3.0],
                    _ => &[2.5, 3.5, 4.5],
                },
            );
        }
    }
}
