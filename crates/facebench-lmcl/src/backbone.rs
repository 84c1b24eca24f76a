//! Training a small CNN backbone end to end on an image folder (`<root>/<identity>/<image>`).
//!
//! The network is deliberately small (a stem and stride-2 3x3 conv stages, each conv + batch
//! norm + ReLU, then a linear embedding with batch norm) so that it trains on a CPU: it exists
//! to show the losses work end to end on real faces, not to compete with the pretrained models.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, Optimizer, VarBuilder, VarMap};
use facebench_core::rng::SplitMix64;
use facebench_model::{Alignment, FaceModel, InputSpec, Preprocessing};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{input, LmclError};
use crate::loss::MarginLoss;
use crate::optim::{LrSchedule, Sgd, SgdParams};
use crate::train::{check_common, loss_at, optimise, SphereAnneal, StepRecord};
use crate::Result;

const FORMAT: &str = "facebench-lmcl-backbone-v1";
const CLASS_WEIGHT: &str = "classes.weight";
const EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "pgm", "ppm", "pnm"];

/// The images of a folder `<root>/<identity>/<image>`, one class per identity directory
/// (sorted by name; directories without images are skipped), images sorted by file name.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    classes: Vec<String>,
    items: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Lists `root`. Files other than jpg/jpeg/png/pgm/ppm/pnm and hidden entries are ignored.
    pub fn scan(root: &Path) -> Result<ImageFolder> {
        let fail = |p: &Path, e: std::io::Error| LmclError::Input(format!("{}: {e}", p.display()));
        let mut dirs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for entry in std::fs::read_dir(root).map_err(|e| fail(root, e))? {
            let entry = entry.map_err(|e| fail(root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') || !path.is_dir() {
                continue;
            }
            let mut images = Vec::new();
            for f in std::fs::read_dir(&path).map_err(|e| fail(&path, e))? {
                let f = f.map_err(|e| fail(&path, e))?.path();
                let ext = f.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
                let hidden = f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if f.is_file() && !hidden && ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
                    images.push(f);
                }
            }
            if !images.is_empty() {
                images.sort();
                dirs.insert(name, images);
            }
        }
        if dirs.is_empty() {
            return input(format!("{}: no <identity>/<image> files found", root.display()));
        }
        Ok(Self::from_map(dirs))
    }

    fn from_map(dirs: BTreeMap<String, Vec<PathBuf>>) -> ImageFolder {
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for (c, (name, images)) in dirs.into_iter().enumerate() {
            classes.push(name);
            items.extend(images.into_iter().map(|p| (p, c)));
        }
        ImageFolder { classes, items }
    }

    /// The `n` identities with the most images (ties broken by name), relabelled `0..n` in
    /// name order: e.g. the 8 largest LFW identities.
    pub fn largest_classes(&self, n: usize) -> ImageFolder {
        let mut counts: Vec<(usize, usize)> = (0..self.classes.len()).map(|c| (c, 0)).collect();
        for (_, c) in &self.items {
            counts[*c].1 += 1;
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let keep: Vec<usize> = counts.iter().take(n).map(|c| c.0).collect();
        let mut dirs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (p, c) in &self.items {
            if keep.contains(c) {
                dirs.entry(self.classes[*c].clone()).or_default().push(p.clone());
            }
        }
        Self::from_map(dirs)
    }

    /// At most the first `n` images (file-name order) of each identity: a quick run on a
    /// big folder keeps every class but bounds the epoch.
    pub fn at_most_per_class(&self, n: usize) -> ImageFolder {
        let mut dirs: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (p, c) in &self.items {
            let v = dirs.entry(self.classes[*c].clone()).or_default();
            if v.len() < n {
                v.push(p.clone());
            }
        }
        Self::from_map(dirs)
    }

    /// Identity names; class `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// `(image path, class)` in class then file-name order.
    pub fn items(&self) -> &[(PathBuf, usize)] {
        &self.items
    }
}

/// Shape of the network and how images are fed to it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneArch {
    /// Side of the square network input; must be divisible by `2^(widths.len() - 1)`.
    pub input_size: usize,
    /// Side of a centred square cut from each image before resizing (`None`: whole image).
    /// LFW's 250x250 deep-funneled images have the face in roughly the central 120-150 px.
    pub crop: Option<u32>,
    /// Channels of the stem (stride 1) followed by each stride-2 stage.
    pub widths: Vec<usize>,
    pub embedding_dim: usize,
}

impl Default for BackboneArch {
    /// 64x64 input from the central 128 px, widths 16-32-64-128-128, 128-D embeddings.
    fn default() -> Self {
        BackboneArch { input_size: 64, crop: Some(128), widths: vec![16, 32, 64, 128, 128], embedding_dim: 128 }
    }
}

/// A backbone-training run.
#[derive(Clone, Debug)]
pub struct BackboneConfig {
    pub arch: BackboneArch,
    pub loss: MarginLoss,
    pub epochs: usize,
    pub batch_size: usize,
    /// Random horizontal flips (seeded) during training.
    pub flip: bool,
    pub sgd: SgdParams,
    pub schedule: LrSchedule,
    pub anneal: Option<SphereAnneal>,
    pub seed: u64,
    pub device: Device,
}

impl BackboneConfig {
    /// Default architecture on CPU, 10 epochs of batch 64 with flips, SGD(0.1, 0.9, 5e-4),
    /// cosine decay, seed 0.
    pub fn new(loss: MarginLoss) -> Self {
        BackboneConfig {
            arch: BackboneArch::default(),
            loss,
            epochs: 10,
            batch_size: 64,
            flip: true,
            sgd: SgdParams::default(),
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            anneal: None,
            seed: 0,
            device: Device::Cpu,
        }
    }
}

struct Net {
    stages: Vec<(Conv2d, BatchNorm)>,
    fc: Linear,
    bn: BatchNorm,
}

impl Net {
    fn new(arch: &BackboneArch, vb: VarBuilder) -> Result<Net> {
        let mut stages = Vec::new();
        let mut cin = 3;
        for (i, &w) in arch.widths.iter().enumerate() {
            let cfg = Conv2dConfig { padding: 1, stride: if i == 0 { 1 } else { 2 }, ..Default::default() };
            let vs = vb.pp(format!("stage{i}"));
            let conv = candle_nn::conv2d_no_bias(cin, w, 3, cfg, vs.pp("conv"))?;
            let bn = candle_nn::batch_norm(w, 1e-5, vs.pp("bn"))?;
            stages.push((conv, bn));
            cin = w;
        }
        let side = arch.input_size >> (arch.widths.len() - 1);
        let fc = candle_nn::linear_no_bias(cin * side * side, arch.embedding_dim, vb.pp("fc"))?;
        let bn = candle_nn::batch_norm(arch.embedding_dim, 1e-5, vb.pp("fc_bn"))?;
        Ok(Net { stages, fc, bn })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (conv, bn) in &self.stages {
            h = bn.forward_t(&conv.forward(&h)?, train)?.relu()?;
        }
        let h = self.fc.forward(&h.flatten_from(1)?)?;
        self.bn.forward_t(&h, train)
    }
}

fn check_arch(arch: &BackboneArch) -> Result<()> {
    let stages = arch.widths.len();
    if stages == 0 || arch.widths.contains(&0) || arch.embedding_dim == 0 || stages > 12 {
        return input(format!("bad architecture {arch:?}: widths and embedding_dim must be > 0"));
    }
    let down = 1usize << (stages - 1);
    if arch.input_size == 0 || !arch.input_size.is_multiple_of(down) {
        return input(format!(
            "input_size {} must be a positive multiple of {down} for {stages} stages",
            arch.input_size
        ));
    }
    if arch.crop == Some(0) {
        return input("crop must be > 0");
    }
    Ok(())
}

/// Decodes, centre-crops, resizes and normalises one image to CHW `(v - 127.5) / 128`.
fn load_image(path: &Path, arch: &BackboneArch, flip: bool) -> Result<Vec<f32>> {
    let img = image::open(path)
        .map_err(|e| LmclError::Input(format!("{}: cannot decode image: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = arch.crop.map_or(w.min(h), |c| c.min(w).min(h));
    let cut = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let s = arch.input_size as u32;
    let mut img = image::imageops::resize(&cut, s, s, image::imageops::FilterType::Triangle);
    if flip {
        image::imageops::flip_horizontal_in_place(&mut img);
    }
    let n = (s * s) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (f32::from(px[c]) - 127.5) / 128.0;
        }
    }
    Ok(out)
}

/// Decodes a batch in parallel (rayon); the result does not depend on the thread count.
fn load_batch(paths: &[(&Path, bool)], arch: &BackboneArch, dev: &Device) -> Result<Tensor> {
    let images: Vec<Vec<f32>> = paths.par_iter().map(|(p, flip)| load_image(p, arch, *flip)).collect::<Result<_>>()?;
    let s = arch.input_size;
    let flat: Vec<f32> = images.concat();
    Ok(Tensor::from_vec(flat, (paths.len(), 3, s, s), dev)?)
}

/// Overwrites every randomly initialised tensor (rank >= 2) with seeded Kaiming-uniform values
/// (bound sqrt(6 / fan_in)), in name order, so that runs are reproducible: candle's CPU RNG
/// cannot be seeded. Batch-norm tensors keep their constant initialisation.
fn seed_weights(varmap: &VarMap, rng: &mut SplitMix64) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| LmclError::Input("poisoned VarMap lock".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        if var.rank() < 2 {
            continue;
        }
        let dims = var.dims();
        let fan_in: usize = dims[1..].iter().product();
        let values = rng.uniform_vec(var.elem_count(), (6.0 / fan_in as f64).sqrt());
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// A trained backbone: embeds images with the network in inference mode (batch-norm running
/// statistics). It is a [`FaceModel`] like the pretrained networks, so the same extraction and
/// benchmark code runs it: fed `[N, S, S, 3]` RGB 0..255 (`S = arch.input_size`), a centre crop
/// of `arch.crop` pixels resized to `S`, as it was trained.
pub struct TrainedBackbone {
    /// `trained-backbone`, or the checkpoint's file stem once loaded.
    name: String,
    /// See [`tensors_sha256`].
    sha256: String,
    arch: BackboneArch,
    loss: MarginLoss,
    classes: Vec<String>,
    varmap: VarMap,
    net: Net,
    device: Device,
    records: Vec<StepRecord>,
}

/// Trains the backbone and class weights on `folder` with `config.loss`, calling `on_step`
/// after every step. Each epoch visits the images in a seeded random order.
pub fn train_backbone(
    folder: &ImageFolder,
    config: &BackboneConfig,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<TrainedBackbone> {
    check_arch(&config.arch)?;
    check_common(&config.loss, config.anneal, config.epochs, config.batch_size)?;
    let n = folder.items.len();
    let k = folder.classes.len();
    if n == 0 {
        return input("the image folder is empty");
    }
    let dev = &config.device;
    let mut rng = SplitMix64::new(config.seed);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let net = Net::new(&config.arch, vb.clone())?;
    let cw = vb.get_with_hints((k, config.arch.embedding_dim), CLASS_WEIGHT, candle_nn::Init::Const(0.0))?;
    seed_weights(&varmap, &mut rng)?;
    let mut opt = Sgd::new(varmap.all_vars(), config.sgd.clone())?;

    let steps_per_epoch = n.div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut order: Vec<usize> = (0..n).collect();
    let mut records = Vec::with_capacity(total);
    let mut step = 0;
    for epoch in 0..config.epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(config.batch_size) {
            // Flip decisions are drawn here, in order, so parallel decoding cannot change them.
            let paths: Vec<(&Path, bool)> =
                batch.iter().map(|&i| (folder.items[i].0.as_path(), config.flip && rng.unit() < 0.5)).collect();
            let labels: Vec<u32> = batch.iter().map(|&i| folder.items[i].1 as u32).collect();
            let x = load_batch(&paths, &config.arch, dev)?;
            let y = Tensor::from_vec(labels, batch.len(), dev)?;
            let lr = config.schedule.lr(config.sgd.lr, step, steps_per_epoch, total);
            opt.set_learning_rate(lr);
            let loss_fn = loss_at(config.loss, config.anneal, step);
            let feats = net.forward(&x, true)?;
            let (loss, accuracy) = optimise(&loss_fn, &feats, &cw, &y, &mut opt, epoch, step)?;
            let rec = StepRecord { epoch, step, loss, accuracy, lr };
            on_step(&rec);
            records.push(rec);
            step += 1;
        }
    }
    Ok(TrainedBackbone {
        name: "trained-backbone".to_string(),
        sha256: tensors_sha256(&varmap)?,
        arch: config.arch.clone(),
        loss: config.loss,
        classes: folder.classes.clone(),
        varmap,
        net,
        device: dev.clone(),
        records,
    })
}

/// sha256 (hex) over every tensor of the network and head in name order (name, dims, f32
/// little-endian values): the same for a trained model and its reloaded checkpoint, which a
/// hash of the file is not (safetensors metadata order varies).
fn tensors_sha256(varmap: &VarMap) -> Result<String> {
    let data = varmap.data().lock().map_err(|_| LmclError::Input("poisoned VarMap lock".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        let t = data[name].as_tensor();
        h.update(name.as_bytes());
        for d in t.dims() {
            h.update((*d as u64).to_le_bytes());
        }
        for v in t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl FaceModel for TrainedBackbone {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_spec(&self) -> InputSpec {
        InputSpec::rgb_255(self.arch.input_size, self.arch.input_size)
    }

    fn embedding_dim(&self) -> usize {
        self.arch.embedding_dim
    }

    fn weights_sha256(&self) -> &str {
        &self.sha256
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// NHWC 0..255 to NCHW `(v - 127.5) / 128` (exactly the training normalisation), then the
    /// network in inference mode.
    fn forward(&self, batch_nhwc: &Tensor) -> facebench_model::Result<Tensor> {
        let s = self.arch.input_size;
        match batch_nhwc.dims() {
            &[n, h, w, 3] if n > 0 && h == s && w == s && batch_nhwc.dtype() == DType::F32 => {}
            d => {
                return Err(facebench_model::Error::Input(format!(
                    "{}: expected an f32 batch [N, {s}, {s}, 3] (NHWC, RGB 0..255), got {:?} {d:?}",
                    self.name,
                    batch_nhwc.dtype()
                )))
            }
        }
        let x = ((batch_nhwc.permute((0, 3, 1, 2))? - 127.5)? / 128.0)?;
        Ok(self.net.forward(&x, false)?)
    }

    fn preprocessing(&self) -> Preprocessing {
        Preprocessing {
            input: self.input_spec(),
            alignment: Alignment::Centre { side: self.arch.crop },
            landmarks: None,
        }
    }
}

impl TrainedBackbone {
    /// Embeds images (no flip), `paths.len() x embedding_dim` row-major, in batches of 64.
    pub fn embed_images(&self, paths: &[PathBuf]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(paths.len() * self.arch.embedding_dim);
        for chunk in paths.chunks(64) {
            let batch: Vec<(&Path, bool)> = chunk.iter().map(|p| (p.as_path(), false)).collect();
            let x = load_batch(&batch, &self.arch, &self.device)?;
            let f = self.net.forward(&x, false)?.to_device(&Device::Cpu)?;
            out.extend(f.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    pub fn arch(&self) -> &BackboneArch {
        &self.arch
    }

    pub fn loss(&self) -> MarginLoss {
        self.loss
    }

    /// Identity names of the training classes.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Per-step records (empty after [`TrainedBackbone::load`]).
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// Writes all network tensors (batch-norm statistics included) and the class weights to
    /// a safetensors file, with the architecture, loss and class names in its metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail = |msg: String| LmclError::Checkpoint { path: path.to_path_buf(), msg };
        let data = self.varmap.data().lock().map_err(|_| fail("poisoned VarMap lock".into()))?;
        let tensors: Vec<(String, Tensor)> =
            data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
        let a = &self.arch;
        let widths: Vec<String> = a.widths.iter().map(|w| w.to_string()).collect();
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("loss".to_string(), self.loss.to_string()),
            ("input_size".to_string(), a.input_size.to_string()),
            ("crop".to_string(), a.crop.map_or("none".to_string(), |c| c.to_string())),
            ("widths".to_string(), widths.join(",")),
            ("embedding_dim".to_string(), a.embedding_dim.to_string()),
            ("classes".to_string(), self.classes.join("\n")),
        ]);
        safetensors::serialize_to_file(tensors, Some(meta), path).map_err(|e| fail(e.to_string()))
    }

    /// Reads a checkpoint written by [`TrainedBackbone::save`] onto `device`; the model is named
    /// by the file's stem.
    pub fn load(path: &Path, device: &Device) -> Result<TrainedBackbone> {
        let fail = |msg: String| LmclError::Checkpoint { path: path.to_path_buf(), msg };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).cloned().ok_or_else(|| fail(format!("no {k:?} in metadata")));
        if get("format")? != FORMAT {
            return Err(fail(format!("format is not {FORMAT:?}")));
        }
        let num = |k: &str, v: &str| v.parse::<usize>().map_err(|_| fail(format!("{k}={v:?} is not a count")));
        let crop = match get("crop")?.as_str() {
            "none" => None,
            c => Some(num("crop", c)? as u32),
        };
        let widths = get("widths")?.split(',').map(|w| num("widths", w)).collect::<Result<_>>()?;
        let arch = BackboneArch {
            input_size: num("input_size", &get("input_size")?)?,
            crop,
            widths,
            embedding_dim: num("embedding_dim", &get("embedding_dim")?)?,
        };
        check_arch(&arch).map_err(|e| fail(e.to_string()))?;
        let loss: MarginLoss = get("loss")?.parse().map_err(|e: LmclError| fail(e.to_string()))?;
        let classes: Vec<String> = get("classes")?.split('\n').map(str::to_string).collect();
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let net = Net::new(&arch, vb.clone())?;
        vb.get_with_hints((classes.len(), arch.embedding_dim), CLASS_WEIGHT, candle_nn::Init::Const(0.0))?;
        let stored = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| fail(e.to_string()))?;
        let names: Vec<String> =
            varmap.data().lock().map_err(|_| fail("poisoned lock".into()))?.keys().cloned().collect();
        for name in names {
            let t = stored.get(&name).ok_or_else(|| fail(format!("no tensor {name}")))?;
            varmap.set_one(&name, t.to_dtype(DType::F32)?).map_err(|e| fail(format!("{name}: {e}")))?;
        }
        let name = path.file_stem().map_or("trained-backbone".into(), |s| s.to_string_lossy().into_owned());
        let sha256 = tensors_sha256(&varmap)?;
        Ok(TrainedBackbone {
            name,
            sha256,
            arch,
            loss,
            classes,
            varmap,
            net,
            device: device.clone(),
            records: Vec::new(),
        })
    }
}
