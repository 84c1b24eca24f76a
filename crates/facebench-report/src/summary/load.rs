//! Reading results.json files of every protocol into one shape, through typed serde structs
//! of what the summary shows (errors name the file and the field); a file of a shape not
//! known here is kept as "not recognised" with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use facebench_core::thousands;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::results::Stage;
use crate::{Error, Result};

/// LFW View 2 and YTF pair counts: fewer pairs means a partial evaluation.
const LFW_PAIRS: u64 = 6000;
const YTF_PAIRS: u64 = 5000;
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

/// A verification protocol (LFW, YTF, InsightFace `.bin` sets): pairs and 10-fold accuracy.
#[derive(Debug, Clone)]
pub struct Verification {
    /// `lfw`, `ytf`, `bin:<name>`.
    pub protocol: String,
    pub n_pairs: u64,
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

fn bad(path: &Path, msg: String) -> Error {
    Error::Io { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg) }
}

/// Deserialises `v` as `T`; the error names the file and the field (`results.accuracy[1].mean`).
fn typed<'v, T: Deserialize<'v>>(path: &Path, v: &'v Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        bad(path, format!("field `{field}`: {}", e.into_inner()))
    })
}

/// What every results.json may carry beside its protocol's own fields.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    training_data: Option<String>,
    #[serde(default)]
    provenance: BTreeMap<String, String>,
    #[serde(default)]
    preprocessing: Option<String>,
    #[serde(default)]
    timings: Vec<Stage>,
    #[serde(default)]
    embeddings: Option<String>,
    /// MegaFace files written before the envelope have no `protocol`, but these two.
    #[serde(default)]
    dataset: Option<IgnoredAny>,
    #[serde(default)]
    sizes: Option<IgnoredAny>,
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

/// Reads one results.json. A file that is not JSON, or whose fields have the wrong type, is
/// an error naming it and the field; JSON of an unknown protocol is returned as
/// [`Body::Unrecognised`] so that it can be listed.
pub fn load(path: &Path) -> Result<Entry> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))?;
    let head: Head = typed(path, &v)?;
    let mut provenance: Vec<(String, String)> = head.provenance.into_iter().collect();
    // Writers that keep preprocessing beside the provenance rather than in it.
    if let Some(pre) = &head.preprocessing {
        if !provenance.is_empty() && !provenance.iter().any(|(k, _)| k == "preprocessing") {
            provenance.push(("preprocessing".into(), pre.clone()));
        }
    }
    let model = head
        .model
        .or(head.label)
        .or_else(|| provenance.iter().find(|(k, _)| k == "model").map(|(_, m)| m.clone()))
        .or_else(|| {
            head.embeddings.as_deref().and_then(|e| Path::new(e).file_stem()).map(|s| s.to_string_lossy().into_owned())
        })
        .or_else(|| path.parent().and_then(Path::file_name).map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unnamed".into());
    let body = match head.protocol.as_deref() {
        Some(p) if p == "lfw" || p == "ytf" || p.starts_with("bin:") => {
            Body::Verification(Box::new(verification(path, typed(path, &v)?, p, head.preprocessing)?))
        }
        None if head.sizes.is_some() && head.dataset.is_some() => Body::Megaface(megaface(typed(path, &v)?)),
        Some("megaface") => Body::Megaface(megaface(typed(path, &v)?)),
        Some(p) => Body::Unrecognised { reason: format!("protocol `{p}` is not one the summary knows") },
        None => Body::Unrecognised { reason: "no `protocol` field and not a MegaFace results file".into() },
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

fn verification(
    path: &Path,
    d: VerificationDoc,
    protocol: &str,
    preprocessing: Option<String>,
) -> Result<Verification> {
    let r = d.results;
    let n_pairs = r
        .n_pairs
        .or(r.pairs_evaluated)
        .ok_or_else(|| bad(path, "field `results.n_pairs` (or `results.pairs_evaluated`) is missing".into()))?;
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
    let scores = match path.parent().map(|d| d.join("pairs_scores.csv")) {
        Some(csv) if csv.is_file() => Some(read_pair_scores(&csv, r.mode.as_deref())?),
        _ => None,
    };
    let other_variants = d
        .baselines_and_other_variants
        .into_iter()
        .map(|x| (x.name, x.rule, x.accuracy_mean, x.accuracy_std.unwrap_or(f64::NAN)))
        .collect();
    Ok(Verification {
        protocol: protocol.to_string(),
        n_pairs,
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

/// `pairs_scores.csv` (header with `is_same` and a `cosine` column, or, for YTF, a column
/// named after the scoring mode): (genuine, impostor).
fn read_pair_scores(path: &Path, mode: Option<&str>) -> Result<(Vec<f64>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| bad(path, format!("line 1: no `{name}` column")))
    };
    let same = col("is_same")?;
    let cos = match (col("cosine"), mode) {
        (Ok(c), _) => c,
        (Err(_), Some(m)) => col(m)?,
        (Err(e), None) => return Err(e),
    };
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let cell = |c: usize| {
            cells.get(c).map(|s| s.trim()).ok_or_else(|| bad(path, format!("line {}: too few columns", i + 2)))
        };
        let score: f64 = cell(cos)?
            .parse()
            .map_err(|_| bad(path, format!("line {}: cosine `{}` is not a number", i + 2, cells[cos])))?;
        match cell(same)? {
            "1" | "true" => genuine.push(score),
            "0" | "false" => impostor.push(score),
            other => return Err(bad(path, format!("line {}: is_same `{other}` is neither 0 nor 1", i + 2))),
        }
    }
    Ok((genuine, impostor))
}

fn megaface(d: MegafaceDoc) -> Megaface {
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
    Megaface { dataset: d.dataset, variant: d.variant, scoring: d.scoring, probes: d.probes, sizes }
}
