//! CosFace Fig. 5 at head scale on LFW: for each View-2 fold k, train a head on frozen
//! embeddings of the people that `people.txt` puts in the other nine folds (identity-disjoint
//! from fold k's pairs), score all pairs with the head's features, and report fold k's
//! accuracy with the threshold chosen on the other nine folds.
//!
//! `cargo run --release -p facebench-lmcl --example lmcl_ablation -- <store> <out.csv>
//!  [s=30] [epochs=5] [seeds=1] [min_images=2] [batch=256] [lr=0.1] [settings] [init=identity|random]`
//!
//! `<store>`: embeddings of all LFW images keyed `Name/Name_NNNN.jpg` (e.g. `facebench embed
//! --list <all images> --out lfw.fbs`). `settings`: comma-free list separated by `;` of loss
//! specs, `raw` for the backbone features; default `raw`, Softmax, A-Softmax (m=4, annealed),
//! ArcFace (m=0.5) and LMCL with m = 0, 0.05, ..., 0.45 at scale s.
//! Thresholds: the exact rule (midpoints between sorted training scores, first maximum of
//! training accuracy, "same" iff score > threshold).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use facebench_lmcl::{train_head, HeadInit, MarginLoss, SgdParams, SphereAnneal, TrainConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// `(name, number of images, fold)` per person of people.txt.
type People = Vec<(String, usize, usize)>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: lmcl_ablation <store> <out.csv> [s] [epochs] [seeds] [min_images] [batch] [lr] [settings] [init]".into());
    }
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let s: f64 = arg(2, "30").parse()?;
    let epochs: usize = arg(3, "5").parse()?;
    let seeds: u64 = arg(4, "1").parse()?;
    let min_images: usize = arg(5, "2").parse()?;
    let batch: usize = arg(6, "256").parse()?;
    let lr: f64 = arg(7, "0.1").parse()?;
    // `identity`: the head starts as the raw features (fine-tuning a linear layer);
    // `random`: it starts from scratch.
    let init = match arg(9, "identity").as_str() {
        "identity" => HeadInit::Identity,
        "random" => HeadInit::Random,
        other => return Err(format!("init {other:?}: identity or random").into()),
    };
    let settings: Vec<Option<MarginLoss>> = match args.get(8).filter(|a| *a != "default") {
        Some(list) => list
            .split(';')
            .map(|t| {
                if t == "raw" {
                    Ok(None)
                } else {
                    t.parse().map(Some)
                }
            })
            .collect::<Result<_, _>>()?,
        None => {
            let mut v = vec![
                None,
                Some(MarginLoss::Softmax),
                Some(MarginLoss::SphereFace { m: 4, lambda: 0.0 }),
                Some(format!("arcface:s={s},m=0.5").parse()?),
            ];
            v.extend((0..10).map(|i| {
                Some(MarginLoss::CosFace {
                    s,
                    m: (i * 5) as f64 / 100.0,
                })
            }));
            v
        }
    };
    let data = std::env::var_os("FACEBENCH_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        PathBuf::from,
    );
    let mut emb = facebench_core::store::read(&PathBuf::from(&args[0]), None)?;
    emb.l2_normalize()?;
    let dim = emb.dim();
    let pairs = facebench_lfw::Pairs::read(&data.join("lfw/pairs.txt"))?;
    let people = read_people(&data.join("lfw/people.txt"))?;
    let n_folds = pairs.n_folds;

    // Pair images, embedded once; per-fold heads map them.
    let mut pair_keys: Vec<String> = pairs.image_keys();
    pair_keys.sort();
    pair_keys.dedup();
    let key_row: HashMap<&str, usize> = pair_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut pair_emb = Vec::with_capacity(pair_keys.len() * dim);
    for k in &pair_keys {
        pair_emb.extend_from_slice(emb.get(k)?);
    }
    let pair_idx: Vec<(usize, usize)> = pairs
        .pairs
        .iter()
        .map(|p| (key_row[p.left.as_str()], key_row[p.right.as_str()]))
        .collect();
    let is_same: Vec<bool> = pairs.labels();
    let folds: Vec<usize> = pairs.folds();

    let mut out = std::fs::File::create(&args[1])?;
    writeln!(out, "setting,seed,fold,accuracy,train_rows,classes,seconds")?;
    println!(
        "{} embeddings ({dim}-D), {} pairs, s={s}, epochs={epochs}, batch={batch}, lr={lr}, init {init:?}, people with >= {min_images} images",
        emb.len(),
        pairs.len()
    );
    for setting in &settings {
        let name = setting.map_or("raw".to_string(), |l| l.to_string());
        let mut per_seed = Vec::new();
        let run_seeds = if setting.is_none() { 1 } else { seeds };
        for seed in 0..run_seeds {
            let mut accs = Vec::new();
            let t_all = Instant::now();
            for k in 0..n_folds {
                let t = Instant::now();
                let (feats, rows, classes) = match setting {
                    None => (pair_emb.clone(), 0, 0),
                    Some(loss) => {
                        let (x, y, c) = training_set(&people, k, min_images, &emb)?;
                        let mut cfg = TrainConfig {
                            epochs,
                            batch_size: batch,
                            seed,
                            init,
                            sgd: SgdParams {
                                lr,
                                ..SgdParams::default()
                            },
                            ..TrainConfig::new(*loss, dim)
                        };
                        if let MarginLoss::SphereFace { .. } = loss {
                            cfg.anneal = Some(SphereAnneal::default());
                        }
                        let head = train_head(&x, dim, &y, &cfg)?;
                        (head.apply(&pair_emb)?, y.len(), c)
                    }
                };
                let d = feats.len() / pair_keys.len();
                let scores: Vec<f64> = pair_idx
                    .iter()
                    .map(|&(a, b)| cosine(&feats[a * d..(a + 1) * d], &feats[b * d..(b + 1) * d]))
                    .collect();
                let acc = fold_accuracy(&scores, &is_same, &folds, k);
                writeln!(
                    out,
                    "\"{name}\",{seed},{k},{acc},{rows},{classes},{:.3}",
                    t.elapsed().as_secs_f64()
                )?;
                accs.push(acc);
            }
            let (m, sd) = mean_std(&accs);
            println!(
                "{name:<44} seed {seed}: {:.2} +- {:.2} %  ({:.1} s for {n_folds} folds)",
                100.0 * m,
                100.0 * sd,
                t_all.elapsed().as_secs_f64()
            );
            per_seed.push(m);
        }
        if per_seed.len() > 1 {
            let (m, sd) = mean_std(&per_seed);
            println!(
                "{name:<44} over {} seeds: {:.2} +- {:.2} % (std of seed means)",
                per_seed.len(),
                100.0 * m,
                100.0 * sd
            );
        }
    }
    Ok(())
}

/// `people.txt`: fold count, then per fold a count line and `name\tn_images` lines.
fn read_people(path: &std::path::Path) -> Res<People> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines().enumerate();
    let bad = |n: usize, l: &str| format!("{}:{}: unexpected line {l:?}", path.display(), n + 1);
    let (n0, first) = lines.next().ok_or("empty people.txt")?;
    let folds: usize = first.trim().parse().map_err(|_| bad(n0, first))?;
    let mut out = Vec::new();
    for fold in 0..folds {
        let (n, l) = lines
            .next()
            .ok_or_else(|| format!("{}: fold {fold} missing", path.display()))?;
        let count: usize = l.trim().parse().map_err(|_| bad(n, l))?;
        for _ in 0..count {
            let (n, l) = lines
                .next()
                .ok_or_else(|| format!("{}: fold {fold} is short", path.display()))?;
            let (name, imgs) = l.split_once('\t').ok_or_else(|| bad(n, l))?;
            out.push((
                name.to_string(),
                imgs.trim().parse().map_err(|_| bad(n, l))?,
                fold,
            ));
        }
    }
    Ok(out)
}

/// Embeddings and labels of the people outside fold `k` with at least `min_images` images.
fn training_set(
    people: &[(String, usize, usize)],
    k: usize,
    min_images: usize,
    emb: &facebench_core::Embeddings,
) -> Res<(Vec<f32>, Vec<usize>, usize)> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut classes = 0;
    for (name, n, fold) in people {
        if *fold == k || *n < min_images {
            continue;
        }
        for i in 1..=*n {
            x.extend_from_slice(emb.get(&format!("{name}/{name}_{i:04}.jpg"))?);
            y.push(classes);
        }
        classes += 1;
    }
    Ok((x, y, classes))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&p, &q) in a.iter().zip(b) {
        d += f64::from(p) * f64::from(q);
        na += f64::from(p) * f64::from(p);
        nb += f64::from(q) * f64::from(q);
    }
    d / (na.sqrt() * nb.sqrt()).max(1e-30)
}

/// Accuracy on fold `k` at the training-fold threshold (exact midpoint rule, first maximum).
fn fold_accuracy(scores: &[f64], same: &[bool], folds: &[usize], k: usize) -> f64 {
    let mut train: Vec<(f64, bool)> = (0..scores.len())
        .filter(|&i| folds[i] != k)
        .map(|i| (scores[i], same[i]))
        .collect();
    train.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold below everything: all predicted "same".
    let positives = train.iter().filter(|p| p.1).count();
    let mut correct = positives;
    let (mut best, mut thr) = (correct, train[0].0 - 1.0);
    for i in 0..train.len() {
        // Moving the threshold past train[i] turns it into "different".
        correct = if train[i].1 { correct - 1 } else { correct + 1 };
        let next = train.get(i + 1).map(|p| p.0);
        if next == Some(train[i].0) {
            continue; // ties move together
        }
        if correct > best {
            best = correct;
            thr = next.map_or(train[i].0 + 1.0, |n| 0.5 * (train[i].0 + n));
        }
    }
    let test: Vec<usize> = (0..scores.len()).filter(|&i| folds[i] == k).collect();
    test.iter()
        .filter(|&&i| (scores[i] > thr) == same[i])
        .count() as f64
        / test.len() as f64
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
    )
}
