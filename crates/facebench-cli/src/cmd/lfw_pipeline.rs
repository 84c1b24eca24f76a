//! LFW from images: align (cached) -> embed (cached) -> tune on View 1 -> score View 2
//! -> report. Each stage reuses what an earlier run left in the cache folder, so a
//! second run only scores and writes the report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use facebench_core::store::AppendStore;
use facebench_core::Embeddings;
use facebench_extract::{read_alignments, Job};
use facebench_lfw::{evaluate, LfwResults, MetricSettings, Pairs, PairsProtocol, Rule, Variant};
use facebench_model::FaceModel;
use facebench_report::lfw::{write_lfw_report, LfwReportContext, VariantRow};
use serde::Serialize;

use super::align::align_cached;
use super::embed::{embed_cached, flip_path, recipe, ModelName};
use super::run_args::ModelRunArgs;
use super::{create_dir, write_json, CmdResult};

#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Protocol file declaring files, checksums, metric settings and preprocessing variants.
    #[arg(long, default_value = "protocols/lfw.toml")]
    pub protocol_file: PathBuf,
    /// Cache of alignments and embeddings (reused by later runs).
    #[arg(long, default_value = "cache/lfw")]
    pub cache: PathBuf,
    #[command(flatten)]
    pub run: ModelRunArgs,
}

/// One View-1 row of the tuner.
#[derive(Debug, Clone, Serialize)]
pub struct TuneRow {
    pub variant: Variant,
    /// DevTest accuracy with the threshold chosen on DevTrain.
    pub view1_accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneResult {
    pub model: String,
    pub rule: String,
    pub rows: Vec<TuneRow>,
    pub chosen: String,
}

/// Everything prepared for a model: pairs, embeddings per variant, stage timings.
struct Prepared {
    proto: PairsProtocol,
    proto_sha: String,
    tune_rule: Rule,
    view2: Pairs,
    view1: Pairs,
    model_name: String,
    weights_sha: String,
    /// (align string) -> (embeddings, mirror embeddings)
    stores: Vec<(String, Embeddings, Embeddings)>,
    fallbacks: Vec<String>,
    timings: Vec<(String, f64, String)>,
}

pub(super) fn store_path(cache: &Path, model: &str, align: &str) -> PathBuf {
    let safe: String = align.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    cache.join(model).join(format!("{safe}.fbs"))
}

/// A stage's timing row. Work done now is remembered in `<cache>/stages.json`, so that a
/// later run that finds everything cached still reports what computing it cost.
fn stage(
    cache: &Path,
    name: &str,
    seconds: f64,
    note: String,
    did_work: bool,
) -> Result<(String, f64, String), Box<dyn std::error::Error>> {
    let path = cache.join("stages.json");
    let mut known: std::collections::BTreeMap<String, (f64, String)> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if did_work {
        known.insert(name.to_string(), (seconds, note.clone()));
        write_json(&path, &known)?;
        return Ok((name.to_string(), seconds, note));
    }
    Ok(match known.get(name) {
        Some((secs, first)) => (name.to_string(), seconds, format!("{note}; when computed: {secs:.0} s, {first}")),
        None => (name.to_string(), seconds, note),
    })
}

fn prepare(model: ModelName, a: &PipelineArgs, data_root: &Path) -> Result<Prepared, Box<dyn std::error::Error>> {
    let (proto, proto_sha) = PairsProtocol::read(&a.protocol_file)?;
    proto.verify(data_root)?;
    let view2 = proto.read_pairs(data_root)?;
    let no = |what: &str| format!("{}: no {what}", a.protocol_file.display());
    let view1 = proto.read_tune_pairs(data_root)?.ok_or_else(|| no("[tune] split to choose a variant on"))?;
    let tune_rule = proto.tune.as_ref().map(|t| t.rule).ok_or_else(|| no("[tune] rule"))?;
    let root = data_root.join(proto.images.as_ref().ok_or_else(|| no("images root"))?);
    let mut keys = view2.image_keys();
    let seen: HashSet<String> = keys.iter().cloned().collect();
    keys.extend(view1.image_keys().into_iter().filter(|k| !seen.contains(k)));

    let mut timings = Vec::new();
    let align_path = a.cache.join("align.jsonl");
    let needs_landmarks =
        proto.variants.iter().any(|v| recipe(model, &v.align).map(|r| r.uses_alignment).unwrap_or(false));
    let (faces, fallbacks) = if needs_landmarks {
        let o = align_cached(&root, &keys, &align_path, &a.run.device, a.run.models_dir.as_deref())?;
        let note = if o.aligned > 0 {
            format!("{} images, {:.1} images/s; {} cached", o.aligned, o.per_second(), o.already)
        } else {
            format!("all {} images cached", o.already)
        };
        timings.push(stage(&a.cache, "align (detector + 68 landmarks)", o.seconds, note, o.aligned > 0)?);
        let (faces, fallbacks) = read_alignments(&align_path)?;
        let v2: HashSet<String> = view2.image_keys().into_iter().collect();
        (faces, fallbacks.into_iter().filter(|k| v2.contains(k)).collect())
    } else {
        (Default::default(), Vec::new())
    };

    let net: Box<dyn FaceModel> = a.run.load(model.as_str())?;
    let mut stores = Vec::new();
    for align in proto.variants.iter().map(|v| v.align.as_str()) {
        if stores.iter().any(|(a, _, _)| a == align) {
            continue;
        }
        let r = recipe(model, align)?;
        let job = Job { model: net.as_ref(), recipe: &r, root: &root, batch: a.run.batch, flip: true, skip_bad: false };
        let path = store_path(&a.cache, model.as_str(), align);
        let s = embed_cached(&job, &keys, &faces, &path)?;
        let note = if s.computed > 0 {
            format!("{} images + mirrors, {:.1} model inputs/s", s.computed, 2.0 * s.images_per_sec())
        } else {
            format!("all {} images cached", s.already_stored)
        };
        let name = format!("embed {}, align {align} (+ mirrors)", model.as_str());
        timings.push(stage(&a.cache, &name, s.seconds, note, s.computed > 0)?);
        let (_, emb) = AppendStore::read(&path)?;
        let (_, flip) = AppendStore::read(&flip_path(&path))?;
        stores.push((align.to_string(), emb, flip));
    }
    Ok(Prepared {
        proto,
        proto_sha,
        tune_rule,
        view2,
        view1,
        model_name: model.as_str().to_string(),
        weights_sha: net.weights_sha256().to_string(),
        stores,
        fallbacks,
        timings,
    })
}

impl Prepared {
    fn stores_for(&self, v: &Variant) -> (&Embeddings, Option<&Embeddings>) {
        let (_, e, f) = self.stores.iter().find(|(a, _, _)| *a == v.align).expect("embedded above");
        (e, v.flip.then_some(f))
    }

    /// View-1 accuracy of every non-baseline variant; the best one (first on ties) is chosen.
    fn tune(&self) -> Result<TuneResult, Box<dyn std::error::Error>> {
        let rule = self.tune_rule;
        let opts = MetricSettings { rules: vec![rule], exact_fars: vec![], insightface_fars: vec![] };
        let mut rows = Vec::new();
        for v in self.proto.variants.iter().filter(|v| !v.baseline) {
            let (e, f) = self.stores_for(v);
            let r = evaluate(&self.view1, e, f, &opts)?;
            rows.push(TuneRow { variant: v.clone(), view1_accuracy: r.accuracy[0].folds[1].test_accuracy });
        }
        let best = rows.iter().fold(None::<&TuneRow>, |b, r| match b {
            Some(b) if b.view1_accuracy >= r.view1_accuracy => Some(b),
            _ => Some(r),
        });
        let chosen = best.expect("a non-baseline variant").variant.name.clone();
        Ok(TuneResult { model: self.model_name.clone(), rule: rule.to_string(), rows, chosen })
    }

    fn view2(&self, v: &Variant, rules: Vec<Rule>) -> Result<LfwResults, Box<dyn std::error::Error>> {
        let (e, f) = self.stores_for(v);
        let m = &self.proto.metrics;
        let opts =
            MetricSettings { rules, exact_fars: m.exact_fars.clone(), insightface_fars: m.insightface_fars.clone() };
        Ok(evaluate(&self.view2, e, f, &opts)?)
    }
}

fn tune_table(t: &TuneResult) -> String {
    let mut s = format!("View 1 ({} rule: DevTest accuracy, threshold on DevTrain), {}:\n", t.rule, t.model);
    for r in &t.rows {
        let mark = if r.variant.name == t.chosen { "  <- chosen" } else { "" };
        s += &format!("  {:<20} {:>7.3}%{mark}\n", r.variant.name, 100.0 * r.view1_accuracy);
    }
    s
}

/// `facebench tune lfw`: sweeps the protocol's variants on View 1 and writes the choice.
pub fn tune(model: ModelName, a: &PipelineArgs, data_root: &Path) -> CmdResult {
    let p = prepare(model, a, data_root)?;
    let t = p.tune()?;
    let path = a.cache.join(model.as_str()).join("tune.json");
    write_json(&path, &t)?;
    print!("{}", tune_table(&t));
    println!("wrote {}", path.display());
    Ok(())
}

/// `facebench eval lfw --model NAME`: the whole protocol from images to the report.
pub fn run(model: ModelName, a: &PipelineArgs, data_root: &Path, out: &Path) -> CmdResult {
    let t_all = Instant::now();
    let mut p = prepare(model, a, data_root)?;
    let t = Instant::now();
    let tune = p.tune()?;
    write_json(&a.cache.join(model.as_str()).join("tune.json"), &tune)?;
    let chosen = p.proto.variant(&tune.chosen).expect("tuned variant").clone();
    let results = p.view2(&chosen, p.proto.metrics.rules.clone())?;
    let mut variants = Vec::new();
    for v in p.proto.variants.iter().filter(|v| v.name != chosen.name) {
        let r = p.view2(v, vec![Rule::InsightFace])?;
        let rep = &r.accuracy[0];
        variants.push(VariantRow {
            name: format!("{}{}", v.name, if v.baseline { ", baseline" } else { "" }),
            note: "insightface".into(),
            accuracy_mean: rep.mean,
            accuracy_std: rep.std_population,
        });
    }
    p.timings.push(("tune on View 1 + score View 2".into(), t.elapsed().as_secs_f64(), String::new()));

    let choice = format!(
        "{} (best View-1 accuracy under the {} rule among {})",
        chosen.name,
        tune.rule,
        tune.rows
            .iter()
            .map(|r| format!("{} {:.2}%", r.variant.name, 100.0 * r.view1_accuracy))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let preprocessing = format!(
        "align {}{}",
        if chosen.align == "landmarks" {
            match model {
                ModelName::FaceapiResnet => "landmarks (face-api SSD + 68 landmarks, dlib box, 150x150)".to_string(),
                ModelName::Mobileface => {
                    "landmarks (face-api SSD + 68 landmarks, ArcFace 5-point warp, 112x112)".to_string()
                }
            }
        } else {
            chosen.align.clone()
        },
        if chosen.flip { ", mirror features fused" } else { ", no mirror" }
    );
    let provenance = super::provenance::collect(&[
        ("model", p.model_name.clone()),
        ("weights sha256", p.weights_sha.clone()),
        ("preprocessing", preprocessing.clone()),
        ("protocol file", format!("{} (sha256 {})", a.protocol_file.display(), p.proto_sha)),
        ("data root", data_root.display().to_string()),
        ("device", a.run.device.clone()),
    ]);
    create_dir(out)?;
    // Written before the report so the report's total includes everything but itself.
    let wall = t_all.elapsed().as_secs_f64();
    p.timings.push(("total (build excluded)".into(), wall, String::new()));
    let ctx = LfwReportContext {
        model: p.model_name.clone(),
        preprocessing: preprocessing.clone(),
        choice: choice.clone(),
        variants,
        fallbacks: p.fallbacks.clone(),
        timings: p.timings.clone(),
        provenance: provenance.clone(),
    };
    write_lfw_report(out, &results, &ctx)?;
    results.write_pair_scores_csv(&out.join("pairs_scores.csv"))?;
    let doc = serde_json::json!({
        "protocol": "lfw",
        "model": p.model_name,
        "preprocessing": preprocessing,
        "variant": chosen,
        "choice": choice,
        "tune": tune,
        "baselines_and_other_variants": ctx.variants.iter().map(|v| serde_json::json!({
            "name": v.name, "rule": v.note, "accuracy_mean": v.accuracy_mean, "accuracy_std": v.accuracy_std,
        })).collect::<Vec<_>>(),
        "alignment_fallbacks": p.fallbacks,
        "timings": p.timings.iter().map(|(s, t, n)| serde_json::json!({"stage": s, "seconds": t, "note": n})).collect::<Vec<_>>(),
        "provenance": provenance.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "results": &results,
    });
    write_json(&out.join("results.json"), &doc)?;

    print!("{}", tune_table(&tune));
    print!("{}", super::eval::headline_table(&results));
    for v in &ctx.variants {
        println!(
            "variant {:<24} insightface {:.3}% +- {:.3}%",
            v.name,
            100.0 * v.accuracy_mean,
            100.0 * v.accuracy_std
        );
    }
    println!("{} alignment fallback(s); total {:.1}s; report in {}", p.fallbacks.len(), wall, out.display());
    Ok(())
}
