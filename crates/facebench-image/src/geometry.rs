use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::pixels::ImageF32;
use crate::{Error, Result};

/// The ArcFace / InsightFace 5-point template for 112x112 crops: left eye, right eye, nose
/// tip, left and right mouth corners (x, y in output pixels).
pub const ARCFACE_112: [[f64; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// The ArcFace template for a square output of side `size`, by InsightFace's
/// `estimate_norm` rule: sizes that are multiples of 112 scale it by `size/112`; other sizes
/// (multiples of 128) scale by `size/128` and shift x by `8*size/128`.
pub fn arcface_template(size: u32) -> [[f64; 2]; 5] {
    let (ratio, dx) = if size.is_multiple_of(112) {
        (size as f64 / 112.0, 0.0)
    } else {
        let r = size as f64 / 128.0;
        (r, 8.0 * r)
    };
    ARCFACE_112.map(|[x, y]| [x * ratio + dx, y * ratio])
}

/// A 2-D similarity transform `u = a*x - b*y + tx`, `v = b*x + a*y + ty` (scale `sqrt(a²+b²)`,
/// rotation `atan2(b, a)`, no reflection).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// Least-squares similarity mapping `src[i]` onto `dst[i]`: Umeyama (1991) with scale, as
    /// skimage's `SimilarityTransform.estimate` (which InsightFace uses).
    ///
    /// In 2-D Umeyama has a closed form. With `A = cov(dst, src)`, skimage's SVD with the
    /// reflection fix (`d = diag(1, -1)` when `det A < 0`) picks the proper rotation that
    /// maximises `trace(Rᵀ A)`: its angle is `atan2(A21 - A12, A11 + A22)` and the maximum is
    /// `hypot(A11 + A22, A21 - A12)` (= `s1 + s2` or `s1 - s2`, skimage's `S·d`), so
    /// `scale = hypot(..) / var(src)`. A reflected point set is therefore fitted by the best
    /// rotation, never mirrored. This is also the exact minimiser of the linear least-squares
    /// problem in `(a, b, tx, ty)`.
    ///
    /// Errors: fewer than 2 points, different lengths, non-finite coordinates, all source
    /// points equal, or a zero best scale (skimage would return NaN or a collapsed map).
    pub fn estimate(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Result<Similarity> {
        if src.len() != dst.len() {
            return Err(Error::BadAnnotation(format!(
                "similarity estimate needs matching point lists, got {} source and {} target points",
                src.len(),
                dst.len()
            )));
        }
        if src.len() < 2 {
            return Err(Error::Degenerate(format!("similarity estimate needs at least 2 points, got {}", src.len())));
        }
        if src.iter().chain(dst).flatten().any(|v| !v.is_finite()) {
            return Err(Error::BadAnnotation("similarity estimate: a point coordinate is not finite".to_string()));
        }
        let n = src.len() as f64;
        let mean = |p: &[[f64; 2]]| {
            let s = p.iter().fold([0.0, 0.0], |s, q| [s[0] + q[0], s[1] + q[1]]);
            [s[0] / n, s[1] / n]
        };
        let (ms, md) = (mean(src), mean(dst));
        // A = dstᵀ·src / n on demeaned points; var = total variance of src.
        let (mut a11, mut a12, mut a21, mut a22, mut var) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (s[0] - ms[0], s[1] - ms[1]);
            let (dx, dy) = (d[0] - md[0], d[1] - md[1]);
            a11 += dx * sx;
            a12 += dx * sy;
            a21 += dy * sx;
            a22 += dy * sy;
            var += sx * sx + sy * sy;
        }
        if var <= 0.0 {
            return Err(Error::Degenerate("similarity estimate: all source points coincide".to_string()));
        }
        let (c, s) = (a11 + a22, a21 - a12);
        let norm = c.hypot(s);
        if norm <= 1e-12 * var {
            return Err(Error::Degenerate(
                "similarity estimate: no rotation and scale fits (target points coincide or are a point reflection)"
                    .to_string(),
            ));
        }
        let scale = norm / var;
        let (a, b) = (scale * c / norm, scale * s / norm);
        Ok(Similarity { a, b, tx: md[0] - (a * ms[0] - b * ms[1]), ty: md[1] - (b * ms[0] + a * ms[1]) })
    }

    /// Maps a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [self.a * p[0] - self.b * p[1] + self.tx, self.b * p[0] + self.a * p[1] + self.ty]
    }

    /// The inverse transform (`None` for a zero scale).
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d.is_nan() || d <= 0.0 || d.is_infinite() {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) })
    }
}

/// Largest output side accepted: model inputs are 96 to 224 pixels; anything near this is a
/// typo, and is refused before a buffer of its size is allocated.
pub(crate) const MAX_OUTPUT_SIDE: u32 = 8192;

/// Refuses an empty or absurd output size before any allocation.
pub(crate) fn check_output_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width > MAX_OUTPUT_SIDE || height > MAX_OUTPUT_SIDE {
        return Err(Error::BadSpec(format!(
            "output size {width}x{height} must be 1 to {MAX_OUTPUT_SIDE} pixels a side"
        )));
    }
    Ok(())
}

/// Warps `src` into a `width` x `height` image: output pixel (u, v) samples the source at
/// `to_output⁻¹(u, v)` with bilinear interpolation, pixel centres at integer coordinates, and
/// neighbours outside the image counting as 0 — `cv2.warpAffine(img, M, (w, h),
/// borderValue=0.0)` with the default `INTER_LINEAR`, but in `f64` (OpenCV quantises the
/// source position to 1/32 pixel, which moves some values by one grey level). The result is
/// not rounded.
pub fn warp_similarity(src: &RgbImage, to_output: &Similarity, width: u32, height: u32) -> Result<ImageF32> {
    check_output_size(width, height)?;
    let inv = to_output
        .inverse()
        .ok_or_else(|| Error::Degenerate("warp: the similarity transform has zero scale".to_string()))?;
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    // One RGB pixel, or zeros outside the image.
    let px = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            [0.0; 3]
        } else {
            let i = ((y * sw + x) * 3) as usize;
            [raw[i] as f64, raw[i + 1] as f64, raw[i + 2] as f64]
        }
    };
    let mut out = ImageF32::zeros(width, height);
    let data = out.data_mut();
    for v in 0..height as usize {
        for u in 0..width as usize {
            let [x, y] = inv.apply([u as f64, v as f64]);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10, p01, p11) = (px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1));
            let o = (v * width as usize + u) * 3;
            for c in 0..3 {
                let top = p00[c] * (1.0 - fx) + p10[c] * fx;
                let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
                data[o + c] = (top * (1.0 - fy) + bottom * fy) as f32;
            }
        }
    }
    Ok(out)
}

/// The reference 5-point rule from 68 iBUG landmarks: left eye = mean of points 36-41,
/// right eye = mean of 42-47, nose tip = 30, mouth corners = 48 and 54 (0-based).
pub fn points5_from_68(landmarks: &[[f64; 2]]) -> Result<[[f64; 2]; 5]> {
    check_68(landmarks)?;
    Ok([centre(&landmarks[36..42]), centre(&landmarks[42..48]), landmarks[30], landmarks[48], landmarks[54]])
}

/// An integer pixel rectangle (left, top, width, height).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// face-api's `FaceLandmarks68.align(null, {useDlibAlignment: true})` box, clipped to the
/// image as its `extractFaceTensors` does (`Box.clipAtImageBorders`):
/// eye centres (36-41, 42-47) and mouth centre (48-67); `size = floor(mean eye-to-mouth
/// distance / 0.45)`; `x = floor(max(0, cx - 0.5 size))`, `y = floor(max(0, cy - 0.43 size))`
/// with (cx, cy) the mean of the three centres; width and height `size`, cut at the right and
/// bottom image borders. No rotation. The arithmetic follows face-api's operation order.
pub fn faceapi_dlib_box(landmarks: &[[f64; 2]], img_w: u32, img_h: u32) -> Result<PixelBox> {
    check_68(landmarks)?;
    let centres = [centre(&landmarks[36..42]), centre(&landmarks[42..48]), centre(&landmarks[48..68])];
    let [le, re, mouth] = centres;
    let dist = |p: [f64; 2]| ((mouth[0] - p[0]).powi(2) + (mouth[1] - p[1]).powi(2)).sqrt();
    let eye_to_mouth = (dist(le) + dist(re)) / 2.0;
    let size = (eye_to_mouth / 0.45).floor();
    let [cx, cy] = centre(&centres);
    let x = (cx - 0.5 * size).max(0.0).floor();
    let y = (cy - 0.43 * size).max(0.0).floor();
    let w = size.min(img_w as f64 - x).floor();
    let h = size.min(img_h as f64 - y).floor();
    if !(w >= 1.0 && h >= 1.0) {
        return Err(Error::Degenerate(format!(
            "face-api dlib box at ({x}, {y}) of size {size} lies outside the {img_w}x{img_h} image"
        )));
    }
    Ok(PixelBox { x: x as u32, y: y as u32, w: w as u32, h: h as u32 })
}

fn check_68(landmarks: &[[f64; 2]]) -> Result<()> {
    if landmarks.len() != 68 {
        return Err(Error::BadAnnotation(format!("expected 68 landmarks, got {}", landmarks.len())));
    }
    if landmarks.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::BadAnnotation("a landmark coordinate is not finite".to_string()));
    }
    Ok(())
}

/// Mean point, summed in order then divided (face-api's `getCenterPoint`).
fn centre(pts: &[[f64; 2]]) -> [f64; 2] {
    let s = pts.iter().fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
    [s[0] / pts.len() as f64, s[1] / pts.len() as f64]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [[f64; 2]; 5] = [[10.0, 20.0], [50.0, 22.0], [31.0, 40.0], [15.0, 61.0], [47.0, 58.0]];

    fn map(p: &[[f64; 2]], f: impl Fn([f64; 2]) -> [f64; 2]) -> Vec<[f64; 2]> {
        p.iter().map(|&q| f(q)).collect()
    }

    fn close(m: &Similarity, a: f64, b: f64, tx: f64, ty: f64) {
        let tol = 1e-9;
        assert!(
            (m.a - a).abs() < tol && (m.b - b).abs() < tol && (m.tx - tx).abs() < tol && (m.ty - ty).abs() < tol,
            "{m:?} != a={a} b={b} tx={tx} ty={ty}"
        );
    }

    #[test]
    fn estimate_pure_translation() {
        let dst = map(&SRC, |[x, y]| [x + 3.0, y - 2.0]);
        close(&Similarity::estimate(&SRC, &dst).unwrap(), 1.0, 0.0, 3.0, -2.0);
    }

    #[test]
    fn estimate_pure_scale() {
        let dst = map(&SRC, |[x, y]| [2.5 * x, 2.5 * y]);
        close(&Similarity::estimate(&SRC, &dst).unwrap(), 2.5, 0.0, 0.0, 0.0);
    }

    #[test]
    fn estimate_rotation_90_degrees() {
        // Counter-clockwise in (x, y): (x, y) -> (-y, x), i.e. a = cos 90 = 0, b = sin 90 = 1.
        let dst = map(&SRC, |[x, y]| [-y, x]);
        close(&Similarity::estimate(&SRC, &dst).unwrap(), 0.0, 1.0, 0.0, 0.0);
    }

    #[test]
    fn estimate_scale_rotation_translation() {
        // s = 0.5, theta = 30 degrees, t = (10, -4): a = 0.5 cos 30 = 0.4330127..., b = 0.25.
        let (a, b) = (0.5 * 3f64.sqrt() / 2.0, 0.25);
        let dst = map(&SRC, |[x, y]| [a * x - b * y + 10.0, b * x + a * y - 4.0]);
        let m = Similarity::estimate(&SRC, &dst).unwrap();
        close(&m, 0.4330127018922193, 0.25, 10.0, -4.0);
        for (s, d) in SRC.iter().zip(&dst) {
            let p = m.apply(*s);
            assert!((p[0] - d[0]).abs() < 1e-9 && (p[1] - d[1]).abs() < 1e-9);
        }
    }

    /// Direct least squares in (a, b, tx, ty): normal equations of the rows
    /// `[x, -y, 1, 0] -> u` and `[y, x, 0, 1] -> v`, solved by Gaussian elimination.
    fn direct_lstsq(src: &[[f64; 2]], dst: &[[f64; 2]]) -> [f64; 4] {
        let mut m = [[0.0f64; 5]; 4];
        for (s, d) in src.iter().zip(dst) {
            for (row, rhs) in [([s[0], -s[1], 1.0, 0.0], d[0]), ([s[1], s[0], 0.0, 1.0], d[1])] {
                for i in 0..4 {
                    for j in 0..4 {
                        m[i][j] += row[i] * row[j];
                    }
                    m[i][4] += row[i] * rhs;
                }
            }
        }
        for c in 0..4 {
            let p = (c..4).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs())).unwrap();
            m.swap(c, p);
            for r in 0..4 {
                if r != c {
                    let f = m[r][c] / m[c][c];
                    let pivot = m[c];
                    for (v, p) in m[r][c..].iter_mut().zip(&pivot[c..]) {
                        *v -= f * p;
                    }
                }
            }
        }
        [0, 1, 2, 3].map(|i| m[i][4] / m[i][i])
    }

    #[test]
    fn estimate_noisy_points_equals_direct_least_squares() {
        let (a, b) = (0.8 * 0.3f64.cos(), 0.8 * 0.3f64.sin());
        // Deterministic "noise" of a few pixels, different per coordinate.
        let dst: Vec<[f64; 2]> = SRC
            .iter()
            .enumerate()
            .map(|(i, &[x, y])| {
                let n = ((i as f64 * 12.9898).sin() * 43758.5453).fract() * 3.0;
                let m = ((i as f64 * 78.233).cos() * 12345.678).fract() * 3.0;
                [a * x - b * y + 5.0 + n, b * x + a * y + 7.0 + m]
            })
            .collect();
        let e = Similarity::estimate(&SRC, &dst).unwrap();
        let [la, lb, ltx, lty] = direct_lstsq(&SRC, &dst);
        close(&e, la, lb, ltx, lty);
        assert!((e.a - a).abs() > 1e-6, "the noise must actually move the fit");
    }

    #[test]
    fn estimate_mirrored_points_gives_best_rotation_not_reflection() {
        // A mirror image cannot be produced by a similarity; skimage's reflection fix returns
        // the best proper rotation, which is the least-squares solution over (a, b, tx, ty).
        let dst = map(&SRC, |[x, y]| [100.0 - x, y]);
        let e = Similarity::estimate(&SRC, &dst).unwrap();
        let [la, lb, ltx, lty] = direct_lstsq(&SRC, &dst);
        close(&e, la, lb, ltx, lty);
        // The fit really is worse than the mirror (which a reflecting estimate would reach).
        let err: f64 = SRC
            .iter()
            .zip(&dst)
            .map(|(s, d)| {
                let p = e.apply(*s);
                (p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2)
            })
            .sum();
        assert!(err > 1.0);
    }

    #[test]
    fn estimate_rejects_bad_input() {
        assert!(matches!(Similarity::estimate(&SRC[..1], &SRC[..1]), Err(Error::Degenerate(_))));
        assert!(matches!(Similarity::estimate(&SRC, &SRC[..4]), Err(Error::BadAnnotation(_))));
        let same = [[1.0, 1.0]; 5];
        assert!(matches!(Similarity::estimate(&same, &SRC), Err(Error::Degenerate(_))));
        assert!(matches!(Similarity::estimate(&SRC, &same), Err(Error::Degenerate(_))));
        let mut nan = SRC;
        nan[2][1] = f64::NAN;
        assert!(matches!(Similarity::estimate(&nan, &SRC), Err(Error::BadAnnotation(_))));
    }

    #[test]
    fn inverse_round_trips() {
        let m = Similarity { a: 0.4, b: -0.3, tx: 12.0, ty: -7.5 };
        let inv = m.inverse().unwrap();
        let p = inv.apply(m.apply([3.0, 9.0]));
        assert!((p[0] - 3.0).abs() < 1e-12 && (p[1] - 9.0).abs() < 1e-12);
        assert!(Similarity { a: 0.0, b: 0.0, tx: 1.0, ty: 1.0 }.inverse().is_none());
    }

    #[test]
    fn arcface_template_sizes() {
        assert_eq!(arcface_template(112), ARCFACE_112);
        let t = arcface_template(224);
        assert!((t[0][0] - 2.0 * 38.2946).abs() < 1e-12);
        let t = arcface_template(128); // InsightFace: ratio 1, x shifted by 8
        assert!((t[0][0] - 46.2946).abs() < 1e-12 && (t[0][1] - 51.6963).abs() < 1e-12);
    }

    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(10 * x + y) as u8, (3 * y) as u8, 200]))
    }

    #[test]
    fn warp_identity_translation_and_zero_border() {
        let img = ramp(6, 5);
        let id = Similarity { a: 1.0, b: 0.0, tx: 0.0, ty: 0.0 };
        assert_eq!(warp_similarity(&img, &id, 6, 5).unwrap().to_rgb8(), img);
        // Output shifted right by half a pixel: out(u) samples src(u - 0.5).
        let half = Similarity { a: 1.0, b: 0.0, tx: 0.5, ty: 0.0 };
        let w = warp_similarity(&img, &half, 6, 5).unwrap();
        let at = |im: &ImageF32, x: usize, y: usize, c: usize| im.as_slice()[(y * 6 + x) * 3 + c];
        // u = 0 mixes the zero border (x = -1) and pixel 0 equally.
        assert_eq!(at(&w, 0, 2, 2), 100.0);
        assert_eq!(at(&w, 0, 2, 0), 0.5 * img.get_pixel(0, 2)[0] as f32);
        assert_eq!(at(&w, 3, 2, 0), 0.5 * (img.get_pixel(2, 2)[0] as f32 + img.get_pixel(3, 2)[0] as f32));
        // Far outside: all zero.
        let away = Similarity { a: 1.0, b: 0.0, tx: 100.0, ty: 0.0 };
        assert!(warp_similarity(&img, &away, 6, 5).unwrap().as_slice().iter().all(|&v| v == 0.0));
        // A 2x downscale about the origin samples src(2u, 2v) exactly.
        let down = Similarity { a: 0.5, b: 0.0, tx: 0.0, ty: 0.0 };
        let d = warp_similarity(&img, &down, 3, 2).unwrap();
        assert_eq!(d.as_slice()[(3 + 2) * 3], img.get_pixel(4, 2)[0] as f32);
    }

    fn synthetic_68() -> Vec<[f64; 2]> {
        let mut l = vec![[0.0, 0.0]; 68];
        // Left eye x 100..105 (centre 102.5), right eye x 140..145 (centre 142.5), y 100;
        // mouth centre (122.5, 140).
        for (k, p) in l[36..42].iter_mut().enumerate() {
            *p = [100.0 + k as f64, 100.0];
        }
        for (k, p) in l[42..48].iter_mut().enumerate() {
            *p = [140.0 + k as f64, 100.0];
        }
        l[48..68].fill([122.5, 140.0]);
        l[30] = [122.0, 120.0];
        l
    }

    #[test]
    fn points5_rule() {
        let p = points5_from_68(&synthetic_68()).unwrap();
        assert_eq!(p, [[102.5, 100.0], [142.5, 100.0], [122.0, 120.0], [122.5, 140.0], [122.5, 140.0]]);
        assert!(matches!(points5_from_68(&synthetic_68()[..67]), Err(Error::BadAnnotation(_))));
    }

    #[test]
    fn dlib_box_rule_and_clipping() {
        // Eye-to-mouth distance = hypot(20, 40) = 44.72..; size = floor(44.72/0.45) = 99.
        // Centre of the three centres = (122.5, 113.33..); x = floor(122.5 - 49.5) = 73,
        // y = floor(113.33 - 42.57) = 70.
        let b = faceapi_dlib_box(&synthetic_68(), 1000, 1000).unwrap();
        assert_eq!(b, PixelBox { x: 73, y: 70, w: 99, h: 99 });
        // Cut at the right and bottom borders.
        let b = faceapi_dlib_box(&synthetic_68(), 150, 120).unwrap();
        assert_eq!(b, PixelBox { x: 73, y: 70, w: 77, h: 50 });
        // Clamped at the left/top border: shift the face up-left.
        let l: Vec<[f64; 2]> = synthetic_68().iter().map(|p| [p[0] - 100.0, p[1] - 100.0]).collect();
        let b = faceapi_dlib_box(&l, 1000, 1000).unwrap();
        assert_eq!((b.x, b.y, b.w, b.h), (0, 0, 99, 99));
    }
}
