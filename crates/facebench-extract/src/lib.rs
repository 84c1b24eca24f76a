//! facebench-extract: images in, embedding rows out.
//!
//! A producer thread decodes and preprocesses the next batch in parallel (rayon) while
//! the model runs the current one; each finished batch is appended (and fsynced) to an
//! [`AppendStore`], so a crash or Ctrl-C loses at most the batch in flight and a rerun
//! skips every key already stored.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use facebench_core::overlap::pipelined;
use facebench_core::store::{AppendStore, StoreMeta};
use facebench_image::{decode_file, FaceAnnotation, ImageF32, Preprocess};
use facebench_model::FaceModel;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] facebench_core::Error),
    #[error(transparent)]
    Model(#[from] facebench_model::Error),
    #[error("{key}: {source}")]
    Image {
        key: String,
        #[source]
        source: facebench_image::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(facebench_model::Error::from(e))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How each image becomes model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub preprocess: Preprocess,
    /// Faces come from an alignment cache (`facebench align`); crops that need
    /// landmarks or boxes fail without one.
    pub uses_alignment: bool,
}

impl Recipe {
    /// The text recorded in the store's metadata: two stores agree on it only if
    /// their rows were made the same way.
    pub fn describe(&self, flipped: bool) -> String {
        let mut s = serde_json::to_string(&self.preprocess).expect("serialisable");
        if self.uses_alignment {
            s += " +alignments";
        }
        if flipped {
            s += " +hflip";
        }
        s
    }
}

/// One image that could not be used (only with `skip_bad`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BadImage {
    pub key: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Keys embedded in this run.
    pub computed: usize,
    /// Keys already in the store (a resumed run).
    pub already_stored: usize,
    pub bad: Vec<BadImage>,
    pub seconds: f64,
    /// Seconds the model spent in forward passes (decoding overlaps with it).
    pub model_seconds: f64,
}

impl Summary {
    pub fn images_per_sec(&self) -> f64 {
        self.computed as f64 / self.seconds.max(1e-9)
    }
}

/// Settings of one extraction run.
pub struct Job<'a> {
    pub model: &'a dyn FaceModel,
    pub recipe: &'a Recipe,
    /// Image root; keys are paths relative to it.
    pub root: &'a Path,
    /// Images per forward pass, at least 1.
    pub batch: usize,
    /// Also embed the horizontal mirror of every model input, into `flip_store`.
    pub flip: bool,
    /// Record unreadable images as [`BadImage`] instead of stopping at the first.
    pub skip_bad: bool,
}

/// The metadata of the store a job writes (`flipped` for the mirror store).
pub fn store_meta(job: &Job, flipped: bool) -> StoreMeta {
    StoreMeta {
        model: job.model.name().to_string(),
        weights_sha256: job.model.weights_sha256().to_string(),
        preprocessing: job.recipe.describe(flipped),
        dim: job.model.embedding_dim(),
    }
}

/// A prepared batch: keys and their model inputs, or the keys that failed.
struct Prepared {
    keys: Vec<String>,
    inputs: Vec<ImageF32>,
    bad: Vec<BadImage>,
}

fn prepare(job: &Job, keys: &[String], faces: &HashMap<String, FaceAnnotation>) -> Result<Prepared> {
    let no_face = FaceAnnotation::default();
    let results: Vec<(String, std::result::Result<ImageF32, Error>)> = keys
        .par_iter()
        .map(|key| {
            let r = (|| {
                let face = if job.recipe.uses_alignment {
                    faces.get(key).ok_or_else(|| {
                        Error::Invalid(format!("{key}: not in the alignment cache (run `facebench align` on it)"))
                    })?
                } else {
                    &no_face
                };
                let img = decode_file(job.root.join(key)).map_err(|e| Error::Image { key: key.clone(), source: e })?;
                job.recipe.preprocess.apply(&img, face).map_err(|e| Error::Image { key: key.clone(), source: e })
            })();
            (key.clone(), r)
        })
        .collect();
    let mut p = Prepared { keys: Vec::new(), inputs: Vec::new(), bad: Vec::new() };
    for (key, r) in results {
        match r {
            Ok(img) => {
                p.keys.push(key);
                p.inputs.push(img);
            }
            // A missing alignment is a setup error, never a skippable bad image.
            Err(e @ Error::Image { .. }) if job.skip_bad => p.bad.push(BadImage { key, error: e.to_string() }),
            Err(e) => return Err(e),
        }
    }
    Ok(p)
}

/// Runs the model on prepared inputs (NHWC f32, mirrored first with `flip`), returning one
/// row per input.
pub fn forward(model: &dyn FaceModel, inputs: &[ImageF32], flip: bool) -> Result<Vec<Vec<f32>>> {
    let spec = model.input_spec();
    let mut data = Vec::with_capacity(inputs.len() * spec.width * spec.height * 3);
    for img in inputs {
        if img.width() as usize != spec.width || img.height() as usize != spec.height {
            return Err(Error::Invalid(format!(
                "preprocessing produced {}x{}, model {} needs {}x{}",
                img.width(),
                img.height(),
                model.name(),
                spec.width,
                spec.height
            )));
        }
        if flip {
            data.extend_from_slice(img.hflip().as_slice());
        } else {
            data.extend_from_slice(img.as_slice());
        }
    }
    let x = Tensor::from_vec(data, (inputs.len(), spec.height, spec.width, 3), model.device())?;
    let y = model.forward(&x)?.to_device(&candle_core::Device::Cpu)?;
    Ok(y.to_vec2::<f32>()?)
}

/// Embeds every key not yet in `store` (and `flip_store`), in batches, calling
/// `progress(done)` after each batch with the number of keys handled so far.
pub fn extract(
    job: &Job,
    keys: &[String],
    faces: &HashMap<String, FaceAnnotation>,
    store: &mut AppendStore,
    mut flip_store: Option<&mut AppendStore>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Summary> {
    if job.flip != flip_store.is_some() {
        return Err(Error::Invalid("a flip store is needed exactly when flip is on".into()));
    }
    if job.batch == 0 {
        return Err(Error::Invalid("batch size must be at least 1 image".into()));
    }
    let t0 = Instant::now();
    let todo: Vec<String> = keys
        .iter()
        .filter(|k| !store.contains(k) || flip_store.as_ref().is_some_and(|f| !f.contains(k)))
        .cloned()
        .collect();
    let mut summary = Summary { already_stored: keys.len() - todo.len(), ..Default::default() };
    progress(summary.already_stored);
    let mut done = summary.already_stored;
    pipelined(
        &todo,
        job.batch,
        |_, chunk| prepare(job, chunk, faces),
        |p: Prepared| -> Result<()> {
            done += p.keys.len() + p.bad.len();
            summary.bad.extend(p.bad);
            if !p.keys.is_empty() {
                let t = Instant::now();
                let rows = forward(job.model, &p.inputs, false)?;
                let flipped = if job.flip { Some(forward(job.model, &p.inputs, true)?) } else { None };
                summary.model_seconds += t.elapsed().as_secs_f64();
                check_rows(&p.keys, &rows, job.model)?;
                if let (Some(fs), Some(fr)) = (flip_store.as_deref_mut(), flipped) {
                    check_rows(&p.keys, &fr, job.model)?;
                    let fresh: Vec<(String, Vec<f32>)> =
                        p.keys.iter().cloned().zip(fr).filter(|(k, _)| !fs.contains(k)).collect();
                    fs.append(&fresh)?;
                }
                let fresh: Vec<(String, Vec<f32>)> =
                    p.keys.iter().cloned().zip(rows).filter(|(k, _)| !store.contains(k)).collect();
                store.append(&fresh)?;
                summary.computed += p.keys.len();
            }
            progress(done);
            Ok(())
        },
    )?;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

/// A NaN or wrong-width output names the image, so a broken input is never stored.
fn check_rows(keys: &[String], rows: &[Vec<f32>], model: &dyn FaceModel) -> Result<()> {
    for (k, r) in keys.iter().zip(rows) {
        if r.len() != model.embedding_dim() || r.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "{k}: model {} produced a non-finite or wrong-size embedding",
                model.name()
            )));
        }
    }
    Ok(())
}
