//! facebench-model: candle ports of pretrained face-embedding networks, loaded by name from the
//! TF.js weight files that `make models` fetches and verifies.
//!
//! | name | weights (under the models dir) | input | output |
//! |---|---|---|---|
//! | `faceapi-resnet` | `face-api/face_recognition_model-weights_manifest.json` | 150x150 RGB 0..255 | 128-D |
//! | `mobileface` | `human-models/mobileface.json` | 112x112 RGB 0..255 | 256-D |
//!
//! Each port reproduces the TF.js reference outputs (cosine >= 0.99999, |diff| <= 1e-4; see
//! `tests/reference.rs`). Inputs are NHWC f32 batches, as decoded images naturally are, and the
//! networks run NHWC throughout (TF's layout: filters are used as stored).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};

pub mod error;
pub mod faceapi_resnet;
pub mod mobileface;
pub mod registry;
pub mod tfjs;

pub use error::{Error, Result};
pub use faceapi_resnet::FaceapiResnet;
pub use mobileface::MobileFace;
pub use registry::{Alignment, LandmarkSource, LoadedModel, ModelSpec, Preprocessing, Registry, RegistryError};
pub use tfjs::TfjsWeights;

/// What a model expects to be fed: an `[N, height, width, 3]` f32 tensor of RGB values in
/// `value_min..=value_max` (the networks normalise internally).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    /// Always true for the current models: channel 0 is red.
    pub rgb: bool,
    pub value_min: f32,
    pub value_max: f32,
}

impl InputSpec {
    pub fn rgb_255(width: usize, height: usize) -> Self {
        InputSpec { width, height, rgb: true, value_min: 0.0, value_max: 255.0 }
    }
}

/// A face-embedding network with its weights on a device.
pub trait FaceModel: Send + Sync {
    /// Registry name (`faceapi-resnet`, `mobileface`).
    fn name(&self) -> &str;
    fn input_spec(&self) -> InputSpec;
    fn embedding_dim(&self) -> usize;
    /// sha256 of the weight shards (for a one-shard model: `sha256sum` of its `.bin`), recorded
    /// with embeddings so that stores from different weights are never mixed.
    fn weights_sha256(&self) -> &str;
    fn device(&self) -> &Device;
    /// `[N, H, W, 3]` f32 per [`FaceModel::input_spec`] to `[N, embedding_dim]` f32 (raw, not
    /// L2-normalised, exactly as the original model outputs it).
    fn forward(&self, batch_nhwc: &Tensor) -> Result<Tensor>;
    /// What the model is fed and how a photo becomes that input. A bare network declares
    /// only its input (the image already is the crop); a model built from its registry entry
    /// ([`LoadedModel`]) or a trained backbone declares its alignment too.
    fn preprocessing(&self) -> Preprocessing {
        Preprocessing { input: self.input_spec(), alignment: Alignment::None, landmarks: None }
    }
}

/// Loads model `name` of the default registry ([`Registry::default_path`]) from `models_dir`
/// onto `device`; see [`Registry::load_model`]. The model's declared preprocessing is
/// [`FaceModel::preprocessing`].
pub fn load(name: &str, models_dir: &Path, device: &Device) -> Result<Box<dyn FaceModel>> {
    let registry = Registry::load(Registry::default_path())?;
    Ok(Box::new(registry.load_model(name, models_dir, device)?))
}

/// Where the weights are: `$FACEBENCH_MODELS`, else `models/` at the repository root.
pub fn default_models_dir() -> PathBuf {
    match std::env::var_os("FACEBENCH_MODELS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"),
    }
}

/// `"cpu"` or `"cuda"` / `"cuda:N"`. CUDA needs this crate's `cuda` feature; without it the
/// error says how to build with it.
pub fn device_from_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        n if n == "cuda" || n.starts_with("cuda:") => {
            let ordinal = match n.strip_prefix("cuda:") {
                Some(o) => {
                    o.parse::<usize>().map_err(|_| Error::Device(format!("bad device {n:?}: expected cuda:N")))?
                }
                None => 0,
            };
            if !cfg!(feature = "cuda") {
                return Err(Error::Device(format!(
                    "device {n:?} requested but facebench was built without CUDA; rebuild with `--features cuda` (cargo feature `cuda` of facebench-model)"
                )));
            }
            Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open CUDA device {ordinal}: {e}")))
        }
        other => Err(Error::Device(format!("unknown device {other:?}: expected cpu or cuda[:N]"))),
    }
}

/// Checks a batch against a model's input spec (rank 4, NHWC, the right size, 3 channels).
pub(crate) fn check_batch(model: &str, spec: &InputSpec, t: &Tensor) -> Result<()> {
    match t.dims() {
        &[n, h, w, 3] if n > 0 && h == spec.height && w == spec.width && t.dtype() == candle_core::DType::F32 => Ok(()),
        d => Err(Error::Input(format!(
            "{model}: expected an f32 batch [N, {}, {}, 3] (NHWC, RGB {}..{}), got {:?} {:?}",
            spec.height,
            spec.width,
            spec.value_min,
            spec.value_max,
            t.dtype(),
            d
        ))),
    }
}

/// Runs `f` on sub-batches of at most `chunk` images, one sub-batch per thread at a time, and
/// concatenates the results. On CPU a sub-batch's activations stay in the core's cache, which
/// a 32-image batch's do not, and whole sub-batches per thread need no synchronisation inside
/// layers. Batches too small to give every thread a sub-batch run whole, with each layer
/// parallel inside; so does everything off the CPU kernels.
pub(crate) fn forward_chunked<F>(batch: &Tensor, chunk: usize, f: F) -> Result<Tensor>
where
    F: Fn(&Tensor) -> Result<Tensor> + Sync,
{
    let n = batch.dim(0)?;
    let threads = rayon::current_num_threads();
    let chunk = chunk.min(n.div_ceil(threads)).max(1);
    let parts = n.div_ceil(chunk);
    if !facebench_nn::use_kernels(batch) || n <= chunk || parts < threads {
        return f(batch);
    }
    use rayon::prelude::*;
    let parts = (0..parts)
        .into_par_iter()
        .map(|i| facebench_nn::sequential(|| f(&batch.narrow(0, i * chunk, chunk.min(n - i * chunk))?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Builds an `[N, H, W, 3]` f32 batch from packed RGB8 images (`H*W*3` bytes each, row-major)
/// of the model's input size, on the model's device.
pub fn batch_from_rgb8(model: &dyn FaceModel, images: &[&[u8]]) -> Result<Tensor> {
    let spec = model.input_spec();
    let len = spec.height * spec.width * 3;
    let mut data = Vec::with_capacity(images.len() * len);
    for (i, img) in images.iter().enumerate() {
        if img.len() != len {
            return Err(Error::Input(format!(
                "{}: image {i} has {} bytes, expected {len} ({}x{} RGB8)",
                model.name(),
                img.len(),
                spec.width,
                spec.height
            )));
        }
        data.extend(img.iter().map(|&v| v as f32));
    }
    Ok(Tensor::from_vec(data, (images.len(), spec.height, spec.width, 3), model.device())?)
}

/// Throughput of [`FaceModel::forward`] alone (no decoding): `iters` timed forward passes of a
/// `batch`-image batch after one warm-up pass.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub model: String,
    pub batch: usize,
    pub iters: usize,
    /// Wall-clock seconds of the timed passes.
    pub seconds: f64,
    pub images_per_sec: f64,
    /// CPU seconds (user + system, all threads) the process spent meanwhile, where the OS
    /// reports it (Linux). On a shared machine `images / cpu_seconds` per core is the figure
    /// that other processes do not distort.
    pub cpu_seconds: Option<f64>,
}

/// CPU time (user + system) of this process so far, from /proc/self/stat (Linux only).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name in parentheses; utime and stime are fields 14 and 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux configuration in practice.
    Some(ticks / 100.0)
}

pub fn bench_embed(model: &dyn FaceModel, batch: usize, iters: usize) -> Result<BenchReport> {
    let spec = model.input_spec();
    // A fixed synthetic pattern in 0..255 (the timing does not depend on the values).
    let data: Vec<f32> =
        (0..batch * spec.height * spec.width * 3).map(|i| ((i * 7 + i / 3 * 13) % 256) as f32).collect();
    let x = Tensor::from_vec(data, (batch, spec.height, spec.width, 3), model.device())?;
    let sync = |t: Tensor| -> Result<()> {
        t.to_device(&Device::Cpu)?;
        Ok(())
    };
    sync(model.forward(&x)?)?;
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..iters {
        sync(model.forward(&x)?)?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_seconds = match (cpu0, process_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(BenchReport {
        model: model.name().to_string(),
        batch,
        iters,
        seconds,
        images_per_sec: (batch * iters) as f64 / seconds.max(1e-12),
        cpu_seconds,
    })
}
