//! `facebench train`: a margin-loss head on frozen embeddings, or a small backbone on an
//! image folder (`<root>/<identity>/<image>`), with checkpoints and a per-step CSV.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;
use facebench_core::store;
use facebench_lmcl::{
    train_backbone, train_head_with, BackboneConfig, ImageFolder, LrSchedule, MarginLoss, StepRecord, TrainConfig,
};

use super::CmdResult;

#[derive(Args)]
pub struct TrainArgs {
    /// Loss: softmax | normface:s=30 | cosface:s=64,m=0.35 (alias lmcl) | sphereface:m=4[,lambda=5]
    /// | arcface:s=64,m=0.5[,fallback=insightface|easy|none] | combined:s=,m1=,m2=,m3=
    #[arg(long, default_value = "cosface:s=30,m=0.35")]
    loss: String,
    /// Train a head on this store's frozen embeddings; the label is the key's first path
    /// component (`Name/Name_0001.jpg` -> `Name`).
    #[arg(long, required_unless_present = "images", conflicts_with = "images")]
    embeddings: Option<PathBuf>,
    /// Train a backbone on an image folder `<root>/<identity>/<image>` instead (CPU: small nets).
    #[arg(long)]
    images: Option<PathBuf>,
    /// With --images: keep only the N identities with the most images.
    #[arg(long)]
    classes: Option<usize>,
    /// With --images: use at most the first N images of each identity.
    #[arg(long)]
    max_per_class: Option<usize>,
    /// With --embeddings: width of the head's output features.
    #[arg(long, default_value_t = 128)]
    out_dim: usize,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Base learning rate (SGD, momentum 0.9, weight decay 5e-4, cosine decay).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, or cuda[:N] (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output folder: model.safetensors and steps.csv (epoch, step, loss, accuracy, lr).
    #[arg(long)]
    out: PathBuf,
}

/// Label of a key: its first path component (the identity folder).
fn identity(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

pub fn run(a: TrainArgs) -> CmdResult {
    let loss = MarginLoss::from_str(&a.loss)?;
    let device = facebench_model::device_from_name(&a.device)?;
    super::create_dir(&a.out)?;
    let csv_path = a.out.join("steps.csv");
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?);
    writeln!(csv, "{}", StepRecord::CSV_HEADER)?;
    let pb = indicatif::ProgressBar::new_spinner();
    let mut on_step = |r: &StepRecord| {
        let _ = writeln!(csv, "{}", r.csv_row());
        pb.set_message(format!(
            "epoch {} step {} loss {:.4} acc {:.3} lr {:.4}",
            r.epoch, r.step, r.loss, r.accuracy, r.lr
        ));
        pb.tick();
    };
    let model_path = a.out.join("model.safetensors");
    if let Some(store_path) = &a.embeddings {
        let e = store::read(store_path, None)?;
        let (labels, classes) = labels_of(e.keys());
        let mut cfg = TrainConfig::new(loss, a.out_dim);
        cfg.epochs = a.epochs;
        cfg.batch_size = a.batch;
        cfg.sgd.lr = a.lr;
        cfg.schedule = LrSchedule::Cosine { min_lr: 0.0 };
        cfg.seed = a.seed;
        cfg.device = device;
        let head = train_head_with(e.data(), e.dim(), &labels, &cfg, &mut on_step)?;
        head.save(&model_path)?;
        report(&pb, head.records(), classes, e.len(), &model_path, &csv_path);
    } else {
        let root = a.images.as_ref().expect("clap requires --images or --embeddings");
        let mut folder = ImageFolder::scan(root)?;
        if let Some(n) = a.classes {
            folder = folder.largest_classes(n);
        }
        if let Some(n) = a.max_per_class {
            folder = folder.at_most_per_class(n);
        }
        let mut cfg = BackboneConfig::new(loss);
        cfg.epochs = a.epochs;
        cfg.batch_size = a.batch;
        cfg.sgd.lr = a.lr;
        cfg.seed = a.seed;
        cfg.device = device;
        let net = train_backbone(&folder, &cfg, &mut on_step)?;
        net.save(&model_path)?;
        report(&pb, net.records(), folder.classes().len(), folder.items().len(), &model_path, &csv_path);
    }
    csv.flush()?;
    Ok(())
}

fn labels_of(keys: &[String]) -> (Vec<usize>, usize) {
    let mut ids = std::collections::HashMap::new();
    let labels = keys
        .iter()
        .map(|k| {
            let n = ids.len();
            *ids.entry(identity(k).to_string()).or_insert(n)
        })
        .collect();
    (labels, ids.len())
}

fn report(
    pb: &indicatif::ProgressBar,
    records: &[StepRecord],
    classes: usize,
    samples: usize,
    model: &Path,
    csv: &Path,
) {
    pb.finish_and_clear();
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        println!(
            "{samples} samples, {classes} classes, {} steps: loss {:.4} -> {:.4}, batch accuracy {:.3} -> {:.3}",
            records.len(),
            first.loss,
            last.loss,
            first.accuracy,
            last.accuracy
        );
    }
    println!("wrote {} and {}", model.display(), csv.display());
}
