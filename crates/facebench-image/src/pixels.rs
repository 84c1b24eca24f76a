use image::RgbImage;

/// An RGB image with `f32` samples on the 0..255 scale, row-major HWC.
///
/// Preprocessing produces this rather than `RgbImage` because some reference pipelines
/// (face-api's TF bilinear resize) feed the network unrounded values; pipelines that round
/// (the reference PNG inputs) hold integers here.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageF32 {
    width: u32,
    height: u32,
    data: Vec<f32>,
}

impl ImageF32 {
    /// An all-zero (black) image.
    pub fn zeros(width: u32, height: u32) -> Self {
        ImageF32 { width, height, data: vec![0.0; width as usize * height as usize * 3] }
    }

    /// Wraps HWC RGB samples; `None` if `data.len() != width * height * 3`.
    pub fn from_raw(width: u32, height: u32, data: Vec<f32>) -> Option<Self> {
        (data.len() == width as usize * height as usize * 3).then_some(ImageF32 { width, height, data })
    }

    /// Exact conversion of 8-bit pixels.
    pub fn from_rgb8(img: &RgbImage) -> Self {
        ImageF32 { width: img.width(), height: img.height(), data: img.as_raw().iter().map(|&v| v as f32).collect() }
    }

    /// Rounds half up (JavaScript `Math.round`) and clamps to 0..255.
    pub fn to_rgb8(&self) -> RgbImage {
        let raw = self.data.iter().map(|&v| round_u8(v as f64)).collect();
        RgbImage::from_raw(self.width, self.height, raw).expect("length checked at construction")
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// HWC RGB samples.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_raw(self) -> Vec<f32> {
        self.data
    }

    /// Horizontal mirror, `out[y][x] = in[y][W-1-x]` (the flip of flip-test evaluation).
    pub fn hflip(&self) -> Self {
        let w = self.width as usize;
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.chunks_exact(w * 3) {
            for px in row.chunks_exact(3).rev() {
                data.extend_from_slice(px);
            }
        }
        ImageF32 { width: self.width, height: self.height, data }
    }

    /// Rounds every sample half up and clamps it to 0..255, keeping `f32` storage.
    pub(crate) fn quantize(&mut self) {
        for v in &mut self.data {
            *v = round_u8(*v as f64) as f32;
        }
    }

    pub(crate) fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

/// `Math.round` (half up) then clamp, the rule of the reference input generator.
pub(crate) fn round_u8(v: f64) -> u8 {
    let r = (v + 0.5).floor();
    if r.is_nan() || r <= 0.0 {
        0
    } else if r >= 255.0 {
        255
    } else {
        r as u8
    }
}

/// Copies an integer window of `src` (which may reach outside the image: those pixels are 0).
pub(crate) fn crop_zero_padded(src: &RgbImage, x0: i64, y0: i64, w: u32, h: u32) -> ImageF32 {
    let mut out = ImageF32::zeros(w, h);
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let xs = x0.max(0);
    let xe = (x0 + w as i64).min(sw);
    if xs >= xe {
        return out;
    }
    for oy in 0..h as i64 {
        let sy = y0 + oy;
        if sy < 0 || sy >= sh {
            continue;
        }
        let s = ((sy * sw + xs) * 3) as usize;
        let e = ((sy * sw + xe) * 3) as usize;
        let d = ((oy * w as i64 + (xs - x0)) * 3) as usize;
        for (o, &v) in out.data[d..d + (e - s)].iter_mut().zip(&raw[s..e]) {
            *o = v as f32;
        }
    }
    out
}

/// face-api `padToSquare(img, isCenterImage=true)`: zero-pads the short side; of the
/// difference, `round(diff*0.5)` goes after and the rest before.
pub(crate) fn pad_to_square_centre(img: ImageF32) -> ImageF32 {
    let (w, h) = (img.width, img.height);
    if w == h {
        return img;
    }
    let side = w.max(h);
    let diff = side - w.min(h);
    let after = (diff as f64 * 0.5).round() as u32; // JS Math.round; diff*0.5 >= 0
    let before = diff - after;
    let (ox, oy) = if w < h { (before, 0) } else { (0, before) };
    let mut out = ImageF32::zeros(side, side);
    let row = w as usize * 3;
    for y in 0..h as usize {
        let d = ((y + oy as usize) * side as usize + ox as usize) * 3;
        out.data[d..d + row].copy_from_slice(&img.data[y * row..(y + 1) * row]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_up_and_clamp() {
        let cases = [(0.5, 1), (1.5, 2), (2.5, 3), (2.4999, 2), (-0.4, 0), (-3.0, 0), (254.5, 255), (300.0, 255)];
        for (v, want) in cases {
            assert_eq!(round_u8(v), want, "{v}");
        }
        assert_eq!(round_u8(f64::NAN), 0);
    }

    #[test]
    fn hflip_mirrors_columns() {
        let img = ImageF32::from_raw(3, 1, (0..9).map(|v| v as f32).collect()).unwrap();
        assert_eq!(img.hflip().as_slice(), &[6., 7., 8., 3., 4., 5., 0., 1., 2.]);
        assert_eq!(img.hflip().hflip(), img);
    }

    #[test]
    fn pad_to_square_puts_remainder_before() {
        // Width 2, height 5: diff 3, after = round(1.5) = 2, before = 1.
        let img = ImageF32::from_raw(2, 5, vec![9.0; 30]).unwrap();
        let p = pad_to_square_centre(img);
        assert_eq!((p.width(), p.height()), (5, 5));
        let row: Vec<f32> = p.as_slice()[..15].iter().step_by(3).copied().collect();
        assert_eq!(row, [0., 9., 9., 0., 0.]);
        // Wide image: padding rows, top gets the smaller share.
        let p = pad_to_square_centre(ImageF32::from_raw(4, 1, vec![9.0; 12]).unwrap());
        let col: Vec<f32> = p.as_slice().iter().step_by(12).copied().collect();
        assert_eq!(col, [0., 9., 0., 0.]);
    }

    #[test]
    fn zero_padded_crop() {
        let src = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(1 + x + 10 * y) as u8, 0, 0]));
        let c = crop_zero_padded(&src, -1, 1, 3, 2);
        let r: Vec<f32> = c.as_slice().iter().step_by(3).copied().collect();
        assert_eq!(r, [0., 11., 12., 0., 0., 0.]);
        let far = crop_zero_padded(&src, 10, 10, 2, 2);
        assert!(far.as_slice().iter().all(|&v| v == 0.0));
    }
}
