//! The recognition models this build knows, what preprocessing an `--align` value means for
//! each, and how each is described in reports. Kept in one module on purpose: the model
//! registry replaces exactly this.

use facebench_extract::Recipe;
use facebench_image::{Crop, Preprocess, ResizeMode};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelName {
    FaceapiResnet,
    Mobileface,
}

impl ModelName {
    pub const ALL: [ModelName; 2] = [ModelName::FaceapiResnet, ModelName::Mobileface];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::FaceapiResnet => "faceapi-resnet",
            ModelName::Mobileface => "mobileface",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            ModelName::FaceapiResnet => "face-api's dlib ResNet (150x150 RGB, 128-D)",
            ModelName::Mobileface => "MobileFace (112x112 RGB, 256-D)",
        }
    }

    /// `--align landmarks` for this model, in words (LFW reports).
    pub fn landmarks_description(self) -> &'static str {
        match self {
            ModelName::FaceapiResnet => "face-api SSD + 68 landmarks, dlib box, 150x150",
            ModelName::Mobileface => "face-api SSD + 68 landmarks, ArcFace 5-point warp, 112x112",
        }
    }

    /// The crop taken after landmark detection, in words (YTF reports).
    pub fn crop_description(self) -> &'static str {
        match self {
            ModelName::FaceapiResnet => "the dlib box at 150x150",
            ModelName::Mobileface => "the ArcFace 5-point warp to 112x112",
        }
    }

    fn input_side(self) -> u32 {
        match self {
            ModelName::FaceapiResnet => 150,
            ModelName::Mobileface => 112,
        }
    }

    /// The preprocessing an `--align` value means for this model: `none`, `centre:S`
    /// (or `center:S`), or `landmarks` (the model's own alignment).
    pub fn recipe(self, align: &str) -> Result<Recipe> {
        let size = self.input_side();
        let plain = |crop| Preprocess { width: size, height: size, crop, resize: ResizeMode::Area, round: false };
        Ok(match align {
            "none" => Recipe { preprocess: plain(Crop::None), uses_alignment: false },
            "landmarks" => Recipe {
                preprocess: match self {
                    ModelName::FaceapiResnet => Preprocess::faceapi_resnet(),
                    ModelName::Mobileface => Preprocess::arcface(112),
                },
                uses_alignment: true,
            },
            a => match a.strip_prefix("centre:").or_else(|| a.strip_prefix("center:")) {
                Some(s) => {
                    let side: u32 =
                        s.parse().map_err(|_| Error::Invalid(format!("--align {a}: side must be a whole number")))?;
                    Recipe { preprocess: plain(Crop::Centre { side: Some(side) }), uses_alignment: false }
                }
                None => return Err(Error::Invalid(format!("--align {a}: expected none, centre:S or landmarks"))),
            },
        })
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ModelName::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = ModelName::ALL.iter().map(|m| m.as_str()).collect();
            Error::Invalid(format!("unknown model {s:?}; known: {}", known.join(", ")))
        })
    }
}
