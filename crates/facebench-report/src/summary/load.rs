//! Reading results.json files of every protocol into one shape, through typed serde structs
//! of what the summary shows (errors name the file and the field); a file of a shape not
//! known here is kept as "not recognised" with the reason.
//!
//! What is read is checked, not trusted: the envelope (schema 1, a protocol and a model),
//! every number the report shows (rates within 0..1, times finite), and the
//! `pairs_scores.csv` beside a verification result (see [`super::scores`]). Every pairs
//! writer (`eval lfw`, `eval pairs`, either with `--embeddings`, `eval bin`, `eval ytf`)
//! writes that CSV in the same output set as results.json, so a verification result without
//! one is an error.
//!
//! Protocols are known by name (`lfw`, `ytf`, `bin:<name>`, `megaface`), and any other name
//! whose `results` have a pairs protocol's shape (see [`is_pairs_body`]) is that pairs
//! protocol file's result (`eval pairs --protocol-file`, protocol = the file's `name`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use facebench_core::thousands;
use serde::Deserialize;
use serde_json::Value;

use super::scores::{self, Expected, Layout, YtfPair};
use crate::results::{Stage, SCHEMA};
use crate::{Error, Result};

/// LFW View 2 and YTF pair counts: fewer pairs means a partial evaluation.
const LFW_PAIRS: u64 = 6000;
const YTF_PAIRS: u64 = 5000;
/// YTF's splits (its folds), for a result that could not measure accuracy and so lists none.
const YTF_SPLITS: usize = 10;
/// MegaFace Challenge 1's headline size.
const MEGAFACE_1M: u64 = 1_000_000;

/// Accuracy under one tool's rule.
#[derive(Debug, Clone)]
pub struct RuleAccuracy {
    pub rule: String,
    pub mean: f64,
    pub std_population: f64,
    pub std_sample: Option<f64>,
    pub sem: Option<f64>,
    /// Mean fold threshold, converted to cosine, for the histogram (None if not cosine-like).
    pub cosine_threshold: Option<f64>,
}

/// A verification protocol (LFW, YTF, InsightFace `.bin` sets, any pairs protocol file):
/// pairs and k-fold accuracy.
#[derive(Debug, Clone)]
pub struct Verification {
    /// `lfw`, `ytf`, `bin:<name>`, or a pairs protocol file's `name`.
    pub protocol: String,
    pub n_pairs: u64,
    /// Folds (YTF: splits) of its accuracy, when the file says.
    pub n_folds: Option<usize>,
    /// Set when fewer pairs were scored than the protocol has (or the file says partial).
    pub partial: Option<String>,
    /// The file's own words on a partial evaluation or on what could not be measured.
    pub notes: Vec<String>,
    /// A scoring variant beyond the rule, e.g. YTF's video score (`mean-feature`).
    pub mode: Option<String>,
    pub preprocessing: String,
    pub rules: Vec<RuleAccuracy>,
    pub auc: Option<f64>,
    pub eer: Option<f64>,
    /// (FAR target, TAR, how) for every read-out the file has.
    pub tar_at_far: Vec<(f64, Option<f64>, String)>,
    /// ROC to draw: (far, tar, what it is).
    pub roc: Option<(Vec<f64>, Vec<f64>, &'static str)>,
    /// (genuine, impostor) cosine scores from `pairs_scores.csv` beside the results file.
    pub scores: Option<(Vec<f64>, Vec<f64>)>,
    /// Other preprocessing variants measured in the same run: (name, rule, mean, std).
    pub other_variants: Vec<(String, String, f64, f64)>,
}

/// One distractor size of a MegaFace-protocol run.
#[derive(Debug, Clone)]
pub struct MegaSize {
    pub size: u64,
    pub rank1: f64,
    pub cmc: Vec<f64>,
    /// (FAR target, exact TAR or None when not measurable, devkit log-interpolated TAR).
    pub tar_at_far: Vec<(f64, Option<f64>, Option<f64>)>,
    pub roc_fpr: Vec<f64>,
    pub roc_tpr: Vec<f64>,
}

/// A MegaFace Challenge 1 run, official or a labelled stand-in.
#[derive(Debug, Clone)]
pub struct Megaface {
    /// `MegaFace`, `LFW-as-MegaFace`, a synthetic set's name...
    pub dataset: String,
    /// `raw` or `R`.
    pub variant: String,
    pub scoring: String,
    pub probes: u64,
    pub sizes: Vec<MegaSize>,
}

impl Megaface {
    /// The size every headline number is read at: the largest one scored.
    pub fn headline(&self) -> Option<&MegaSize> {
        self.sizes.iter().max_by_key(|s| s.size)
    }

    /// Everything a number needs to carry: stand-in or official, size, raw/R, scoring.
    pub fn label(&self) -> String {
        let mut parts = vec![self.dataset.clone()];
        if let Some(h) = self.headline() {
            let official = self.dataset == "MegaFace";
            if official && h.size < MEGAFACE_1M {
                parts.push(format!("partial: {} distractors", thousands(h.size)));
            } else {
                parts.push(format!("{} distractors", thousands(h.size)));
            }
        }
        parts.push(self.variant.clone());
        if self.scoring != "f32" {
            parts.push(format!("{} scoring", self.scoring));
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    // Boxed: a verification run is several times the size of the other variants.
    Verification(Box<Verification>),
    Megaface(Megaface),
    /// Parsed as JSON but of no shape known here: why.
    Unrecognised {
        reason: String,
    },
}

/// One results.json.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub model: String,
    pub training_data: Option<String>,
    pub provenance: Vec<(String, String)>,
    pub timings: Vec<Stage>,
    pub body: Body,
}

fn bad(path: &Path, message: String) -> Error {
    Error::Invalid { path: path.to_path_buf(), line: None, message }
}

/// Deserialises `v` as `T`; the error names the file and the field (`results.accuracy[1].mean`).
fn typed<'v, T: Deserialize<'v>>(path: &Path, v: &'v Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| Error::Field {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        source: e.into_inner(),
    })
}

/// A number the report shows as a rate or percentage: within 0..=1 (so never NaN).
fn rate(path: &Path, field: impl FnOnce() -> String, v: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(bad(path, format!("field `{}`: {v} is not a rate within 0..1", field())))
    }
}

fn rates(path: &Path, field: &str, vs: &[f64]) -> Result<()> {
    for (i, &v) in vs.iter().enumerate() {
        rate(path, || format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

fn finite(path: &Path, field: impl FnOnce() -> String, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(bad(path, format!("field `{}`: {v} is not a finite number", field())))
    }
}

/// The envelope's own fields beside its protocol's (`crate::results::ResultsEnvelope`).
#[derive(Deserialize)]
struct Head {
    /// Absent in files written before the envelope: read as 0, which is refused.
    #[serde(default)]
    schema: u32,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    training_data: Option<String>,
    #[serde(default)]
    provenance: BTreeMap<String, String>,
    #[serde(default)]
    preprocessing: Option<String>,
    #[serde(default)]
    timings: Vec<Stage>,
}

impl Head {
    /// Schema 1, a protocol and a model named, stage times finite; returns (protocol, model).
    fn check(&self, path: &Path) -> Result<(String, String)> {
        if self.schema != SCHEMA {
            let what = if self.schema == 0 { "absent (0)".to_string() } else { self.schema.to_string() };
            return Err(bad(
                path,
                format!(
                    "field `schema`: {what}; this facebench reads results.json of schema {SCHEMA} (rerun the eval that wrote it)"
                ),
            ));
        }
        let named = |field: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            Some(_) => Err(bad(path, format!("field `{field}`: empty"))),
            None => Err(bad(path, format!("field `{field}`: missing"))),
        };
        let protocol = named("protocol", &self.protocol)?;
        let model = named("model", &self.model)?;
        for (i, t) in self.timings.iter().enumerate() {
            let secs = finite(path, || format!("timings[{i}].seconds"), t.seconds)?;
            if secs < 0.0 {
                return Err(bad(path, format!("field `timings[{i}].seconds`: {secs} is negative")));
            }
        }
        Ok((protocol, model))
    }
}

/// `partial`: a flag or the file's own sentence.
#[derive(Deserialize)]
#[serde(untagged)]
enum Partial {
    Flag(bool),
    Text(String),
}

impl Partial {
    fn says_partial(p: &Option<Partial>) -> bool {
        matches!(p, Some(Partial::Flag(true))) || matches!(p, Some(Partial::Text(s)) if !s.is_empty())
    }
    fn text(p: &Option<Partial>) -> Option<String> {
        match p {
            Some(Partial::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// LFW's, `.bin`'s and YTF's results.json beside the [`Head`].
#[derive(Deserialize)]
struct VerificationDoc {
    #[serde(default)]
    partial: Option<Partial>,
    #[serde(default)]
    baselines_and_other_variants: Vec<OtherVariantDoc>,
    results: VerificationResults,
}

#[derive(Deserialize)]
struct OtherVariantDoc {
    name: String,
    #[serde(default)]
    rule: String,
    accuracy_mean: f64,
    #[serde(default)]
    accuracy_std: Option<f64>,
}

#[derive(Deserialize)]
struct VerificationResults {
    /// LFW's and .bin's count; YTF's is `pairs_evaluated` of `pairs_total`.
    #[serde(default)]
    n_pairs: Option<u64>,
    /// LFW's and .bin's; YTF's splits are the folds of its accuracy.
    #[serde(default)]
    n_folds: Option<usize>,
    /// YTF: every scoring mode, each a score column of its pairs_scores.csv.
    #[serde(default)]
    modes: Option<Vec<ModeDoc>>,
    /// YTF: the evaluated pairs, when few enough to be listed.
    #[serde(default)]
    pairs: Option<Vec<YtfPair>>,
    #[serde(default)]
    pairs_evaluated: Option<u64>,
    #[serde(default)]
    pairs_total: Option<u64>,
    #[serde(default)]
    partial: Option<Partial>,
    #[serde(default)]
    not_measurable: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    /// Absent when accuracy could not be measured (too few pairs): then `not_measurable` says why.
    #[serde(default)]
    accuracy: Vec<AccuracyDoc>,
    #[serde(default)]
    auc: Option<f64>,
    #[serde(default)]
    eer: Option<f64>,
    #[serde(default)]
    tar_at_far: Vec<TarDoc>,
    #[serde(default)]
    roc_folds: Option<FoldRocDoc>,
    #[serde(default)]
    roc: Option<PooledRocDoc>,
}

#[derive(Deserialize)]
struct ModeDoc {
    mode: String,
}

#[derive(Deserialize)]
struct AccuracyDoc {
    rule: String,
    mean: f64,
    std_population: f64,
    #[serde(default)]
    std_sample: Option<f64>,
    #[serde(default)]
    sem: Option<f64>,
    #[serde(default)]
    folds: Vec<FoldDoc>,
}

#[derive(Deserialize)]
struct FoldDoc {
    /// `null` for an infinite threshold.
    #[serde(default)]
    threshold: Option<f64>,
}

#[derive(Deserialize)]
struct TarDoc {
    far_target: f64,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    exact: Option<ExactDoc>,
    #[serde(default)]
    insightface: Option<InsightFaceDoc>,
}

/// An exact read-out: `tar` only when measured.
#[derive(Deserialize)]
struct ExactDoc {
    #[serde(default)]
    tar: Option<f64>,
}

#[derive(Deserialize)]
struct InsightFaceDoc {
    #[serde(default)]
    val_mean: Option<f64>,
}

#[derive(Deserialize)]
struct FoldRocDoc {
    far: Vec<f64>,
    tar_mean: Vec<f64>,
}

#[derive(Deserialize)]
struct PooledRocDoc {
    far: Vec<f64>,
    tar: Vec<f64>,
}

/// A MegaFace-protocol results.json: the results' own fields at the top level.
#[derive(Deserialize)]
struct MegafaceDoc {
    dataset: String,
    #[serde(default = "raw")]
    variant: String,
    #[serde(default = "f32_name")]
    scoring: String,
    #[serde(default)]
    probes: u64,
    sizes: Vec<SizeDoc>,
}

fn raw() -> String {
    "raw".into()
}

fn f32_name() -> String {
    "f32".into()
}

#[derive(Deserialize)]
struct SizeDoc {
    size: u64,
    rank1: f64,
    #[serde(default)]
    cmc: Vec<f64>,
    #[serde(default)]
    tar_at_far: Vec<SizeTarDoc>,
    #[serde(default)]
    roc: Option<SizeRocDoc>,
}

#[derive(Deserialize)]
struct SizeTarDoc {
    far: f64,
    #[serde(default)]
    exact: Option<ExactDoc>,
    #[serde(default)]
    devkit_log_interp: Option<f64>,
}

#[derive(Deserialize)]
struct SizeRocDoc {
    fpr: Vec<f64>,
    tpr: Vec<f64>,
}

/// Reads one results.json and checks it (see the module docs). A file that is not JSON,
/// whose fields have the wrong type or an impossible value, or whose pairs_scores.csv
/// disagrees with it, is an error naming the file and the field or line; JSON of an unknown
/// protocol is returned as [`Body::Unrecognised`] so that it can be listed.
pub fn load(path: &Path) -> Result<Entry> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::Json { path: path.to_path_buf(), source: e })?;
    let head: Head = typed(path, &v)?;
    let (protocol, model) = head.check(path)?;
    let mut provenance: Vec<(String, String)> = head.provenance.into_iter().collect();
    // Writers that keep preprocessing beside the provenance rather than in it.
    if let Some(pre) = &head.preprocessing {
        if !provenance.is_empty() && !provenance.iter().any(|(k, _)| k == "preprocessing") {
            provenance.push(("preprocessing".into(), pre.clone()));
        }
    }
    let body = match protocol.as_str() {
        p if p == "lfw" || p == "ytf" || p.starts_with("bin:") => {
            Body::Verification(Box::new(verification(path, typed(path, &v)?, p, head.preprocessing)?))
        }
        "megaface" => Body::Megaface(megaface(path, typed(path, &v)?)?),
        p if is_pairs_body(&v) => {
            Body::Verification(Box::new(verification(path, typed(path, &v)?, p, head.preprocessing)?))
        }
        p => Body::Unrecognised { reason: format!("protocol `{p}` is not one the summary knows") },
    };
    Ok(Entry {
        path: path.to_path_buf(),
        model,
        training_data: head.training_data,
        provenance,
        timings: head.timings,
        body,
    })
}

/// A pairs protocol file's result (`LfwResults` in the envelope, as `eval pairs` writes
/// it): `results` with an `accuracy` array, `n_pairs` and `n_folds`, and none of YTF's
/// scoring `modes`. Anything else under an unknown name (an `lfw:tune` View 1 result, another
/// tool's file) stays not recognised.
fn is_pairs_body(v: &Value) -> bool {
    let r = &v["results"];
    r["accuracy"].is_array() && r["n_pairs"].is_u64() && r["n_folds"].is_u64() && r.get("modes").is_none()
}

fn verification(
    path: &Path,
    d: VerificationDoc,
    protocol: &str,
    preprocessing: Option<String>,
) -> Result<Verification> {
    let r = d.results;
    let (n_pairs, count_field) = match (r.n_pairs, r.pairs_evaluated) {
        (Some(n), _) => (n, "n_pairs"),
        (None, Some(n)) => (n, "pairs_evaluated"),
        (None, None) => {
            return Err(bad(path, "field `results.n_pairs` (or `results.pairs_evaluated`) is missing".into()))
        }
    };
    check_verification_numbers(path, &r)?;
    let expected = r.pairs_total.or(match protocol {
        "lfw" => Some(LFW_PAIRS),
        "ytf" => Some(YTF_PAIRS),
        _ => None,
    });
    let says_partial = Partial::says_partial(&d.partial) || Partial::says_partial(&r.partial);
    let partial = match expected {
        Some(e) if n_pairs != e => Some(format!("partial: {} of {} pairs", thousands(n_pairs), thousands(e))),
        _ if says_partial => Some(format!("partial: {} pairs", thousands(n_pairs))),
        _ => None,
    };
    let notes: Vec<String> = [Partial::text(&d.partial), r.not_measurable.clone()].into_iter().flatten().collect();
    let rules = r
        .accuracy
        .iter()
        .map(|a| {
            let thresholds: Vec<f64> = a.folds.iter().filter_map(|f| f.threshold).collect();
            let mean_thr = (!thresholds.is_empty()).then(|| thresholds.iter().sum::<f64>() / thresholds.len() as f64);
            // Squared-L2 rules (d = 2 - 2cos on unit vectors) convert; cosine rules are as is;
            // sphereface's threshold is on mean-subtracted concatenated features: not comparable.
            let cosine_threshold = match a.rule.as_str() {
                "insightface" | "facenet" => mean_thr.map(|t| 1.0 - t / 2.0),
                "exact" | "facexzoo" => mean_thr,
                _ => None,
            };
            RuleAccuracy {
                rule: a.rule.clone(),
                mean: a.mean,
                std_population: a.std_population,
                std_sample: a.std_sample,
                sem: a.sem,
                cosine_threshold,
            }
        })
        .collect();
    let tar_at_far = r
        .tar_at_far
        .iter()
        .map(|t| {
            let tar = match (&t.exact, &t.insightface) {
                (Some(e), _) => e.tar,
                (None, Some(i)) => i.val_mean,
                (None, None) => None,
            };
            (t.far_target, tar, t.method.clone().unwrap_or_else(|| "?".into()))
        })
        .collect();
    let roc = match (r.roc_folds, r.roc) {
        (Some(rf), _) => Some((rf.far, rf.tar_mean, "fold mean")),
        (None, Some(rp)) => Some((rp.far, rp.tar, "pooled")),
        (None, None) => None,
    };
    let layout = match (&r.modes, protocol) {
        (Some(modes), _) => Layout::Ytf {
            modes: modes.iter().map(|m| m.mode.as_str()).collect(),
            headline: r.mode.as_deref().unwrap_or(modes.first().map_or("", |m| m.mode.as_str())),
            pairs: r.pairs.as_deref(),
        },
        (None, "ytf") => {
            return Err(bad(path, "field `results.modes` is missing (YTF results list their scoring modes)".into()))
        }
        (None, _) => Layout::Pairs { rules: r.accuracy.iter().map(|a| a.rule.as_str()).collect() },
    };
    if let Some(pairs) = &r.pairs {
        if pairs.len() as u64 != n_pairs {
            return Err(bad(
                path,
                format!("field `results.pairs`: {} pairs listed, `results.{count_field}` = {n_pairs}", pairs.len()),
            ));
        }
    }
    // YTF's splits are its folds: as many as each rule's accuracy has.
    let n_folds = r.n_folds.or_else(|| r.accuracy.first().map(|a| a.folds.len()).filter(|&n| n > 0));
    let csv = path.with_file_name("pairs_scores.csv");
    if !csv.is_file() {
        return Err(Error::Invalid {
            path: csv,
            line: None,
            message: format!(
                "missing: {} says {count_field} = {}, and the eval that writes it writes their scores here",
                path.display(),
                thousands(n_pairs)
            ),
        });
    }
    let expected = Expected { results: path, layout, n_pairs, count_field, n_folds };
    let scores = Some(scores::read(&csv, &expected)?);
    let other_variants = d
        .baselines_and_other_variants
        .into_iter()
        .map(|x| (x.name, x.rule, x.accuracy_mean, x.accuracy_std.unwrap_or(f64::NAN)))
        .collect();
    Ok(Verification {
        protocol: protocol.to_string(),
        n_pairs,
        n_folds: n_folds.or((protocol == "ytf").then_some(YTF_SPLITS)),
        partial,
        notes,
        mode: r.mode,
        preprocessing: preprocessing.unwrap_or_else(|| "as stored in the embeddings".into()),
        rules,
        auc: r.auc,
        eer: r.eer,
        tar_at_far,
        roc,
        scores,
        other_variants,
    })
}

/// Every number of a verification result that the report shows.
fn check_verification_numbers(path: &Path, r: &VerificationResults) -> Result<()> {
    for (i, a) in r.accuracy.iter().enumerate() {
        let f = |name: &str| format!("results.accuracy[{i}].{name}");
        rate(path, || f("mean"), a.mean)?;
        rate(path, || f("std_population"), a.std_population)?;
        for (name, v) in [("std_sample", a.std_sample), ("sem", a.sem)] {
            if let Some(v) = v {
                rate(path, || f(name), v)?;
            }
        }
        for (j, fold) in a.folds.iter().enumerate() {
            if let Some(t) = fold.threshold {
                finite(path, || format!("results.accuracy[{i}].folds[{j}].threshold"), t)?;
            }
        }
    }
    for (name, v) in [("auc", r.auc), ("eer", r.eer)] {
        if let Some(v) = v {
            rate(path, || format!("results.{name}"), v)?;
        }
    }
    for (i, t) in r.tar_at_far.iter().enumerate() {
        let far = rate(path, || format!("results.tar_at_far[{i}].far_target"), t.far_target)?;
        if far == 0.0 {
            return Err(bad(path, format!("field `results.tar_at_far[{i}].far_target`: 0 is not a FAR target")));
        }
        if let Some(tar) = t.exact.as_ref().and_then(|e| e.tar) {
            rate(path, || format!("results.tar_at_far[{i}].exact.tar"), tar)?;
        }
        if let Some(tar) = t.insightface.as_ref().and_then(|e| e.val_mean) {
            rate(path, || format!("results.tar_at_far[{i}].insightface.val_mean"), tar)?;
        }
    }
    if let Some(roc) = &r.roc_folds {
        curve(path, "results.roc_folds", ("far", &roc.far), ("tar_mean", &roc.tar_mean))?;
    }
    if let Some(roc) = &r.roc {
        curve(path, "results.roc", ("far", &roc.far), ("tar", &roc.tar))?;
    }
    Ok(())
}

/// A curve to draw: two rate arrays of one length.
fn curve(path: &Path, field: &str, x: (&str, &[f64]), y: (&str, &[f64])) -> Result<()> {
    rates(path, &format!("{field}.{}", x.0), x.1)?;
    rates(path, &format!("{field}.{}", y.0), y.1)?;
    if x.1.len() != y.1.len() {
        return Err(bad(path, format!("field `{field}`: {} has {} points, {} has {}", x.0, x.1.len(), y.0, y.1.len())));
    }
    Ok(())
}

fn megaface(path: &Path, d: MegafaceDoc) -> Result<Megaface> {
    for (i, s) in d.sizes.iter().enumerate() {
        let f = |name: &str| format!("sizes[{i}].{name}");
        rate(path, || f("rank1"), s.rank1)?;
        rates(path, &f("cmc"), &s.cmc)?;
        for (j, t) in s.tar_at_far.iter().enumerate() {
            rate(path, || format!("sizes[{i}].tar_at_far[{j}].far"), t.far)?;
            if let Some(tar) = t.exact.as_ref().and_then(|e| e.tar) {
                rate(path, || format!("sizes[{i}].tar_at_far[{j}].exact.tar"), tar)?;
            }
            if let Some(tar) = t.devkit_log_interp {
                rate(path, || format!("sizes[{i}].tar_at_far[{j}].devkit_log_interp"), tar)?;
            }
        }
        if let Some(roc) = &s.roc {
            curve(path, &f("roc"), ("fpr", &roc.fpr), ("tpr", &roc.tpr))?;
        }
    }
    let sizes = d
        .sizes
        .into_iter()
        .map(|s| MegaSize {
            size: s.size,
            rank1: s.rank1,
            cmc: s.cmc,
            tar_at_far: s
                .tar_at_far
                .into_iter()
                .map(|t| (t.far, t.exact.and_then(|e| e.tar), t.devkit_log_interp))
                .collect(),
            roc_fpr: s.roc.as_ref().map(|r| r.fpr.clone()).unwrap_or_default(),
            roc_tpr: s.roc.map(|r| r.tpr).unwrap_or_default(),
        })
        .collect();
    Ok(Megaface { dataset: d.dataset, variant: d.variant, scoring: d.scoring, probes: d.probes, sizes })
}
