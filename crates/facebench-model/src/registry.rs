//! The model registry (`protocols/models.toml`): every pretrained model as data — where its
//! files come from and their checksums, which Rust port builds it, what it is fed and how a
//! photo becomes that input. [`Registry::load_model`] builds a network from its entry.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tfjs::TfjsWeights;
use crate::{FaceModel, FaceapiResnet, InputSpec, MobileFace};

/// The registry file: packages, recognition models, other fetched files.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
    packages: Vec<Package>,
    models: Vec<ModelSpec>,
    assets: Vec<Asset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    package: Vec<Package>,
    #[serde(default)]
    model: Vec<ModelSpec>,
    #[serde(default)]
    asset: Vec<Asset>,
}

/// An archive files are taken from, fetched by exact version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    /// `npm:NAME@VERSION` or `pypi:NAME==VERSION`.
    pub source: String,
    /// sha256 of the downloaded archive.
    pub sha256: String,
}

/// One file taken from a package.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path inside the package archive.
    pub path: String,
    pub sha256: String,
    /// Path under the models dir.
    pub dest: String,
}

/// Which Rust port builds a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    FaceapiResnet,
    Mobileface,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// A TF.js weights manifest with its `.bin` shards.
    Tfjs,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub format: WeightFormat,
    /// `dest` of the manifest among the model's files.
    pub manifest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    /// `[batch, height, width, channel]`.
    #[serde(rename = "NHWC")]
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Colour {
    /// Channel 0 is red.
    #[serde(rename = "RGB")]
    Rgb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// The graph scales its input itself: feed the declared range unchanged.
    Network,
}

/// What one image must be when it reaches the network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    pub width: usize,
    pub height: usize,
    pub layout: Layout,
    pub colour: Colour,
    /// Values fed, `[min, max]`.
    pub range: [f32; 2],
    pub normalisation: Normalisation,
}

/// How a photo is cut to the network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alignment {
    /// The image already is the input crop; it is only resized.
    None,
    /// A centred square of `side` pixels (whole shorter side if `None`), then resized.
    #[serde(skip)]
    Centre { side: Option<u32> },
    /// face-api's box around the 68 landmarks (dlib style), resized to the input size.
    FaceapiDlibBox,
    /// The ArcFace 5-point similarity warp to 112x112.
    #[serde(rename = "arcface-112")]
    Arcface112,
}

/// Where the landmarks an alignment needs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandmarkSource {
    /// face-api's SSD detector and 68-point landmark net.
    #[serde(rename = "faceapi-68")]
    Faceapi68,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignmentDecl {
    pub template: Alignment,
    /// Needed by the templates that place landmarks (all but `none`).
    #[serde(default)]
    pub landmarks: Option<LandmarkSource>,
    /// How the crop reads in a sentence ("... then the dlib box at 150x150").
    pub crop: String,
}

/// An accuracy published for a model's weights.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub benchmark: String,
    /// Percent.
    pub accuracy: f64,
    pub source: String,
}

/// One `[[model]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub architecture: Architecture,
    pub description: String,
    pub training_data: String,
    pub package: String,
    pub embedding_dim: usize,
    pub weights: Weights,
    pub input: InputDecl,
    pub alignment: AlignmentDecl,
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub published: Vec<Published>,
}

/// One `[[asset]]` entry: files fetched beside the models (detector, landmarks, photos).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub name: String,
    pub description: String,
    pub package: String,
    pub files: Vec<FileSpec>,
}

/// What a model declares about its input: what the network is fed and how a photo becomes it.
/// A pipeline builds its image recipe from this instead of from the model's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    pub input: InputSpec,
    pub alignment: Alignment,
    /// `None` when the alignment needs no landmarks.
    pub landmarks: Option<LandmarkSource>,
}

impl ModelSpec {
    pub fn preprocessing(&self) -> Preprocessing {
        let i = &self.input;
        Preprocessing {
            input: InputSpec {
                width: i.width,
                height: i.height,
                rgb: i.colour == Colour::Rgb,
                value_min: i.range[0],
                value_max: i.range[1],
            },
            alignment: self.alignment.template,
            landmarks: self.alignment.landmarks,
        }
    }

    /// The manifest path under `models_dir`.
    pub fn manifest_path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.weights.manifest)
    }
}

/// A network built from its registry entry: the network, and the entry it was built from.
pub struct LoadedModel {
    spec: ModelSpec,
    net: Box<dyn FaceModel>,
}

impl LoadedModel {
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl FaceModel for LoadedModel {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn input_spec(&self) -> InputSpec {
        self.net.input_spec()
    }
    fn embedding_dim(&self) -> usize {
        self.net.embedding_dim()
    }
    fn weights_sha256(&self) -> &str {
        self.net.weights_sha256()
    }
    fn device(&self) -> &Device {
        self.net.device()
    }
    fn forward(&self, batch_nhwc: &candle_core::Tensor) -> Result<candle_core::Tensor> {
        self.net.forward(batch_nhwc)
    }
    fn preprocessing(&self) -> Preprocessing {
        self.spec.preprocessing()
    }
}

/// A registry that cannot be read or does not hold together; names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {entry}: {msg}")]
    Invalid { path: PathBuf, entry: String, msg: String },
}

impl Registry {
    /// `$FACEBENCH_MODEL_REGISTRY`, else the repository's `protocols/models.toml`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os("FACEBENCH_MODEL_REGISTRY") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/models.toml"),
        }
    }

    /// Reads and validates the registry at `path`.
    pub fn load(path: impl AsRef<Path>) -> std::result::Result<Registry, RegistryError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| RegistryError::Io { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses registry text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> std::result::Result<Registry, RegistryError> {
        let file: RegistryFile =
            toml::from_str(text).map_err(|e| RegistryError::Parse { path: path.to_path_buf(), source: Box::new(e) })?;
        let r = Registry { path: path.to_path_buf(), packages: file.package, models: file.model, assets: file.asset };
        r.validate()?;
        Ok(r)
    }

    fn invalid(&self, entry: String, msg: impl Into<String>) -> RegistryError {
        RegistryError::Invalid { path: self.path.clone(), entry, msg: msg.into() }
    }

    fn validate(&self) -> std::result::Result<(), RegistryError> {
        let mut packages = HashSet::new();
        for p in &self.packages {
            let entry = format!("package {:?}", p.name);
            if !packages.insert(p.name.as_str()) {
                return Err(self.invalid(entry, "duplicate package name"));
            }
            check_sha256(&p.sha256).map_err(|m| self.invalid(entry.clone(), format!("sha256: {m}")))?;
            if !(p.source.starts_with("npm:") || p.source.starts_with("pypi:")) {
                return Err(self.invalid(
                    entry,
                    format!("source {:?}: expected npm:NAME@VERSION or pypi:NAME==VERSION", p.source),
                ));
            }
        }
        let mut names = HashSet::new();
        let mut dests = HashSet::new();
        let entries = self
            .models
            .iter()
            .map(|m| (format!("model {:?}", m.name), &m.name, &m.package, &m.files))
            .chain(self.assets.iter().map(|a| (format!("asset {:?}", a.name), &a.name, &a.package, &a.files)));
        for (entry, name, package, files) in entries {
            if !names.insert(name.as_str()) {
                return Err(self.invalid(entry, "duplicate name"));
            }
            if !packages.contains(package.as_str()) {
                return Err(self.invalid(entry, format!("package {package:?} is not a [[package]] name")));
            }
            if files.is_empty() {
                return Err(self.invalid(entry, "no files"));
            }
            for f in files {
                check_sha256(&f.sha256)
                    .map_err(|m| self.invalid(entry.clone(), format!("file {:?}: sha256: {m}", f.dest)))?;
                if !dests.insert(f.dest.as_str()) {
                    return Err(self.invalid(entry, format!("file {:?}: dest listed twice", f.dest)));
                }
            }
        }
        for m in &self.models {
            let entry = || format!("model {:?}", m.name);
            if !m.files.iter().any(|f| f.dest == m.weights.manifest) {
                return Err(self.invalid(
                    entry(),
                    format!("weights.manifest {:?} is not a dest of its files", m.weights.manifest),
                ));
            }
            let i = &m.input;
            if i.width == 0 || i.height == 0 || m.embedding_dim == 0 || i.range[0] >= i.range[1] {
                return Err(self.invalid(entry(), "input size, range or embedding_dim is empty"));
            }
            if m.alignment.template != Alignment::None && m.alignment.landmarks.is_none() {
                return Err(self.invalid(entry(), "alignment.landmarks is needed by this template"));
            }
            if m.alignment.template == Alignment::Arcface112 && (i.width, i.height) != (112, 112) {
                return Err(self.invalid(entry(), "alignment.template arcface-112 needs a 112x112 input"));
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }

    /// Model names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }

    /// The entry of model `name`; an unknown name is an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::UnknownModel(name.to_string(), self.names().join(", ")))
    }

    /// Builds model `name` from the files under `models_dir` onto `device`. A missing,
    /// malformed or truncated file is an error naming it and saying to run `make models`;
    /// another model's file lists the missing/unexpected tensors; a file whose bytes differ
    /// from the registry's sha256, or a network that does not match its declared input or
    /// embedding size, is an error too.
    pub fn load_model(&self, name: &str, models_dir: &Path, device: &Device) -> Result<LoadedModel> {
        let spec = self.get(name)?;
        let net: Box<dyn FaceModel> = match spec.weights.format {
            WeightFormat::Tfjs => {
                let w = TfjsWeights::load(spec.manifest_path(models_dir))?;
                match spec.architecture {
                    Architecture::FaceapiResnet => Box::new(FaceapiResnet::from_weights(&w, device)?),
                    Architecture::Mobileface => Box::new(MobileFace::from_weights(&w, device)?),
                }
            }
        };
        // After building, so that a wrong or truncated file gets the more telling error above.
        for f in &spec.files {
            verify_file(&models_dir.join(&f.dest), &f.sha256)?;
        }
        let declared = spec.preprocessing().input;
        if net.input_spec() != declared || net.embedding_dim() != spec.embedding_dim {
            return Err(Error::Input(format!(
                "{}: model {name:?} declares input {declared:?} and {}-D embeddings, but its {:?} port takes {:?} and gives {}-D",
                self.path.display(),
                spec.embedding_dim,
                spec.architecture,
                net.input_spec(),
                net.embedding_dim()
            )));
        }
        Ok(LoadedModel { spec: spec.clone(), net })
    }
}

fn check_sha256(s: &str) -> std::result::Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("{s:?} is not 64 lowercase hex digits"))
    }
}

/// Checks a file's bytes against a sha256 from the registry.
fn verify_file(path: &Path, expected: &str) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let got: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if got != expected {
        return Err(Error::corrupt(path, format!("sha256 {got}, expected {expected} (modified or corrupted)")));
    }
    Ok(())
}
