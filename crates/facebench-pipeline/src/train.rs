//! `facebench train`: a margin-loss head on frozen embeddings, or a small backbone on an
//! image folder (`<root>/<identity>/<image>`), with checkpoints and a per-step CSV.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use facebench_core::store;
use facebench_lmcl::{
    train_backbone, train_head_with, BackboneConfig, ImageFolder, LrSchedule, MarginLoss, StepRecord, TrainConfig,
};

use crate::{io, output_set, Result};

/// What to train on.
#[derive(Debug, Clone)]
pub enum TrainData {
    /// A head on a store's frozen embeddings (label = the key's first path component).
    Embeddings { store: PathBuf, out_dim: usize },
    /// A backbone on an image folder, optionally cut to the largest classes / first images.
    Images { root: PathBuf, classes: Option<usize>, max_per_class: Option<usize> },
}

#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// A loss spec (`cosface:s=30,m=0.35`, ...).
    pub loss: String,
    pub data: TrainData,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: String,
    /// model.safetensors and steps.csv go here.
    pub out: PathBuf,
}

/// Labels of keys by their identity folder, and the class count.
fn labels_of(keys: &[String]) -> (Vec<usize>, usize) {
    let mut ids = HashMap::new();
    let labels = keys
        .iter()
        .map(|k| {
            let n = ids.len();
            *ids.entry(k.split('/').next().unwrap_or(k).to_string()).or_insert(n)
        })
        .collect();
    (labels, ids.len())
}

/// Trains, writing steps.csv as it goes and model.safetensors at the end, both into the
/// output set's staging folder, moved into `out` only when training succeeded; returns the
/// summary lines.
pub fn run(a: &TrainRequest) -> Result<String> {
    let loss = MarginLoss::from_str(&a.loss)?;
    let device = facebench_model::device_from_name(&a.device)?;
    let set = output_set(&a.out)?;
    let csv_path = set.dir().join("steps.csv");
    let file = std::fs::File::create(&csv_path).map_err(io(&csv_path))?;
    let mut csv = std::io::BufWriter::new(file);
    writeln!(csv, "{}", StepRecord::CSV_HEADER).map_err(io(&csv_path))?;
    let pb = indicatif::ProgressBar::new_spinner();
    let mut on_step = |r: &StepRecord| {
        let _ = writeln!(csv, "{}", r.csv_row());
        pb.set_message(format!(
            "epoch {} step {} loss {:.4} acc {:.3} lr {:.4}",
            r.epoch, r.step, r.loss, r.accuracy, r.lr
        ));
        pb.tick();
    };
    let model_path = set.dir().join("model.safetensors");
    let (records, classes, samples) = match &a.data {
        TrainData::Embeddings { store: store_path, out_dim } => {
            let e = store::read(store_path, None)?;
            let (labels, classes) = labels_of(e.keys());
            let mut cfg = TrainConfig::new(loss, *out_dim);
            cfg.epochs = a.epochs;
            cfg.batch_size = a.batch;
            cfg.sgd.lr = a.lr;
            cfg.schedule = LrSchedule::Cosine { min_lr: 0.0 };
            cfg.seed = a.seed;
            cfg.device = device;
            let head = train_head_with(e.data(), e.dim(), &labels, &cfg, &mut on_step)?;
            head.save(&model_path)?;
            (head.records().to_vec(), classes, e.len())
        }
        TrainData::Images { root, classes, max_per_class } => {
            let mut folder = ImageFolder::scan(root)?;
            if let Some(n) = classes {
                folder = folder.largest_classes(*n);
            }
            if let Some(n) = max_per_class {
                folder = folder.at_most_per_class(*n);
            }
            let mut cfg = BackboneConfig::new(loss);
            cfg.epochs = a.epochs;
            cfg.batch_size = a.batch;
            cfg.sgd.lr = a.lr;
            cfg.seed = a.seed;
            cfg.device = device;
            let net = train_backbone(&folder, &cfg, &mut on_step)?;
            net.save(&model_path)?;
            (net.records().to_vec(), folder.classes().len(), folder.items().len())
        }
    };
    csv.flush().map_err(io(&csv_path))?;
    drop(csv);
    set.commit()?;
    pb.finish_and_clear();
    Ok(summary(&records, classes, samples, &a.out.join("model.safetensors"), &a.out.join("steps.csv")))
}

fn summary(records: &[StepRecord], classes: usize, samples: usize, model: &Path, csv: &Path) -> String {
    let mut s = String::new();
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        s += &format!(
            "{samples} samples, {classes} classes, {} steps: loss {:.4} -> {:.4}, batch accuracy {:.3} -> {:.3}\n",
            records.len(),
            first.loss,
            last.loss,
            first.accuracy,
            last.accuracy
        );
    }
    s + &format!("wrote {} and {}\n", model.display(), csv.display())
}
