//! A recognition model as the pipeline uses it: found by name in the model registry
//! (`protocols/models.toml`), or a checkpoint written by `facebench train --images`. What an
//! `--align` value means for it, and the words reports use for its crop, come from what the
//! model declares ([`FaceModel::preprocessing`] and its registry entry), never from its name.

use std::path::Path;

use facebench_extract::Recipe;
use facebench_image::{Crop, Preprocess, ResizeMode};
use facebench_lmcl::TrainedBackbone;
use facebench_model::{Alignment, FaceModel, LandmarkSource, Registry};

use crate::{Error, Result};

/// A loaded network with the words reports use for it.
pub struct Model {
    net: Box<dyn FaceModel>,
    /// How the crop reads in a sentence ("... then the dlib box at 150x150").
    crop: String,
}

impl Model {
    /// `name_or_path` is a registry name, or an existing file: a trained backbone checkpoint.
    /// An unknown name is an error listing the registry's names.
    pub(crate) fn load(registry: &Path, name_or_path: &str, models_dir: &Path, device: &str) -> Result<Model> {
        let device = &facebench_model::device_from_name(device)?;
        let path = Path::new(name_or_path);
        if path.is_file() {
            let net = TrainedBackbone::load(path, device)?;
            let crop = alignment_words(&net);
            return Ok(Model { net: Box::new(net), crop });
        }
        let registry = Registry::load(registry).map_err(facebench_model::Error::from)?;
        let net = registry.load_model(name_or_path, models_dir, device)?;
        let crop = net.spec().alignment.crop.clone();
        Ok(Model { net: Box::new(net), crop })
    }

    /// The registry name, or the checkpoint's file stem; recorded in stores and reports.
    pub fn name(&self) -> &str {
        self.net.name()
    }

    pub fn net(&self) -> &dyn FaceModel {
        self.net.as_ref()
    }

    /// The crop taken after landmark detection, in words (YTF reports).
    pub fn crop_description(&self) -> &str {
        &self.crop
    }

    /// `--align landmarks` for this model, in words (LFW reports): where the landmarks come
    /// from, the template and the input size.
    pub fn landmarks_description(&self) -> String {
        let p = self.net.preprocessing();
        let source = match p.landmarks {
            Some(LandmarkSource::Faceapi68) => "face-api SSD + 68 landmarks, ",
            None => "",
        };
        format!("{source}{}, {}x{}", template_words(p.alignment), p.input.width, p.input.height)
    }

    /// The preprocessing an `--align` value means for this model: `none`, `centre:S`
    /// (or `center:S`), or `landmarks` (the model's own declared alignment).
    pub fn recipe(&self, align: &str) -> Result<Recipe> {
        let p = self.net.preprocessing();
        let (width, height) = (p.input.width as u32, p.input.height as u32);
        let plain = |crop| Preprocess { width, height, crop, resize: ResizeMode::Area, round: false };
        Ok(match align {
            "none" => Recipe { preprocess: plain(Crop::None), uses_alignment: false },
            "landmarks" => match p.alignment {
                Alignment::FaceapiDlibBox => Recipe { preprocess: Preprocess::faceapi_resnet(), uses_alignment: true },
                Alignment::Arcface112 => Recipe { preprocess: Preprocess::arcface(112), uses_alignment: true },
                Alignment::Centre { side } => {
                    Recipe { preprocess: plain(Crop::Centre { side }), uses_alignment: false }
                }
                Alignment::None => Recipe { preprocess: plain(Crop::None), uses_alignment: false },
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

/// A template in words, as the LFW report names it.
fn template_words(a: Alignment) -> String {
    match a {
        Alignment::FaceapiDlibBox => "dlib box".into(),
        Alignment::Arcface112 => "ArcFace 5-point warp".into(),
        Alignment::Centre { side: Some(s) } => format!("centre square of {s} px"),
        Alignment::Centre { side: None } => "centre square".into(),
        Alignment::None => "whole image".into(),
    }
}

/// The crop sentence of a model without a registry entry ("the centre square of 128 px at 64x64").
fn alignment_words(net: &dyn FaceModel) -> String {
    let p = net.preprocessing();
    format!("the {} at {}x{}", template_words(p.alignment), p.input.width, p.input.height)
}
