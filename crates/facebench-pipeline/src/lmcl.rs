//! The CosFace paper's LMCL experiments at head scale, on frozen embeddings of
//! landmark-aligned LFW images (the same cached alignments and embeddings as `eval lfw`):
//! the toy experiment (Fig. 3) and the margin ablation (Fig. 5).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use facebench_core::Embeddings;
use facebench_lmcl::{
    ablation, toy, AblationConfig, AblationData, AblationRow, HeadInit, MarginLoss, Setting, ToyConfig, TrainSet,
};
use facebench_pairs::{Pairs, People};
use facebench_report::lmcl::{seconds_per_epoch, write_ablation_report, write_toy_report, AblationReport, ToyReport};

use crate::provenance::collect;
use crate::{progress_bar, write_json, Error, Result, ResultsEnvelope, Stage, Workspace};
use facebench_core::atomic::OutputSet;

/// toy.json's fields beside the envelope's.
#[derive(Serialize)]
struct ToyBody<'a> {
    identities: &'a [String],
    images: usize,
    alignment_fallbacks: &'a [String],
    epochs: usize,
    lr: f64,
    seed: u64,
    s: f64,
    panels: Vec<ToyPanel>,
}

/// One loss of the toy experiment: its 2-D feature geometry and final training state.
#[derive(Serialize)]
struct ToyPanel {
    loss: String,
    mean_spread_deg: f64,
    mean_gap_deg: f64,
    mean_nearest_centre_deg: f64,
    mean_margin_deg: f64,
    final_loss: f64,
    final_accuracy: f64,
    seconds: f64,
}

/// margin_ablation.json's fields beside the envelope's.
#[derive(Serialize)]
struct AblationBody<'a> {
    s: f64,
    epochs: usize,
    batch: usize,
    lr: f64,
    seeds: u64,
    min_images: u32,
    init: &'a str,
    seconds: f64,
    seconds_per_epoch_per_head: f64,
    rows: &'a [AblationRow],
}

/// Options both experiments share.
#[derive(Debug, Clone)]
pub struct Common {
    /// A registry name, or a trained backbone checkpoint.
    pub model: String,
    pub out: PathBuf,
}

/// L2-normalised landmark embeddings of `keys` and the keys whose alignment fell back.
fn embeddings(ws: &Workspace, model: &str, keys: &[String]) -> Result<(Embeddings, Vec<String>)> {
    let e = ws.lfw_landmark_embeddings(model, keys)?;
    let mut emb = e.orig;
    emb.l2_normalize()?;
    let wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
    Ok((emb, e.fallbacks.into_iter().filter(|k| wanted.contains(k.as_str())).collect()))
}

fn rows_of(emb: &Embeddings, keys: impl IntoIterator<Item = String>) -> Result<Vec<f32>> {
    let mut x = Vec::new();
    for k in keys {
        x.extend_from_slice(emb.get(&k)?);
    }
    Ok(x)
}

/// `facebench lmcl toy`.
#[derive(Debug, Clone)]
pub struct ToyRequest {
    pub common: Common,
    pub identities: usize,
    pub s: f64,
    pub margins: Vec<f64>,
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Trains the toy heads, writes toy.png/svg, toy.md and toy.json; returns the Markdown.
pub fn run_toy(ws: &Workspace, a: &ToyRequest) -> Result<String> {
    let people = People::read(&ws.data_root.join("lfw/people.txt"))?;
    let chosen = people.largest(a.identities);
    let names: Vec<String> = chosen.iter().map(|p| p.name.clone()).collect();
    let keys: Vec<String> = chosen.iter().flat_map(|p| p.image_keys()).collect();
    let labels: Vec<usize> =
        chosen.iter().enumerate().flat_map(|(c, p)| std::iter::repeat_n(c, p.images as usize)).collect();
    let (emb, fallbacks) = embeddings(ws, &a.common.model, &keys)?;
    let x = rows_of(&emb, keys.iter().cloned())?;
    let mut losses = vec![MarginLoss::Softmax, MarginLoss::NormFace { s: a.s }];
    losses.extend(a.margins.iter().map(|&m| MarginLoss::CosFace { s: a.s, m }));
    let cfg = ToyConfig { epochs: a.epochs, lr: a.lr, seed: a.seed, ..ToyConfig::default() };
    eprintln!(
        "toy: {} identities, {} images, {} losses, {} epochs each",
        names.len(),
        keys.len(),
        losses.len(),
        a.epochs
    );
    let t = Instant::now();
    let panels = toy(&x, emb.dim(), &labels, &losses, &cfg)?;
    let seconds = t.elapsed().as_secs_f64();

    let out = &a.common.out;
    let set = OutputSet::part(out, "toy")?;
    let md = write_toy_report(
        set.dir(),
        &ToyReport {
            model: a.common.model.as_str(),
            identities: &names,
            labels: &labels,
            fallbacks: fallbacks.len(),
            epochs: a.epochs,
            batch_size: cfg.batch_size,
            lr: a.lr,
            seed: a.seed,
            seconds,
            panels: &panels,
        },
    )?;
    let provenance =
        collect(&[("model", a.common.model.to_string()), ("data root", ws.data_root.display().to_string())]);
    let body = ToyBody {
        identities: &names,
        images: keys.len(),
        alignment_fallbacks: &fallbacks,
        epochs: a.epochs,
        lr: a.lr,
        seed: a.seed,
        s: a.s,
        panels: panels
            .iter()
            .map(|p| ToyPanel {
                loss: p.loss.to_string(),
                mean_spread_deg: p.stats.mean_spread_deg,
                mean_gap_deg: p.stats.mean_gap_deg,
                mean_nearest_centre_deg: p.stats.mean_nearest_centre_deg,
                mean_margin_deg: p.stats.mean_margin_deg,
                final_loss: p.final_loss,
                final_accuracy: p.final_accuracy,
                seconds: p.seconds,
            })
            .collect(),
    };
    let timings = vec![Stage::new("train the 2-D heads", seconds, format!("{} losses", panels.len()))];
    let doc = ResultsEnvelope::new("lmcl-toy", &a.common.model, body, timings, &provenance);
    write_json(&set.dir().join("toy.json"), &doc)?;
    set.commit()?;
    eprintln!("wrote {}", out.join("toy.png").display());
    Ok(md)
}

/// `facebench lmcl ablation`.
#[derive(Debug, Clone)]
pub struct AblationRequest {
    pub common: Common,
    pub s: f64,
    pub seeds: u64,
    pub epochs: usize,
    pub head_batch: usize,
    pub lr: f64,
    pub min_images: u32,
    /// `identity` or `random`.
    pub init: String,
    /// `;`-separated settings instead of the paper's sweep.
    pub settings: Option<String>,
}

/// Trains and scores every head, writes margin_ablation.{csv,png,svg,md,json}; returns the
/// Markdown.
pub fn run_ablation(ws: &Workspace, a: &AblationRequest) -> Result<String> {
    let people = People::read(&ws.data_root.join("lfw/people.txt"))?;
    let pairs = Pairs::read(&ws.data_root.join("lfw/pairs.txt"))?;
    if people.n_folds != pairs.n_folds {
        return Err(Error::Invalid(format!("people.txt has {} folds, pairs.txt {}", people.n_folds, pairs.n_folds)));
    }
    let init = match a.init.as_str() {
        "identity" => HeadInit::Identity,
        "random" => HeadInit::Random,
        other => return Err(Error::Invalid(format!("--init {other:?}: identity or random"))),
    };
    let settings: Vec<Setting> = match &a.settings {
        None => Setting::paper_sweep(a.s),
        Some(list) => list
            .split(';')
            .map(|t| if t.trim() == "raw" { Ok(Setting::Raw) } else { t.trim().parse().map(Setting::Head) })
            .collect::<std::result::Result<_, _>>()?,
    };
    let keys = people.image_keys();
    let (emb, fallbacks) = embeddings(ws, &a.common.model, &keys)?;
    let d = emb.dim();

    // Pair images once; every head maps them.
    let mut pair_keys = pairs.image_keys();
    pair_keys.sort();
    pair_keys.dedup();
    let row: HashMap<&str, usize> = pair_keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let train = (0..people.n_folds)
        .map(|k| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            let mut classes = 0;
            for p in people.people.iter().filter(|p| p.fold != k && p.images >= a.min_images) {
                x.extend(rows_of(&emb, p.image_keys())?);
                y.extend(std::iter::repeat_n(classes, p.images as usize));
                classes += 1;
            }
            Ok(TrainSet { x, y, classes })
        })
        .collect::<Result<Vec<_>>>()?;
    let data = AblationData {
        dim: d,
        pair_images: rows_of(&emb, pair_keys.iter().cloned())?,
        pairs: pairs.pairs.iter().map(|p| (row[p.left.as_str()], row[p.right.as_str()])).collect(),
        is_same: pairs.labels(),
        folds: pairs.folds(),
        train,
    };
    let cfg = AblationConfig {
        settings: settings.clone(),
        seeds: a.seeds,
        epochs: a.epochs,
        batch_size: a.head_batch,
        lr: a.lr,
        init,
    };
    let runs: u64 = settings.iter().map(|s| if *s == Setting::Raw { 1 } else { a.seeds.max(1) }).sum();
    eprintln!(
        "ablation: {} settings, {} seeds, {} folds; training sets of {}..{} images in {}..{} classes",
        settings.len(),
        a.seeds,
        people.n_folds,
        data.train.iter().map(|t| t.y.len()).min().unwrap_or(0),
        data.train.iter().map(|t| t.y.len()).max().unwrap_or(0),
        data.train.iter().map(|t| t.classes).min().unwrap_or(0),
        data.train.iter().map(|t| t.classes).max().unwrap_or(0),
    );
    let pb = progress_bar(runs as usize, "heads (setting x seed, 10 folds each)");
    // Heads in parallel, one per thread; `ablation` keeps each head's matmuls on its thread.
    let threads = rayon::current_num_threads();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let t = Instant::now();
    let rows = pool.install(|| {
        ablation(&data, &cfg, &|r: &AblationRow| {
            let line = format!("{:<44} seed {}: {:.2} ± {:.2} %", r.setting, r.seed, 100.0 * r.mean, 100.0 * r.std);
            // A hidden bar (output not a terminal) would swallow println: logs keep the line.
            if pb.is_hidden() {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
            pb.inc(1);
        })
    })?;
    pb.finish_and_clear();
    let seconds = t.elapsed().as_secs_f64();

    let out = &a.common.out;
    let set = OutputSet::part(out, "margin_ablation")?;
    let train_rows = data.train.iter().map(|t| t.y.len()).sum::<usize>() / data.train.len().max(1);
    let md = write_ablation_report(
        set.dir(),
        &AblationReport {
            model: a.common.model.as_str(),
            s: a.s,
            init: &a.init,
            min_images: a.min_images,
            epochs: a.epochs,
            head_batch: a.head_batch,
            lr: a.lr,
            seeds: a.seeds,
            dim: data.dim,
            train_rows,
            images: data.pair_images.len() / data.dim.max(1),
            fallbacks: fallbacks.len(),
            seconds,
            threads,
            rows: &rows,
        },
    )?;
    let provenance = collect(&[
        ("model", a.common.model.to_string()),
        ("data root", ws.data_root.display().to_string()),
        ("wall time (s)", format!("{seconds:.1}")),
    ]);
    let body = AblationBody {
        s: a.s,
        epochs: a.epochs,
        batch: a.head_batch,
        lr: a.lr,
        seeds: a.seeds,
        min_images: a.min_images,
        init: &a.init,
        seconds,
        seconds_per_epoch_per_head: seconds_per_epoch(&rows),
        rows: &rows,
    };
    let timings = vec![Stage::new("train and score the heads", seconds, format!("{} rows", rows.len()))];
    write_json(
        &set.dir().join("margin_ablation.json"),
        &ResultsEnvelope::new("lmcl-ablation", &a.common.model, body, timings, &provenance),
    )?;
    set.commit()?;
    eprintln!("wrote {}", out.join("margin_ablation.png").display());
    Ok(md)
}
