use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::{arcface_template, faceapi_dlib_box, points5_from_68, warp_similarity};
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
    /// to square, TF legacy bilinear to 150x150, unrounded.
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
        if self.width == 0 || self.height == 0 {
            return Err(Error::BadSpec(format!(
                "output size {}x{} is empty",
                self.width, self.height
            )));
        }
        match &self.crop {
            Crop::Centre { side: Some(0) } => {
                Err(Error::BadSpec("centre crop side is 0".to_string()))
            }
            Crop::FaceBox { margin, .. } if !(margin.is_finite() && *margin > -1.0) => Err(
                Error::BadSpec(format!("face box margin {margin} must be finite and > -1")),
            ),
            Crop::Similarity { template: Some(t) } if t.iter().flatten().any(|v| !v.is_finite()) => {
                Err(Error::BadSpec("similarity template has a non-finite coordinate".to_string()))
            }
            Crop::Similarity { template: None } if self.width != self.height => {
                Err(Error::BadSpec(format!(
                    "the default ArcFace template needs a square output, got {}x{}: give a template",
                    self.width, self.height
                )))
            }
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
                let x0 = (iw as i64 - side as i64).div_euclid(2);
                let y0 = (ih as i64 - side as i64).div_euclid(2);
                resize(
                    &crop_zero_padded(img, x0, y0, side, side),
                    w,
                    h,
                    self.resize,
                )
            }
            Crop::FaceBox {
                margin,
                square,
                border,
            } => {
                let [bx, by, bw, bh] = face.bbox.ok_or(Error::MissingAnnotation {
                    crop: "face_box",
                    needed: "a face box",
                })?;
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
                let (mut x0, mut y0) = (
                    (cx - gw / 2.0).round() as i64,
                    (cy - gh / 2.0).round() as i64,
                );
                let (mut x1, mut y1) = (
                    (cx + gw / 2.0).round() as i64,
                    (cy + gh / 2.0).round() as i64,
                );
                if *border == Border::Clip {
                    x0 = x0.max(0);
                    y0 = y0.max(0);
                    x1 = x1.min(iw as i64);
                    y1 = y1.min(ih as i64);
                }
                if x1 <= x0
                    || y1 <= y0
                    || (*border == Border::Clip && (x0 >= iw as i64 || y0 >= ih as i64))
                {
                    return Err(Error::Degenerate(format!(
                        "face box [{bx}, {by}, {bw}, {bh}] with margin {margin} leaves no pixel of the {iw}x{ih} image"
                    )));
                }
                let crop = crop_zero_padded(img, x0, y0, (x1 - x0) as u32, (y1 - y0) as u32);
                resize(&crop, w, h, self.resize)
            }
            Crop::Similarity { template } => {
                let src = match (&face.points5, &face.landmarks68) {
                    (Some(p), _) => *p,
                    (None, Some(l)) => points5_from_68(l)?,
                    (None, None) => {
                        return Err(Error::MissingAnnotation {
                            crop: "similarity",
                            needed: "5 points or 68 landmarks",
                        })
                    }
                };
                let dst = template.unwrap_or_else(|| arcface_template(w));
                let m = Similarity::estimate(&src, &dst)?;
                warp_similarity(img, &m, w, h)?
            }
            Crop::FaceApiDlibBox => {
                let l = face.landmarks68.as_ref().ok_or(Error::MissingAnnotation {
                    crop: "face_api_dlib_box",
                    needed: "68 landmarks",
                })?;
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
