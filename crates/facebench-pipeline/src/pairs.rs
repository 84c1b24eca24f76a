//! Any pairs protocol file (`lfw` or `list` format) from images: align (cached) -> embed
//! (cached) -> choose a variant (on the `[tune]` split, e.g. LFW View 1) -> score the pairs
//! -> report, titled by the protocol. Each stage reuses what an earlier run left in the cache
//! folder, so a second run only scores and writes the report. Also pairs scored from a
//! precomputed store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use facebench_core::store::{self, AppendStore, StoreMeta};
use facebench_core::Embeddings;
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
use crate::{output_set, write_json, Error, Result, ResultsEnvelope, Workspace};

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
    let set = output_set(out)?;
    let dir = set.dir();
    // Taken before the report so the report's total includes everything but itself.
    let wall = t_all.elapsed().as_secs_f64();
    p.log.push("total (build excluded)", wall, "");
    let mut ctx = report_context(&p.proto, results.n_folds, &model, &preprocessing);
    ctx.choice = Some(choice.clone());
    ctx.variants = variants;
    ctx.fallbacks = Some(p.fallbacks.clone());
    ctx.timings = p.log.stages().to_vec();
    ctx.provenance = provenance.clone();
    write_lfw_report(dir, &results, &ctx)?;
    results.write_pair_scores_csv(&dir.join("pairs_scores.csv"))?;
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
    write_json(&dir.join("results.json"), &doc)?;
    set.commit()?;

    let mut s = tune.as_ref().map(TuneResult::table).unwrap_or_default();
    s += &headline_table(&p.proto.short_title(), &results);
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

/// The report wording of a protocol: its `[report]` words (LFW: "LFW View 2", "Accuracy
/// (10-fold, View 2)"), else its name, fold count and pair count; its own published rows.
fn report_context(proto: &PairsProtocol, n_folds: usize, model: &str, preprocessing: &str) -> LfwReportContext {
    let mut ctx =
        LfwReportContext::pairs_protocol(proto.title(), n_folds, model, preprocessing, proto.published.clone());
    if let Some(w) = &proto.report {
        ctx.accuracy_heading = format!("Accuracy ({n_folds}-fold, {})", w.split);
        ctx.accuracy_column = format!("{} accuracy % (mean ± pop. std)", w.short);
    }
    ctx
}

/// A pairs protocol scored from precomputed stores (`eval lfw --embeddings`, `eval pairs
/// --embeddings`).
#[derive(Debug, Clone)]
pub struct StoreEval {
    pub protocol_file: PathBuf,
    pub embeddings: PathBuf,
    /// Keys file for a .npy store.
    pub keys: Option<PathBuf>,
    /// Mirror features with the same keys, fused by each rule its own way.
    pub flip_store: Option<PathBuf>,
    /// A pairs file with the protocol's format and fold structure instead of its own.
    pub pairs: Option<PathBuf>,
    /// Score the protocol's `[tune]` split (LFW View 1: threshold on its train file,
    /// accuracy on its test file) instead of its pairs.
    pub tune_split: bool,
    /// [default: the protocol file's]
    pub rules: Option<Vec<Rule>>,
    /// Name in the report [default: the embeddings file name].
    pub label: Option<String>,
    /// Accept a mirror store whose provenance cannot be checked (.npy, .csv, .safetensors).
    pub unchecked_flip: bool,
    pub out: PathBuf,
}

/// A store read for scoring, with its `.fbs` metadata when it has some.
struct ScoredStore {
    path: PathBuf,
    embeddings: Embeddings,
    meta: Option<StoreMeta>,
}

impl ScoredStore {
    fn read(path: &Path, keys: Option<&Path>) -> Result<ScoredStore> {
        let (embeddings, meta) = match store::Format::from_path(path)? {
            store::Format::Fbs if keys.is_none() => {
                let (meta, e) = AppendStore::read(path)?;
                (e, Some(meta))
            }
            _ => (store::read(path, keys)?, None),
        };
        Ok(ScoredStore { path: path.to_path_buf(), embeddings, meta })
    }

    /// `<path> (sha256 ..., model ..., weights sha256 ..., preprocessing ...)` for provenance.
    fn describe(&self) -> Result<String> {
        let sha = crate::provenance::file_sha256(&self.path)?;
        Ok(match &self.meta {
            Some(m) => format!(
                "{} (sha256 {sha}; model {}, weights sha256 {}, preprocessing {}, dim {})",
                self.path.display(),
                m.model,
                m.weights_sha256,
                m.preprocessing,
                m.dim
            ),
            None => format!("{} (sha256 {sha}; no metadata in this format)", self.path.display()),
        })
    }

    /// Every key the pairs name must be in the store; the error says which store, how many
    /// keys were found and what form they have.
    fn check_keys(&self, what: &str, pairs: &Pairs) -> Result<()> {
        let Some(why) = store::diagnose_keys(&self.embeddings, &pairs.image_keys()) else { return Ok(()) };
        let absent = |k: &&String| self.embeddings.index_of(k).is_none();
        let (key, line) = pairs
            .pairs
            .iter()
            .find_map(|p| [&p.left, &p.right].into_iter().find(absent).map(|k| (k, p.line)))
            .expect("diagnose_keys found a missing key");
        Err(Error::Invalid(format!(
            "{} ({what}): {why}; {key} is named at {}:{line}",
            self.path.display(),
            pairs.path.display()
        )))
    }
}

/// The stores must be an original and its mirror from one model, weights and preprocessing,
/// as far as their metadata tells.
fn check_stores(orig: &ScoredStore, flip: Option<&ScoredStore>, unchecked_flip: bool) -> Result<()> {
    if let Some(m) = orig.meta.as_ref().filter(|m| m.is_mirror()) {
        return Err(Error::Invalid(format!(
            "{}: a mirror store (preprocessing {:?}); give the original store as --embeddings and this one as --flip-store",
            orig.path.display(),
            m.preprocessing
        )));
    }
    let Some(flip) = flip else { return Ok(()) };
    match (&orig.meta, &flip.meta) {
        (Some(o), Some(f)) => {
            let why = f.mirror_mismatches(o);
            if !why.is_empty() {
                return Err(Error::Invalid(format!(
                    "{} is not the mirror store of {}: {}",
                    flip.path.display(),
                    orig.path.display(),
                    why.join("; ")
                )));
            }
            Ok(())
        }
        _ if unchecked_flip => Ok(()),
        _ => Err(Error::Invalid(format!(
            "cannot check that {} is the mirror store of {}: only .fbs stores record model, weights and \
             preprocessing; pass --unchecked-flip if it holds the mirror images' features from the same model \
             and preprocessing",
            flip.path.display(),
            orig.path.display()
        ))),
    }
}

#[derive(Serialize)]
struct StoreBody<'a> {
    embeddings: String,
    flip_store: Option<String>,
    results: &'a LfwResults,
}

/// One rule on the `[tune]` split.
#[derive(Serialize)]
struct TuneSplitRow {
    rule: Rule,
    /// Chosen on the train file.
    threshold: f64,
    train_accuracy: f64,
    /// With that threshold, on the test file.
    test_accuracy: f64,
}

#[derive(Serialize)]
struct TuneSplitBody {
    embeddings: String,
    flip_store: Option<String>,
    results: TuneSplitResults,
}

#[derive(Serialize)]
struct TuneSplitResults {
    train: PathBuf,
    test: PathBuf,
    n_train: usize,
    n_test: usize,
    rows: Vec<TuneSplitRow>,
}

/// Scores stores on a protocol's pairs (or its `[tune]` split) and writes results.json,
/// pairs_scores.csv and the report. Returns what the terminal shows.
pub fn eval_store(data_root: &Path, a: &StoreEval) -> Result<String> {
    let (proto, proto_sha) = PairsProtocol::read(&a.protocol_file)?;
    if proto.pairs.format == PairsFormat::Bin {
        return Err(Error::Invalid(format!(
            "{}: a .bin pack holds its images; evaluate it with `facebench eval bin`",
            a.protocol_file.display()
        )));
    }
    let mut log = StageLog::new();
    let t = Instant::now();
    let pairs = match (&a.pairs, a.tune_split) {
        (Some(_), true) => return Err("--pairs and --tune-split exclude each other".into()),
        (None, true) => proto.read_tune_pairs(data_root)?.ok_or_else(|| {
            format!("{}: no [tune] split (a development train/test pair of files)", a.protocol_file.display())
        })?,
        (Some(p), false) => proto.read_pairs_file(p).map_err(|e| {
            let hint = match &proto.tune {
                Some(t) => format!(
                    "; a development file ({} / {}) is scored with --tune-split",
                    t.train.display(),
                    t.test.display()
                ),
                None => String::new(),
            };
            Error::Invalid(format!(
                "{e}{hint}; a pairs file with another structure needs its own protocol file \
                     (`facebench eval pairs --protocol-file`)"
            ))
        })?,
        (None, false) => {
            proto.verify(data_root)?;
            proto.read_pairs(data_root)?
        }
    };
    let orig = ScoredStore::read(&a.embeddings, a.keys.as_deref())?;
    let flip = a.flip_store.as_deref().map(|p| ScoredStore::read(p, None)).transpose()?;
    check_stores(&orig, flip.as_ref(), a.unchecked_flip)?;
    orig.check_keys("the embeddings", &pairs)?;
    if let Some(f) = &flip {
        f.check_keys("the mirror store", &pairs)?;
    }
    log.push("read pairs and stores", t.elapsed().as_secs_f64(), "");
    let t = Instant::now();
    let rules = a.rules.clone().unwrap_or_else(|| proto.metrics.rules.clone());
    let opts = MetricSettings { rules, ..proto.metrics.clone() };
    let results = evaluate(&pairs, &orig.embeddings, flip.as_ref().map(|f| &f.embeddings), &opts)?;
    log.push("score and evaluate", t.elapsed().as_secs_f64(), format!("{} pairs", results.n_pairs));

    let model = a
        .label
        .clone()
        .unwrap_or_else(|| a.embeddings.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let model_line = match &orig.meta {
        Some(m) => format!("{model} (precomputed embeddings of {}, per the store's metadata)", m.model),
        None => format!("{model} (precomputed embeddings; weights not known here)"),
    };
    let mut items = vec![("model", model_line)];
    if let Some(m) = &orig.meta {
        items.push(("weights sha256", m.weights_sha256.clone()));
    }
    let pairs_desc = crate::provenance::described(&pairs.path);
    items.extend([
        ("embeddings", orig.describe()?),
        ("flip store", flip.as_ref().map_or(Ok("none".into()), ScoredStore::describe)?),
        ("pairs", pairs_desc),
        ("protocol file", format!("{} (sha256 {proto_sha})", a.protocol_file.display())),
        ("preprocessing", orig.meta.as_ref().map_or("as stored in the embeddings".into(), |m| m.preprocessing.clone())),
        ("data root", data_root.display().to_string()),
        ("device", "cpu (scoring; the embeddings were computed elsewhere)".into()),
    ]);
    let provenance = collect(&items);
    let timings = log.into_stages();
    let embeddings = a.embeddings.display().to_string();
    let flip_store = a.flip_store.as_ref().map(|p| p.display().to_string());
    let set = output_set(&a.out)?;
    let dir = set.dir();

    if a.tune_split {
        let t = proto.tune.as_ref().expect("read above");
        let rows: Vec<TuneSplitRow> = results
            .accuracy
            .iter()
            .map(|r| TuneSplitRow {
                rule: r.rule,
                threshold: r.folds[1].threshold,
                train_accuracy: r.folds[1].train_accuracy,
                test_accuracy: r.folds[1].test_accuracy,
            })
            .collect();
        let n_train = pairs.pairs.iter().filter(|p| p.fold == 0).count();
        let mut s = format!(
            "{} [tune] split: threshold on {} ({n_train} pairs), accuracy on {} ({} pairs), {model}:\n",
            proto.short_title(),
            t.train.display(),
            t.test.display(),
            pairs.len() - n_train
        );
        for r in &rows {
            s += &format!(
                "  {:<12} {:>7.3}%  (threshold {:.6})\n",
                r.rule.to_string(),
                100.0 * r.test_accuracy,
                r.threshold
            );
        }
        let results = TuneSplitResults {
            train: t.train.clone(),
            test: t.test.clone(),
            n_train,
            n_test: pairs.len() - n_train,
            rows,
        };
        let body = TuneSplitBody { embeddings, flip_store, results };
        let name = format!("{}:tune", proto.name);
        write_json(&dir.join("results.json"), &ResultsEnvelope::new(&name, &model, body, timings, &provenance))?;
        set.commit()?;
        return Ok(format!("{s}wrote {}\n", a.out.join("results.json").display()));
    }

    let body = StoreBody { embeddings, flip_store, results: &results };
    write_json(
        &dir.join("results.json"),
        &ResultsEnvelope::new(proto.name.as_str(), &model, body, timings.clone(), &provenance),
    )?;
    results.write_pair_scores_csv(&dir.join("pairs_scores.csv"))?;
    let preprocessing =
        if orig.meta.is_some() { "as recorded in the store (see provenance)" } else { "as stored in the embeddings" };
    let mut ctx = report_context(&proto, results.n_folds, &model, preprocessing);
    ctx.choice = Some("by the caller".into());
    ctx.provenance = provenance;
    ctx.timings = timings;
    write_lfw_report(dir, &results, &ctx)?;
    set.commit()?;
    Ok(format!(
        "{}wrote {} (results.json, pairs_scores.csv, report.md, report.html, roc, scores)\n",
        headline_table(&proto.short_title(), &results),
        a.out.display()
    ))
}
