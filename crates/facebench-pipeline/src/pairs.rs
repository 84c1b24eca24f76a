//! Any pairs protocol file (`lfw` or `list` format) from images: align (cached) -> embed
//! (cached) -> choose a variant (on the `[tune]` split, e.g. LFW View 1) -> score the pairs
//! -> report, titled by the protocol. Each stage reuses what an earlier run left in the cache
//! folder, so a second run only scores and writes the report. Also pairs scored from a
//! precomputed store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use facebench_core::{store, Embeddings};
use facebench_detect::read_alignments;
use facebench_extract::Job;
use facebench_image::Decoder;
use facebench_pairs::PairsFormat;
use facebench_pairs::{evaluate, LfwResults, MetricSettings, Pairs, PairsProtocol, Rule, Variant};
use facebench_report::lfw::{headline_table, write_lfw_report, LfwReportContext, VariantRow};
use serde::Serialize;

use crate::models::Model;
use crate::provenance::collect;
use crate::stages::StageLog;
use crate::{create_dir, write_json, Error, Result, ResultsEnvelope, Workspace};

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

impl TuneResult {
    /// The terminal table of the sweep, the choice marked.
    pub fn table(&self) -> String {
        let mut s = format!("View 1 ({} rule: DevTest accuracy, threshold on DevTrain), {}:\n", self.rule, self.model);
        for r in &self.rows {
            let mark = if r.variant.name == self.chosen { "  <- chosen" } else { "" };
            s += &format!("  {:<20} {:>7.3}%{mark}\n", r.variant.name, 100.0 * r.view1_accuracy);
        }
        s
    }
}

/// Everything prepared for a model: pairs, embeddings per variant, stage timings.
struct Prepared {
    proto: PairsProtocol,
    proto_sha: String,
    /// The protocol's variants, or the model's own alignment with mirrors if it lists none.
    variants: Vec<Variant>,
    /// The `[tune]` split and its rule, if the protocol has one.
    tune: Option<(Pairs, Rule)>,
    view2: Pairs,
    model: Model,
    /// (align string) -> (embeddings, mirror embeddings)
    stores: Vec<(String, Embeddings, Embeddings)>,
    fallbacks: Vec<String>,
    log: StageLog,
}

fn prepare(ws: &Workspace, model: &str, protocol_file: &Path) -> Result<Prepared> {
    let data_root = &ws.data_root;
    let (proto, proto_sha) = PairsProtocol::read(protocol_file)?;
    if proto.pairs.format == PairsFormat::Bin {
        return Err(Error::Invalid(format!(
            "{}: a .bin pack; evaluate it with `facebench eval bin --bin FILE --protocol-file {}`",
            protocol_file.display(),
            protocol_file.display()
        )));
    }
    proto.verify(data_root)?;
    let view2 = proto.read_pairs(data_root)?;
    let view1 = proto.read_tune_pairs(data_root)?;
    let tune = view1.zip(proto.tune.as_ref().map(|t| t.rule));
    let images = proto.images.as_ref().ok_or_else(|| format!("{}: no images root", protocol_file.display()))?;
    let root = data_root.join(images);
    let mut keys = view2.image_keys();
    let seen: HashSet<String> = keys.iter().cloned().collect();
    if let Some((view1, _)) = &tune {
        keys.extend(view1.image_keys().into_iter().filter(|k| !seen.contains(k)));
    }
    let variants = if proto.variants.is_empty() {
        vec![Variant { name: "landmarks+flip".into(), align: "landmarks".into(), flip: true, baseline: false }]
    } else {
        proto.variants.clone()
    };

    let model = ws.load_model(model)?;
    let mut log = StageLog::open(ws.cache.stages());
    let align_path = ws.cache.align();
    let needs_landmarks = variants.iter().any(|v| model.recipe(&v.align).map(|r| r.uses_alignment).unwrap_or(false));
    let (faces, fallbacks) = if needs_landmarks {
        let o = ws.align(&root, &keys, &align_path, Decoder::Image)?;
        let note = if o.aligned > 0 {
            format!("{} images, {:.1} images/s; {} cached", o.aligned, o.per_second(), o.already)
        } else {
            format!("all {} images cached", o.already)
        };
        log.cached("align (detector + 68 landmarks)", o.seconds, note, o.aligned)?;
        let (faces, fallbacks) = read_alignments(&align_path)?;
        let v2: HashSet<String> = view2.image_keys().into_iter().collect();
        (faces, fallbacks.into_iter().filter(|k| v2.contains(k)).collect())
    } else {
        (Default::default(), Vec::new())
    };

    let mut stores = Vec::new();
    for align in variants.iter().map(|v| v.align.as_str()) {
        if stores.iter().any(|(a, _, _)| a == align) {
            continue;
        }
        let r = model.recipe(align)?;
        let job = Job { model: model.net(), recipe: &r, root: &root, batch: ws.batch, flip: true, skip_bad: false };
        let path = ws.cache.store(model.name(), align);
        let s = ws.embed(&job, &keys, &faces, &path)?;
        let note = if s.computed > 0 {
            format!("{} images + mirrors, {:.1} model inputs/s", s.computed, 2.0 * s.images_per_sec())
        } else {
            format!("all {} images cached", s.already_stored)
        };
        log.cached(&format!("embed {}, align {align} (+ mirrors)", model.name()), s.seconds, note, s.computed)?;
        let (emb, flip) = ws.read_with_flip(&path)?;
        stores.push((align.to_string(), emb, flip));
    }
    Ok(Prepared { proto, proto_sha, variants, tune, view2, model, stores, fallbacks, log })
}

impl Prepared {
    fn stores_for(&self, v: &Variant) -> (&Embeddings, Option<&Embeddings>) {
        let (_, e, f) = self.stores.iter().find(|(a, _, _)| *a == v.align).expect("embedded above");
        (e, v.flip.then_some(f))
    }

    /// `[tune]`-split accuracy of every non-baseline variant; the best one (first on ties) is
    /// chosen. `None` when the protocol has no such split.
    fn tune(&self) -> Result<Option<TuneResult>> {
        let Some((view1, rule)) = &self.tune else { return Ok(None) };
        let rule = *rule;
        let opts = MetricSettings { rules: vec![rule], exact_fars: vec![], insightface_fars: vec![] };
        let mut rows = Vec::new();
        for v in self.variants.iter().filter(|v| !v.baseline) {
            let (e, f) = self.stores_for(v);
            let r = evaluate(view1, e, f, &opts)?;
            rows.push(TuneRow { variant: v.clone(), view1_accuracy: r.accuracy[0].folds[1].test_accuracy });
        }
        let best = rows.iter().fold(None::<&TuneRow>, |b, r| match b {
            Some(b) if b.view1_accuracy >= r.view1_accuracy => Some(b),
            _ => Some(r),
        });
        let chosen = best.ok_or("the protocol file has no non-baseline variant")?.variant.name.clone();
        Ok(Some(TuneResult { model: self.model.name().to_string(), rule: rule.to_string(), rows, chosen }))
    }

    fn view2(&self, v: &Variant, rules: Vec<Rule>) -> Result<LfwResults> {
        let (e, f) = self.stores_for(v);
        let m = &self.proto.metrics;
        let opts =
            MetricSettings { rules, exact_fars: m.exact_fars.clone(), insightface_fars: m.insightface_fars.clone() };
        Ok(evaluate(&self.view2, e, f, &opts)?)
    }
}

/// `facebench tune lfw`: sweeps the protocol's variants on View 1 and writes the choice
/// to `<cache>/<model>/tune.json`, whose path is returned with the result.
pub fn tune(ws: &Workspace, model: &str, protocol_file: &Path) -> Result<(TuneResult, PathBuf)> {
    let p = prepare(ws, model, protocol_file)?;
    let t = p.tune()?.ok_or_else(|| format!("{}: no [tune] split to choose a variant on", protocol_file.display()))?;
    let path = ws.cache.tune(p.model.name());
    write_json(&path, &t)?;
    Ok((t, path))
}

/// Another variant scored on View 2 beside the chosen one.
#[derive(Debug, Clone, Serialize)]
struct OtherVariant {
    name: String,
    rule: String,
    accuracy_mean: f64,
    accuracy_std: f64,
}

#[derive(Serialize)]
struct LfwBody<'a> {
    preprocessing: String,
    variant: Variant,
    choice: String,
    tune: Option<&'a TuneResult>,
    baselines_and_other_variants: Vec<OtherVariant>,
    alignment_fallbacks: &'a [String],
    results: &'a LfwResults,
}

/// `facebench eval pairs --protocol-file FILE --model NAME` (and `eval lfw`): the whole
/// protocol from images to the report in `out`. The variant is `variant` if given, else the
/// best on the `[tune]` split, else the protocol's first non-baseline one. Returns what the
/// terminal shows.
pub fn run(ws: &Workspace, model: &str, protocol_file: &Path, variant: Option<&str>, out: &Path) -> Result<String> {
    let t_all = Instant::now();
    let mut p = prepare(ws, model, protocol_file)?;
    let t = Instant::now();
    let model = p.model.name().to_string();
    let tune = if variant.is_none() { p.tune()? } else { None };
    if let Some(tune) = &tune {
        write_json(&ws.cache.tune(&model), tune)?;
    }
    let chosen = match (variant, &tune) {
        (Some(name), _) => p.variants.iter().find(|v| v.name == name).ok_or_else(|| {
            let known: Vec<&str> = p.variants.iter().map(|v| v.name.as_str()).collect();
            format!("{}: no variant {name:?}; it has {}", protocol_file.display(), known.join(", "))
        })?,
        (None, Some(t)) => p.variants.iter().find(|v| v.name == t.chosen).expect("tuned variant"),
        (None, None) => p.variants.iter().find(|v| !v.baseline).expect("validated: a non-baseline variant"),
    }
    .clone();
    let results = p.view2(&chosen, p.proto.metrics.rules.clone())?;
    let mut variants = Vec::new();
    for v in p.variants.iter().filter(|v| v.name != chosen.name) {
        let r = p.view2(v, vec![Rule::InsightFace])?;
        let rep = &r.accuracy[0];
        variants.push(VariantRow {
            name: format!("{}{}", v.name, if v.baseline { ", baseline" } else { "" }),
            note: "insightface".into(),
            accuracy_mean: rep.mean,
            accuracy_std: rep.std_population,
        });
    }
    let stage = if tune.is_some() { "tune on View 1 + score View 2" } else { "score" };
    p.log.push(stage, t.elapsed().as_secs_f64(), "");

    let choice = match &tune {
        Some(tune) => format!(
            "{} (best View-1 accuracy under the {} rule among {})",
            chosen.name,
            tune.rule,
            tune.rows
                .iter()
                .map(|r| format!("{} {:.2}%", r.variant.name, 100.0 * r.view1_accuracy))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None if variant.is_some() => format!("{} (given by --variant)", chosen.name),
        None if p.proto.variants.is_empty() => {
            format!("{} (the model's own alignment with mirrors; the protocol lists no variants)", chosen.name)
        }
        None => format!("{} (the protocol's first non-baseline variant; it has no [tune] split)", chosen.name),
    };
    let preprocessing = format!(
        "align {}{}",
        if chosen.align == "landmarks" {
            format!("landmarks ({})", p.model.landmarks_description())
        } else {
            chosen.align.clone()
        },
        if chosen.flip { ", mirror features fused" } else { ", no mirror" }
    );
    let provenance = collect(&[
        ("model", model.clone()),
        ("weights sha256", p.model.net().weights_sha256().to_string()),
        ("preprocessing", preprocessing.clone()),
        ("protocol file", format!("{} (sha256 {})", protocol_file.display(), p.proto_sha)),
        ("data root", ws.data_root.display().to_string()),
        ("device", ws.device.clone()),
    ]);
    create_dir(out)?;
    // Taken before the report so the report's total includes everything but itself.
    let wall = t_all.elapsed().as_secs_f64();
    p.log.push("total (build excluded)", wall, "");
    let mut ctx = report_context(&p.proto, results.n_folds, &model, &preprocessing);
    ctx.choice = Some(choice.clone());
    ctx.variants = variants;
    ctx.fallbacks = Some(p.fallbacks.clone());
    ctx.timings = p.log.stages().to_vec();
    ctx.provenance = provenance.clone();
    write_lfw_report(out, &results, &ctx)?;
    results.write_pair_scores_csv(&out.join("pairs_scores.csv"))?;
    let body = LfwBody {
        preprocessing,
        variant: chosen,
        choice,
        tune: tune.as_ref(),
        baselines_and_other_variants: ctx
            .variants
            .iter()
            .map(|v| OtherVariant {
                name: v.name.clone(),
                rule: v.note.clone(),
                accuracy_mean: v.accuracy_mean,
                accuracy_std: v.accuracy_std,
            })
            .collect(),
        alignment_fallbacks: &p.fallbacks,
        results: &results,
    };
    let doc = ResultsEnvelope::new(p.proto.name.as_str(), &model, body, ctx.timings.clone(), &provenance);
    write_json(&out.join("results.json"), &doc)?;

    let mut s = tune.as_ref().map(TuneResult::table).unwrap_or_default();
    s += &headline_table(&terminal_title(&p.proto), &results);
    for v in &ctx.variants {
        s += &format!(
            "variant {:<24} insightface {:.3}% +- {:.3}%\n",
            v.name,
            100.0 * v.accuracy_mean,
            100.0 * v.accuracy_std
        );
    }
    s += &format!("{} alignment fallback(s); total {:.1}s; report in {}\n", p.fallbacks.len(), wall, out.display());
    Ok(s)
}

/// The LFW protocol keeps its View-2 wording and the LFW published rows; any other
/// protocol is titled by its name, fold count and pair count, with its own published rows.
fn report_context(proto: &PairsProtocol, n_folds: usize, model: &str, preprocessing: &str) -> LfwReportContext {
    if is_lfw_view2(proto) {
        let mut ctx = LfwReportContext::lfw_view2(model, preprocessing);
        ctx.published = proto.published.clone();
        return ctx;
    }
    LfwReportContext::pairs_protocol(proto.title(), n_folds, model, preprocessing, proto.published.clone())
}

/// What the terminal table is headed with: `LFW` for LFW, else the protocol's title.
fn terminal_title(proto: &PairsProtocol) -> String {
    if is_lfw_view2(proto) {
        "LFW".into()
    } else {
        proto.title()
    }
}

/// `protocols/lfw.toml` (or a slice of it): LFW's `pairs.txt` format under the name `lfw`.
fn is_lfw_view2(proto: &PairsProtocol) -> bool {
    proto.name == "lfw" && proto.pairs.format == PairsFormat::Lfw
}

/// LFW scored from a precomputed store (`facebench eval lfw --embeddings`).
#[derive(Debug, Clone)]
pub struct StoreEval {
    pub embeddings: PathBuf,
    /// Keys file for a .npy store.
    pub keys: Option<PathBuf>,
    /// Mirror features with the same keys, fused by each rule its own way.
    pub flip_store: Option<PathBuf>,
    /// [default: <data-root>/lfw/pairs.txt]
    pub pairs: Option<PathBuf>,
    pub rules: Vec<Rule>,
    /// Name in the report [default: the embeddings file name].
    pub label: Option<String>,
    pub out: PathBuf,
}

#[derive(Serialize)]
struct StoreBody<'a> {
    embeddings: String,
    flip_store: Option<String>,
    results: &'a LfwResults,
}

/// Scores a store on a pairs file and writes results.json, pairs_scores.csv and the report.
/// Returns what the terminal shows.
pub fn eval_store(data_root: &Path, a: &StoreEval) -> Result<String> {
    let pairs_path = a.pairs.clone().unwrap_or_else(|| data_root.join("lfw/pairs.txt"));
    let mut log = StageLog::new();
    let t = Instant::now();
    let pairs = Pairs::read(&pairs_path)?;
    let orig = store::read(&a.embeddings, a.keys.as_deref())?;
    let flip = a.flip_store.as_deref().map(|p| store::read(p, None)).transpose()?;
    log.push("read pairs and stores", t.elapsed().as_secs_f64(), "");
    let t = Instant::now();
    let opts = MetricSettings { rules: a.rules.clone(), ..MetricSettings::default() };
    let results = evaluate(&pairs, &orig, flip.as_ref(), &opts)?;
    log.push("score and evaluate", t.elapsed().as_secs_f64(), format!("{} pairs", results.n_pairs));

    create_dir(&a.out)?;
    let model = a
        .label
        .clone()
        .unwrap_or_else(|| a.embeddings.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let sha = |p: &Path| crate::provenance::file_sha256(p).map(|h| format!("{} (sha256 {h})", p.display()));
    let provenance = collect(&[
        ("model", format!("{model} (precomputed embeddings; weights not known here)")),
        ("embeddings", sha(&a.embeddings)?),
        ("flip store", a.flip_store.as_deref().map_or(Ok("none".into()), sha)?),
        ("pairs", sha(&pairs_path)?),
        ("preprocessing", "as stored in the embeddings".into()),
        ("data root", data_root.display().to_string()),
        ("device", "cpu (scoring; the embeddings were computed elsewhere)".into()),
    ]);
    let body = StoreBody {
        embeddings: a.embeddings.display().to_string(),
        flip_store: a.flip_store.as_ref().map(|p| p.display().to_string()),
        results: &results,
    };
    let timings = log.into_stages();
    write_json(&a.out.join("results.json"), &ResultsEnvelope::new("lfw", &model, body, timings.clone(), &provenance))?;
    results.write_pair_scores_csv(&a.out.join("pairs_scores.csv"))?;
    let mut ctx = LfwReportContext::lfw_view2(model, "as stored in the embeddings");
    ctx.published =
        facebench_pairs::PairsProtocol::read(&facebench_pairs::published::default_dir().join("lfw.toml"))?.0.published;
    ctx.choice = Some("by the caller".into());
    ctx.provenance = provenance;
    ctx.timings = timings;
    write_lfw_report(&a.out, &results, &ctx)?;
    Ok(format!(
        "{}wrote {} (results.json, pairs_scores.csv, report.md, report.html, roc, scores)\n",
        headline_table("LFW", &results),
        a.out.display()
    ))
}
