use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::{arcface_template, check_output_size, faceapi_dlib_box, points5_from_68, warp_similarity};
use crate::pixels::{crop_zero_padded, pad_to_square_centre, ImageF32};
use crate::resize::{resize, ResizeMode};
use crate::{Error, Result, Similarity};

/// A declarative recipe from a decoded photo to a model's input pixels. Serialisable so
/// that protocol and model files can state it, e.g.
/// `{"width":112,"height":112,"crop":{"kind":"similarity"},"resize":"area","round":true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Output width in pixels (the model's input width).
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    pub crop: Crop,
    /// Resampling for the crops that resize (all but [`Crop::Similarity`], which warps
    /// bilinearly).
    #[serde(default = "default_resize")]
    pub resize: ResizeMode,
    /// Round the result half up and clamp to 0..255, as a pipeline that stores 8-bit images
    /// does (the reference PNGs, `cv2.warpAffine` on `uint8`). face-api's own pipeline feeds
    /// unrounded floats.
    #[serde(default = "default_round")]
    pub round: bool,
}

fn default_resize() -> ResizeMode {
    ResizeMode::Area
}

fn default_round() -> bool {
    true
}

/// Which region of the photo becomes the model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Crop {
    /// The image already is the model's input crop; it is only resized if its size differs.
    None,
    /// Centred square of side `side` (default `min(W, H)`) at `x = floor((W - side)/2)`,
    /// `y = floor((H - side)/2)`; parts outside the image are zero.
    Centre {
        #[serde(default)]
        side: Option<u32>,
    },
    /// The face box of [`FaceAnnotation::bbox`], grown by `margin` (a fraction of its width
    /// and height, added half on each side: 0.2 adds 10% per side), optionally made square
    /// (side = the larger dimension, same centre). Edges are rounded to whole pixels
    /// (half away from zero). `border` says what happens where the box leaves the image.
    FaceBox {
        #[serde(default)]
        margin: f64,
        #[serde(default)]
        square: bool,
        #[serde(default)]
        border: Border,
    },
    /// 5-point similarity warp (points from [`FaceAnnotation::points5`], else derived from the
    /// 68 landmarks by [`crate::points5_from_68`]) onto `template`, in output pixels. Without a
    /// template: the ArcFace template for a square output ([`crate::arcface_template`]).
    Similarity {
        #[serde(default)]
        template: Option<[[f64; 2]; 5]>,
    },
    /// face-api's recognition crop: [`crate::faceapi_dlib_box`] from the 68 landmarks,
    /// integer slice clipped to the image, `padToSquare` (zeros; `round(diff/2)` after, the
    /// rest before), then resized if not already the output size.
    FaceApiDlibBox,
}

impl std::str::FromStr for Crop {
    type Err = Error;

    /// Command-line names: `none`, `centre[:SIDE]` (or `center`), `face_box[:MARGIN]`
    /// (zero border, not squared), `arcface` (or `similarity`: the ArcFace template) and
    /// `dlib` (or `face_api_dlib_box`).
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let bad = || {
            Error::BadSpec(format!(
                "unknown crop `{s}`: expected none, centre[:SIDE], face_box[:MARGIN], arcface or dlib"
            ))
        };
        let crop = match (name, arg) {
            ("none", None) => Crop::None,
            ("centre" | "center", side) => {
                Crop::Centre { side: side.map(|a| a.parse::<u32>().map_err(|_| bad())).transpose()? }
            }
            ("face_box", margin) => Crop::FaceBox {
                margin: margin.map(|a| a.parse::<f64>().map_err(|_| bad())).transpose()?.unwrap_or(0.0),
                square: false,
                border: Border::Zero,
            },
            ("arcface" | "similarity", None) => Crop::Similarity { template: None },
            ("dlib" | "face_api_dlib_box", None) => Crop::FaceApiDlibBox,
            _ => return Err(bad()),
        };
        Ok(crop)
    }
}

/// Treatment of a face box that reaches outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Border {
    /// Keep the box; pixels outside the image are zero (the face keeps its place and scale).
    #[default]
    Zero,
    /// Cut the box at the image borders (the result may change aspect before resizing).
    Clip,
}

/// Per-face geometry in pixel coordinates of the original image, as a detector and landmark
/// net give it (the shape of the alignment cache's face entries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceAnnotation {
    /// Face box `[x, y, w, h]`.
    #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// 68 iBUG landmarks `[x, y]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks68: Option<Vec<[f64; 2]>>,
    /// Left eye, right eye, nose tip, left and right mouth corner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points5: Option<[[f64; 2]; 5]>,
}

impl Preprocess {
    /// face-api's own input for its ResNet recogniser (`faceapi-resnet`): dlib box, zero pad
    /// to square, TF legacy bilinear to 150x150, unrounded (bit-identical to face-api's
    /// `extractFaceTensors` + `toBatchTensor(150)`). The reference PNGs `*_box150` instead use
    /// this crop with `resize: Area, round: true`.
    pub fn faceapi_resnet() -> Self {
        Preprocess {
            width: 150,
            height: 150,
            crop: Crop::FaceApiDlibBox,
            resize: ResizeMode::BilinearTfLegacy,
            round: false,
        }
    }

    /// ArcFace 5-point warp to a `size` x `size` crop, rounded to 8 bits (InsightFace's
    /// `norm_crop`).
    pub fn arcface(size: u32) -> Self {
        Preprocess {
            width: size,
            height: size,
            crop: Crop::Similarity { template: None },
            resize: ResizeMode::BilinearHalfPixel,
            round: true,
        }
    }

    /// Checks the numbers a deserialised description may get wrong.
    pub fn validate(&self) -> Result<()> {
        check_output_size(self.width, self.height)?;
        match &self.crop {
            Crop::Centre { side: Some(0) } => Err(Error::BadSpec("centre crop side is 0".to_string())),
            Crop::FaceBox { margin, .. } if !(margin.is_finite() && *margin > -1.0) => {
                Err(Error::BadSpec(format!("face box margin {margin} must be finite and > -1")))
            }
            Crop::Similarity { template: Some(t) } if t.iter().flatten().any(|v| !v.is_finite()) => {
                Err(Error::BadSpec("similarity template has a non-finite coordinate".to_string()))
            }
            Crop::Similarity { template: None } if self.width != self.height => Err(Error::BadSpec(format!(
                "the default ArcFace template needs a square output, got {}x{}: give a template",
                self.width, self.height
            ))),
            _ => Ok(()),
        }
    }

    /// Applies the recipe to one decoded image and the face's geometry (ignored by
    /// [`Crop::None`] and [`Crop::Centre`]).
    pub fn apply(&self, img: &RgbImage, face: &FaceAnnotation) -> Result<ImageF32> {
        self.validate()?;
        let (w, h) = (self.width, self.height);
        let (iw, ih) = (img.width(), img.height());
        if iw == 0 || ih == 0 {
            return Err(Error::Degenerate("the image is empty".to_string()));
        }
        let mut out = match &self.crop {
            Crop::None => resize(&ImageF32::from_rgb8(img), w, h, self.resize),
            Crop::Centre { side } => {
                let side = side.unwrap_or(iw.min(ih));
                check_crop(side as i64, side as i64, iw, ih)
                    .map_err(|most| Error::BadSpec(format!("centre crop side {side} {most}")))?;
                let x0 = (iw as i64 - side as i64).div_euclid(2);
                let y0 = (ih as i64 - side as i64).div_euclid(2);
                resize(&crop_zero_padded(img, x0, y0, side, side), w, h, self.resize)
            }
            Crop::FaceBox { margin, square, border } => {
                let [bx, by, bw, bh] =
                    face.bbox.ok_or(Error::MissingAnnotation { crop: "face_box", needed: "a face box" })?;
                if [bx, by, bw, bh].iter().any(|v| !v.is_finite()) || bw <= 0.0 || bh <= 0.0 {
                    return Err(Error::BadAnnotation(format!(
                        "face box [{bx}, {by}, {bw}, {bh}] is not a finite box of positive size"
                    )));
                }
                let (cx, cy) = (bx + bw / 2.0, by + bh / 2.0);
                let (mut gw, mut gh) = (bw * (1.0 + margin), bh * (1.0 + margin));
                if *square {
                    gw = gw.max(gh);
                    gh = gw;
                }
                let (mut x0, mut y0) = ((cx - gw / 2.0).round() as i64, (cy - gh / 2.0).round() as i64);
                let (mut x1, mut y1) = ((cx + gw / 2.0).round() as i64, (cy + gh / 2.0).round() as i64);
                if *border == Border::Clip {
                    x0 = x0.max(0);
                    y0 = y0.max(0);
                    x1 = x1.min(iw as i64);
                    y1 = y1.min(ih as i64);
                }
                if x1 <= x0 || y1 <= y0 || (*border == Border::Clip && (x0 >= iw as i64 || y0 >= ih as i64)) {
                    return Err(Error::Degenerate(format!(
                        "face box [{bx}, {by}, {bw}, {bh}] with margin {margin} leaves no pixel of the {iw}x{ih} image"
                    )));
                }
                let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
                check_crop(cw, ch, iw, ih).map_err(|most| {
                    Error::BadAnnotation(format!(
                        "face box [{bx}, {by}, {bw}, {bh}] with margin {margin} gives a {cw}x{ch} crop, which {most}"
                    ))
                })?;
                let crop = crop_zero_padded(img, x0, y0, (x1 - x0) as u32, (y1 - y0) as u32);
                resize(&crop, w, h, self.resize)
            }
            Crop::Similarity { template } => {
                let src = match (&face.points5, &face.landmarks68) {
                    (Some(p), _) => *p,
                    (None, Some(l)) => points5_from_68(l)?,
                    (None, None) => {
                        return Err(Error::MissingAnnotation { crop: "similarity", needed: "5 points or 68 landmarks" })
                    }
                };
                let dst = template.unwrap_or_else(|| arcface_template(w));
                let m = Similarity::estimate(&src, &dst)?;
                warp_similarity(img, &m, w, h)?
            }
            Crop::FaceApiDlibBox => {
                let l = face
                    .landmarks68
                    .as_ref()
                    .ok_or(Error::MissingAnnotation { crop: "face_api_dlib_box", needed: "68 landmarks" })?;
                let b = faceapi_dlib_box(l, iw, ih)?;
                let crop = crop_zero_padded(img, b.x as i64, b.y as i64, b.w, b.h);
                resize(&pad_to_square_centre(crop), w, h, self.resize)
            }
        };
        if self.round {
            out.quantize();
        }
        Ok(out)
    }
}

/// How far a zero-padded crop may exceed the image: its sides at most this many times the
/// image's longer side. Beyond that the crop is nearly all padding, and a typo such as
/// `centre:100000` would allocate 120 GB before failing.
const MAX_CROP_FACTOR: i64 = 4;

/// Checks a `cw` x `ch` crop of an `iw` x `ih` image before it is allocated; the error is
/// the end of a sentence naming the limit and the image.
fn check_crop(cw: i64, ch: i64, iw: u32, ih: u32) -> std::result::Result<(), String> {
    let most = MAX_CROP_FACTOR * iw.max(ih) as i64;
    if cw > most || ch > most {
        return Err(format!(
            "is too large for the {iw}x{ih} image: a crop may be at most {MAX_CROP_FACTOR}x the image's longer side ({most} pixels)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    fn spec(w: u32, h: u32, crop: Crop) -> Preprocess {
        Preprocess { width: w, height: h, crop, resize: ResizeMode::Area, round: true }
    }

    #[test]
    fn none_keeps_an_input_sized_image_and_resizes_others() {
        let img = photo(4, 4);
        let same = spec(4, 4, Crop::None).apply(&img, &FaceAnnotation::default()).unwrap();
        assert_eq!(same.to_rgb8(), img);
        let half = spec(2, 2, Crop::None).apply(&img, &FaceAnnotation::default()).unwrap();
        // Area 2x: mean of x in {0,1} = 0.5 -> rounds half up to 1.
        assert_eq!(half.to_rgb8().get_pixel(0, 0), &image::Rgb([1, 1, 7]));
    }

    #[test]
    fn centre_crop_position() {
        // 9x4 image, side 4: x0 = floor(5/2) = 2.
        let out = spec(4, 4, Crop::Centre { side: None }).apply(&photo(9, 4), &FaceAnnotation::default()).unwrap();
        assert_eq!(out.to_rgb8().get_pixel(0, 0)[0], 2);
        // Side larger than the image: zero border, x0 = floor(-2/2) = -1.
        let out = spec(6, 6, Crop::Centre { side: Some(6) }).apply(&photo(4, 4), &FaceAnnotation::default()).unwrap();
        let o = out.to_rgb8();
        assert_eq!(o.get_pixel(0, 0), &image::Rgb([0, 0, 0]));
        assert_eq!(o.get_pixel(1, 1), &image::Rgb([0, 0, 7]));
        assert_eq!(o.get_pixel(4, 4), &image::Rgb([3, 3, 7]));
    }

    #[test]
    fn face_box_margin_square_and_border() {
        let face = FaceAnnotation { bbox: Some([10.0, 20.0, 8.0, 4.0]), ..Default::default() };
        // margin 0.5: 12x6 box centred at (14, 22) -> [8, 20) x [19, 25); same size out.
        let out = spec(12, 6, Crop::FaceBox { margin: 0.5, square: false, border: Border::Zero })
            .apply(&photo(40, 40), &face)
            .unwrap()
            .to_rgb8();
        assert_eq!(out.get_pixel(0, 0), &image::Rgb([8, 19, 7]));
        assert_eq!(out.get_pixel(11, 5), &image::Rgb([19, 24, 7]));
        // square: 12x12 around the same centre -> [8, 20) x [16, 28).
        let out = spec(12, 12, Crop::FaceBox { margin: 0.5, square: true, border: Border::Zero })
            .apply(&photo(40, 40), &face)
            .unwrap()
            .to_rgb8();
        assert_eq!(out.get_pixel(0, 0), &image::Rgb([8, 16, 7]));
        // Near the border: zero keeps the box, clip cuts it.
        let edge = FaceAnnotation { bbox: Some([-2.0, 0.0, 4.0, 4.0]), ..Default::default() };
        let z = spec(4, 4, Crop::FaceBox { margin: 0.0, square: false, border: Border::Zero })
            .apply(&photo(10, 10), &edge)
            .unwrap()
            .to_rgb8();
        assert_eq!((z.get_pixel(1, 0)[2], z.get_pixel(2, 0)[2]), (0, 7));
        let c = spec(2, 4, Crop::FaceBox { margin: 0.0, square: false, border: Border::Clip })
            .apply(&photo(10, 10), &edge)
            .unwrap()
            .to_rgb8();
        assert_eq!(c.get_pixel(0, 0), &image::Rgb([0, 0, 7]));
        let outside = FaceAnnotation { bbox: Some([50.0, 50.0, 4.0, 4.0]), ..Default::default() };
        let e = spec(4, 4, Crop::FaceBox { margin: 0.0, square: false, border: Border::Clip })
            .apply(&photo(10, 10), &outside);
        assert!(matches!(e, Err(Error::Degenerate(_))));
    }

    #[test]
    fn similarity_with_given_template_is_a_pure_crop() {
        // Template = points shifted by (-5, -3): the warp is a translation, so the output is
        // the 6x4 window starting at (5, 3).
        let pts = [[6.0, 4.0], [9.0, 4.0], [7.5, 5.0], [6.5, 6.0], [8.5, 6.0]];
        let template = pts.map(|[x, y]| [x - 5.0, y - 3.0]);
        let face = FaceAnnotation { points5: Some(pts), ..Default::default() };
        let out = spec(6, 4, Crop::Similarity { template: Some(template) }).apply(&photo(20, 20), &face).unwrap();
        assert_eq!(out.to_rgb8().get_pixel(0, 0), &image::Rgb([5, 3, 7]));
        assert_eq!(out.to_rgb8().get_pixel(5, 3), &image::Rgb([10, 6, 7]));
    }

    #[test]
    fn missing_geometry_and_bad_specs_are_errors() {
        let img = photo(8, 8);
        let none = FaceAnnotation::default();
        for crop in [
            Crop::Similarity { template: None },
            Crop::FaceApiDlibBox,
            Crop::FaceBox { margin: 0.0, square: false, border: Border::Zero },
        ] {
            let e = spec(4, 4, crop).apply(&img, &none).unwrap_err();
            assert!(matches!(e, Error::MissingAnnotation { .. }), "{e}");
        }
        assert!(matches!(spec(0, 4, Crop::None).validate(), Err(Error::BadSpec(_))));
        assert!(matches!(spec(4, 4, Crop::Centre { side: Some(0) }).validate(), Err(Error::BadSpec(_))));
        assert!(matches!(spec(4, 2, Crop::Similarity { template: None }).validate(), Err(Error::BadSpec(_))));
        let m = Crop::FaceBox { margin: f64::NAN, square: false, border: Border::Zero };
        assert!(matches!(spec(4, 4, m).validate(), Err(Error::BadSpec(_))));
        let short = FaceAnnotation { landmarks68: Some(vec![[1.0, 1.0]; 60]), ..Default::default() };
        let e = spec(4, 4, Crop::FaceApiDlibBox).apply(&img, &short).unwrap_err();
        assert!(e.to_string().contains("expected 68 landmarks, got 60"), "{e}");
    }

    #[test]
    fn faceapi_pipeline_pads_then_tf_bilinear_unrounded() {
        // Landmarks whose dlib box is cut by the bottom border: the clipped crop is padded to
        // a square and resized with TF legacy bilinear, unrounded.
        let mut l = vec![[0.0, 0.0]; 68];
        l[36..42].fill([2.0, 2.0]);
        l[42..48].fill([6.0, 2.0]);
        l[48..68].fill([4.0, 6.0]);
        // eye-mouth distance hypot(2, 4) = 4.47 -> size floor(9.94) = 9; centre (4, 3.33);
        // x = floor(4 - 4.5) -> 0, y = floor(3.33 - 3.87) -> 0; the 9x9 box is cut to 9x6.
        let img = RgbImage::from_fn(12, 6, |x, _| image::Rgb([90, (x * x) as u8, 0]));
        let face = FaceAnnotation { landmarks68: Some(l), ..Default::default() };
        let mut p = Preprocess::faceapi_resnet();
        p.width = 6;
        p.height = 6;
        let out = p.apply(&img, &face).unwrap();
        // padToSquare: 3 rows of zeros, 1 before (rows 0) and 2 after (rows 7, 8) of 9.
        // TF legacy 9 -> 6: source = 1.5 * dst: 0, 1.5, 3, 4.5, 6, 7.5 (rows 7, 8 are zero).
        let col: Vec<f32> = (0..6).map(|r| out.as_slice()[r * 6 * 3]).collect();
        assert_eq!(col, [0.0, 90.0, 90.0, 90.0, 90.0, 0.0]);
        // Green = x^2 along a row: columns 1.5 and 4.5 interpolate 1..4 and 16..25, unrounded.
        let row: Vec<f32> = (0..6).map(|c| out.as_slice()[(6 + c) * 3 + 1]).collect();
        assert_eq!(row, [0.0, 2.5, 9.0, 20.5, 36.0, 56.5]);
    }

    #[test]
    fn crop_names() {
        assert_eq!("none".parse::<Crop>().unwrap(), Crop::None);
        assert_eq!("centre:150".parse::<Crop>().unwrap(), Crop::Centre { side: Some(150) });
        assert_eq!("center".parse::<Crop>().unwrap(), Crop::Centre { side: None });
        assert_eq!(
            "face_box:0.2".parse::<Crop>().unwrap(),
            Crop::FaceBox { margin: 0.2, square: false, border: Border::Zero }
        );
        assert_eq!("arcface".parse::<Crop>().unwrap(), Crop::Similarity { template: None });
        assert_eq!("dlib".parse::<Crop>().unwrap(), Crop::FaceApiDlibBox);
        for bad in ["centre:big", "spiral", "none:3", "dlib:1", ""] {
            let e = bad.parse::<Crop>().unwrap_err();
            assert!(e.to_string().contains("unknown crop"), "{bad}: {e}");
        }
    }

    #[test]
    fn json_round_trip() {
        let p = Preprocess::arcface(112);
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Preprocess>(&text).unwrap(), p);
        let q: Preprocess = serde_json::from_str(
            r#"{"width":150,"height":150,"crop":{"kind":"face_box","margin":0.2,"border":"clip"}}"#,
        )
        .unwrap();
        assert_eq!(q.crop, Crop::FaceBox { margin: 0.2, square: false, border: Border::Clip });
        assert_eq!((q.resize, q.round), (ResizeMode::Area, true));
        let c: Preprocess =
            serde_json::from_str(r#"{"width":112,"height":112,"crop":{"kind":"centre","side":150}}"#).unwrap();
        assert_eq!(c.crop, Crop::Centre { side: Some(150) });
        for (kind, crop) in [("none", Crop::None), ("face_api_dlib_box", Crop::FaceApiDlibBox)] {
            let text = format!(
                r#"{{"width":150,"height":150,"crop":{{"kind":"{kind}"}},"resize":"bilinear_tf_legacy","round":false}}"#
            );
            let p: Preprocess = serde_json::from_str(&text).unwrap();
            assert_eq!((p.crop, p.resize, p.round), (crop, ResizeMode::BilinearTfLegacy, false));
        }
        assert!(serde_json::from_str::<Preprocess>(r#"{"width":1,"height":1,"crop":{"kind":"spiral"}}"#).is_err());
        let f: FaceAnnotation = serde_json::from_str(r#"{"box":[1,2,3,4],"score":0.9}"#).unwrap_or_default();
        assert_eq!(f.bbox, Some([1.0, 2.0, 3.0, 4.0]));
    }
}
