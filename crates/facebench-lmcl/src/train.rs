//! Training a head (linear map plus class weights) on frozen embeddings.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, Optimizer, VarMap};

use crate::error::{input, LmclError};
use crate::loss::{l2_normalize, MarginLoss};
use crate::optim::{LrSchedule, Sgd, SgdParams};
use crate::Result;
use facebench_core::rng::SplitMix64;

const HEAD_WEIGHT: &str = "head.weight";
const HEAD_BIAS: &str = "head.bias";
const CLASS_WEIGHT: &str = "classes.weight";
const FORMAT_KEY: &str = "format";
const FORMAT: &str = "facebench-lmcl-head-v1";

/// How the linear map starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadInit {
    /// Uniform in ±1/sqrt(d) (PyTorch `nn.Linear`'s default bound).
    Random,
    /// The identity (needs `out_dim == d`): training starts from the raw embeddings.
    Identity,
}

/// SphereFace's λ annealing: `λ(it) = max(lambda_min, base (1 + gamma·it)^(-power))`.
/// The default is the SphereFace release's (base 1000, gamma 0.12, power 1, lambda_min 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SphereAnneal {
    pub base: f64,
    pub gamma: f64,
    pub power: f64,
    pub lambda_min: f64,
}

impl Default for SphereAnneal {
    fn default() -> Self {
        SphereAnneal { base: 1000.0, gamma: 0.12, power: 1.0, lambda_min: 5.0 }
    }
}

impl SphereAnneal {
    /// λ at 0-based iteration `it`.
    pub fn lambda(&self, it: usize) -> f64 {
        (self.base * (1.0 + self.gamma * it as f64).powf(-self.power)).max(self.lambda_min)
    }
}

/// Everything that defines a head-training run. Same config + same data = same bits on CPU.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub loss: MarginLoss,
    /// Width of the head's output features.
    pub out_dim: usize,
    /// Whether the linear map has a bias.
    pub bias: bool,
    pub init: HeadInit,
    /// Whether [`TrainedHead::apply`] L2-normalises its output (what cosine scoring wants).
    pub normalize_output: bool,
    pub epochs: usize,
    pub batch_size: usize,
    /// Base learning rate, momentum, weight decay.
    pub sgd: SgdParams,
    pub schedule: LrSchedule,
    /// λ schedule for [`MarginLoss::SphereFace`] (replaces its fixed λ); ignored by other losses.
    pub anneal: Option<SphereAnneal>,
    /// Seeds the initial weights and the per-epoch shuffles.
    pub seed: u64,
    pub device: Device,
}

impl TrainConfig {
    /// A CPU config with the usual settings: random init, no bias, normalised output, 10
    /// epochs of batch 128, SGD(0.1, momentum 0.9, wd 5e-4), cosine decay to 0, seed 0.
    pub fn new(loss: MarginLoss, out_dim: usize) -> Self {
        TrainConfig {
            loss,
            out_dim,
            bias: false,
            init: HeadInit::Random,
            normalize_output: true,
            epochs: 10,
            batch_size: 128,
            sgd: SgdParams::default(),
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            anneal: None,
            seed: 0,
            device: Device::Cpu,
        }
    }
}

/// One optimisation step, as the CLI writes it to CSV. `accuracy` is the batch accuracy of
/// the margin-free logits ([`MarginLoss::plain_logits`]) before the step; `loss` is the
/// batch's mean cross-entropy with the margin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    pub epoch: usize,
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub lr: f64,
}

impl StepRecord {
    pub const CSV_HEADER: &'static str = "epoch,step,loss,accuracy,lr";

    /// One CSV line matching [`StepRecord::CSV_HEADER`] (no newline).
    pub fn csv_row(&self) -> String {
        format!("{},{},{},{},{}", self.epoch, self.step, self.loss, self.accuracy, self.lr)
    }
}

/// A trained head: `f(x) = W x (+ b)`, optionally L2-normalised, plus the class weights it
/// was trained against. Held on the CPU in f32.
#[derive(Debug, Clone)]
pub struct TrainedHead {
    map: Tensor,
    bias: Option<Tensor>,
    class_weights: Tensor,
    normalize: bool,
    loss: MarginLoss,
    records: Vec<StepRecord>,
}

/// [`train_head_with`] without a progress callback.
pub fn train_head(embeddings: &[f32], dim: usize, labels: &[usize], config: &TrainConfig) -> Result<TrainedHead> {
    train_head_with(embeddings, dim, labels, config, &mut |_| {})
}

/// Trains a head on frozen embeddings: `embeddings` is `n x dim` row-major, `labels[i]` the
/// class of row `i` (classes are `0..=max(labels)`). Each epoch visits the rows in a seeded
/// random order in batches of `config.batch_size` (the last one may be short); `on_step` is
/// called after every step.
pub fn train_head_with(
    embeddings: &[f32],
    dim: usize,
    labels: &[usize],
    config: &TrainConfig,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<TrainedHead> {
    let n = check_embeddings(embeddings, dim, "embeddings")?;
    if labels.len() != n {
        return input(format!("{} labels for {n} embedding rows", labels.len()));
    }
    if n == 0 {
        return input("no training rows");
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if classes > u32::MAX as usize {
        return input(format!("label {} is too large", classes - 1));
    }
    check_common(&config.loss, config.anneal, config.epochs, config.batch_size)?;
    if config.out_dim == 0 {
        return input("out_dim must be > 0");
    }
    if config.init == HeadInit::Identity && config.out_dim != dim {
        return input(format!("identity init needs out_dim == embedding dim, got {} and {dim}", config.out_dim));
    }
    let dev = &config.device;
    let out = config.out_dim;
    let mut rng = SplitMix64::new(config.seed);

    let varmap = VarMap::new();
    let zeros = Init::Const(0.0);
    let map = varmap.get((out, dim), HEAD_WEIGHT, zeros, DType::F32, dev)?;
    let init_map = match config.init {
        HeadInit::Random => rng.uniform_vec(out * dim, 1.0 / (dim as f64).sqrt()),
        HeadInit::Identity => (0..out * dim).map(|i| f32::from(i / dim == i % dim)).collect(),
    };
    let mut varmap = varmap;
    varmap.set_one(HEAD_WEIGHT, Tensor::from_vec(init_map, (out, dim), dev)?)?;
    let bias = if config.bias { Some(varmap.get(out, HEAD_BIAS, zeros, DType::F32, dev)?) } else { None };
    let cw = varmap.get((classes, out), CLASS_WEIGHT, zeros, DType::F32, dev)?;
    let init_cw = rng.uniform_vec(classes * out, 1.0 / (out as f64).sqrt());
    varmap.set_one(CLASS_WEIGHT, Tensor::from_vec(init_cw, (classes, out), dev)?)?;

    let mut opt = Sgd::new(varmap.all_vars(), config.sgd.clone())?;
    let x_all = Tensor::from_slice(embeddings, (n, dim), dev)?;
    let y_all = Tensor::from_vec(labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), n, dev)?;
    let steps_per_epoch = n.div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut records = Vec::with_capacity(total);
    let mut step = 0;
    for epoch in 0..config.epochs {
        rng.shuffle(&mut order);
        for batch in order.chunks(config.batch_size) {
            let lr = config.schedule.lr(config.sgd.lr, step, steps_per_epoch, total);
            opt.set_learning_rate(lr);
            let loss_fn = loss_at(config.loss, config.anneal, step);
            let idx = Tensor::from_slice(batch, batch.len(), dev)?;
            let xb = x_all.index_select(&idx, 0)?;
            let yb = y_all.index_select(&idx, 0)?;
            let feats = linear(&xb, &map, bias.as_ref())?;
            let (loss, accuracy) = optimise(&loss_fn, &feats, &cw, &yb, &mut opt, epoch, step)?;
            let rec = StepRecord { epoch, step, loss, accuracy, lr };
            on_step(&rec);
            records.push(rec);
            step += 1;
        }
    }
    let to_cpu = |t: &Tensor| -> Result<Tensor> { Ok(t.detach().to_device(&Device::Cpu)?) };
    Ok(TrainedHead {
        map: to_cpu(&map)?,
        bias: bias.as_ref().map(to_cpu).transpose()?,
        class_weights: to_cpu(&cw)?,
        normalize: config.normalize_output,
        loss: config.loss,
        records,
    })
}

/// The loss to use at `step`: SphereFace's λ follows the annealing schedule when one is set.
pub(crate) fn loss_at(loss: MarginLoss, anneal: Option<SphereAnneal>, step: usize) -> MarginLoss {
    match (loss, anneal) {
        (MarginLoss::SphereFace { m, .. }, Some(a)) => MarginLoss::SphereFace { m, lambda: a.lambda(step) },
        (l, _) => l,
    }
}

/// One optimisation step on a batch of features; returns (loss, accuracy) measured before it.
pub(crate) fn optimise(
    loss_fn: &MarginLoss,
    feats: &Tensor,
    class_weights: &Tensor,
    labels: &Tensor,
    opt: &mut Sgd,
    epoch: usize,
    step: usize,
) -> Result<(f64, f64)> {
    let loss = loss_fn.loss(feats, class_weights, labels)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if !value.is_finite() {
        return input(format!(
            "training diverged at epoch {epoch} step {step}: loss {value} \
             (lower the learning rate or the scale s)"
        ));
    }
    let plain = loss_fn.plain_logits(&feats.detach(), &class_weights.detach())?;
    let hits = plain.argmax(1)?.eq(labels)?.to_dtype(DType::F64)?.sum_all()?;
    let accuracy = hits.to_scalar::<f64>()? / labels.dim(0)? as f64;
    opt.backward_step(&loss)?;
    Ok((value, accuracy))
}

/// Checks the settings shared by head and backbone training.
pub(crate) fn check_common(
    loss: &MarginLoss,
    anneal: Option<SphereAnneal>,
    epochs: usize,
    batch_size: usize,
) -> Result<()> {
    if epochs == 0 || batch_size == 0 {
        return input("epochs and batch_size must be > 0");
    }
    loss.validate()?;
    if let Some(a) = anneal {
        let ok = [a.base, a.gamma, a.power, a.lambda_min].iter().all(|v| v.is_finite()) && a.lambda_min >= 0.0;
        if !ok {
            return input(format!("bad SphereFace annealing {a:?}"));
        }
    }
    Ok(())
}

fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Row count of an `n x dim` buffer; rejects ragged buffers and non-finite values by row.
fn check_embeddings(data: &[f32], dim: usize, what: &str) -> Result<usize> {
    if dim == 0 {
        return input(format!("{what}: dimension must be > 0"));
    }
    if !data.len().is_multiple_of(dim) {
        return input(format!("{what}: {} values is not a whole number of rows of {dim}", data.len()));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return input(format!("{what}: row {} column {} is {}", i / dim, i % dim, data[i]));
    }
    Ok(data.len() / dim)
}

impl TrainedHead {
    /// Maps `n x in_dim` embeddings (row-major) to `n x out_dim` features.
    pub fn apply(&self, embeddings: &[f32]) -> Result<Vec<f32>> {
        let n = check_embeddings(embeddings, self.in_dim(), "apply")?;
        let x = Tensor::from_slice(embeddings, (n, self.in_dim()), &Device::Cpu)?;
        let mut y = linear(&x, &self.map, self.bias.as_ref())?;
        if self.normalize {
            y = l2_normalize(&y)?;
        }
        Ok(y.flatten_all()?.to_vec1::<f32>()?)
    }

    pub fn in_dim(&self) -> usize {
        self.map.dims()[1]
    }

    pub fn out_dim(&self) -> usize {
        self.map.dims()[0]
    }

    pub fn num_classes(&self) -> usize {
        self.class_weights.dims()[0]
    }

    /// Whether [`TrainedHead::apply`] returns unit-norm rows.
    pub fn normalizes_output(&self) -> bool {
        self.normalize
    }

    /// The loss the head was trained with.
    pub fn loss(&self) -> MarginLoss {
        self.loss
    }

    /// Class weights, `num_classes x out_dim` row-major (e.g. to draw class directions).
    pub fn class_weights(&self) -> Result<Vec<f32>> {
        Ok(self.class_weights.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Per-step records of the run (empty for a head loaded from a checkpoint).
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// Writes a safetensors checkpoint: `head.weight`, optional `head.bias`, `classes.weight`,
    /// with the loss spec and the normalisation flag in the header metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(&str, &Tensor)> = vec![(HEAD_WEIGHT, &self.map), (CLASS_WEIGHT, &self.class_weights)];
        if let Some(b) = &self.bias {
            tensors.push((HEAD_BIAS, b));
        }
        let meta = HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT.to_string()),
            ("loss".to_string(), self.loss.to_string()),
            ("normalize_output".to_string(), self.normalize.to_string()),
        ]);
        safetensors::serialize_to_file(tensors, Some(meta), path)
            .map_err(|e| LmclError::Checkpoint { path: path.to_path_buf(), msg: e.to_string() })
    }

    /// Reads a checkpoint written by [`TrainedHead::save`], checking names and shapes.
    pub fn load(path: &Path) -> Result<TrainedHead> {
        let fail = |msg: String| LmclError::Checkpoint { path: path.to_path_buf(), msg };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(fail(format!("metadata {FORMAT_KEY:?} is not {FORMAT:?}")));
        }
        let loss: MarginLoss = meta
            .get("loss")
            .ok_or_else(|| fail("no \"loss\" in metadata".into()))?
            .parse()
            .map_err(|e: LmclError| fail(e.to_string()))?;
        let normalize = match meta.get("normalize_output").map(String::as_str) {
            Some("true") => true,
            Some("false") => false,
            other => return Err(fail(format!("normalize_output is {other:?}, not true/false"))),
        };
        let mut tensors =
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| fail(e.to_string()))?;
        let mut take = |name: &str| -> Result<Option<Tensor>> {
            tensors.remove(name).map(|t| t.to_dtype(DType::F32).map_err(|e| fail(format!("{name}: {e}")))).transpose()
        };
        let map = take(HEAD_WEIGHT)?.ok_or_else(|| fail(format!("no tensor {HEAD_WEIGHT}")))?;
        let cw = take(CLASS_WEIGHT)?.ok_or_else(|| fail(format!("no tensor {CLASS_WEIGHT}")))?;
        let bias = take(HEAD_BIAS)?;
        let [out, _] = map.dims() else {
            return Err(fail(format!("{HEAD_WEIGHT} has shape {:?}, want 2-D", map.dims())));
        };
        if cw.rank() != 2 || cw.dims()[1] != *out {
            return Err(fail(format!("{CLASS_WEIGHT} has shape {:?}, want (k, {out})", cw.dims())));
        }
        if let Some(b) = &bias {
            if b.dims() != [*out] {
                return Err(fail(format!("{HEAD_BIAS} has shape {:?}, want [{out}]", b.dims())));
            }
        }
        Ok(TrainedHead { map, bias, class_weights: cw, normalize, loss, records: Vec::new() })
    }
}
