//! Reading results.json files of every protocol into one shape. Only what the summary shows
//! is read; a file of a shape not known here is kept as "not recognised" with the reason.

use std::path::{Path, PathBuf};

use serde_json::Value;

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
    /// (stage, seconds, note).
    pub timings: Vec<(String, f64, String)>,
    pub body: Body,
}

/// `1,000,000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Io { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg) }
}

/// Typed access to a JSON value, errors naming the file and the field.
struct At<'a> {
    path: &'a Path,
}

impl At<'_> {
    fn get<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Value> {
        let mut cur = v;
        for part in field.split('.') {
            cur = cur.get(part).ok_or_else(|| bad(self.path, format!("field `{field}` is missing")))?;
        }
        Ok(cur)
    }
    fn f64(&self, v: &Value, field: &str) -> Result<f64> {
        self.get(v, field)?.as_f64().ok_or_else(|| bad(self.path, format!("field `{field}` is not a number")))
    }
    fn u64(&self, v: &Value, field: &str) -> Result<u64> {
        self.get(v, field)?.as_u64().ok_or_else(|| bad(self.path, format!("field `{field}` is not a count")))
    }
    fn str<'v>(&self, v: &'v Value, field: &str) -> Result<&'v str> {
        self.get(v, field)?.as_str().ok_or_else(|| bad(self.path, format!("field `{field}` is not a string")))
    }
    fn arr<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Vec<Value>> {
        self.get(v, field)?.as_array().ok_or_else(|| bad(self.path, format!("field `{field}` is not a list")))
    }
    /// A list of numbers (`null` entries, e.g. an infinite threshold, are an error too).
    fn nums(&self, v: &Value, field: &str) -> Result<Vec<f64>> {
        self.arr(v, field)?
            .iter()
            .enumerate()
            .map(|(i, x)| x.as_f64().ok_or_else(|| bad(self.path, format!("field `{field}`[{i}] is not a number"))))
            .collect()
    }
}

/// Reads one results.json. A file that is not JSON is an error naming it; JSON of an
/// unknown protocol is returned as [`Body::Unrecognised`] so that it can be listed.
pub fn load(path: &Path) -> Result<Entry> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, format!("not valid JSON: {e}")))?;
    let at = At { path };
    let provenance: Vec<(String, String)> = v
        .get("provenance")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| (k.clone(), x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())))
                .collect()
        })
        .unwrap_or_default();
    // Writers that keep preprocessing beside the provenance rather than in it.
    let mut provenance = provenance;
    if let Some(pre) = v.get("preprocessing").and_then(Value::as_str) {
        if !provenance.is_empty() && !provenance.iter().any(|(k, _)| k == "preprocessing") {
            provenance.push(("preprocessing".into(), pre.to_string()));
        }
    }
    let mut timings = Vec::new();
    if let Some(list) = v.get("timings").and_then(Value::as_array) {
        for (i, t) in list.iter().enumerate() {
            let field = |f: &str| format!("timings[{i}].{f}");
            let stage = t
                .get("stage")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(path, format!("field `{}` is missing", field("stage"))))?;
            let secs = t
                .get("seconds")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad(path, format!("field `{}` is not a number", field("seconds"))))?;
            let note = t.get("note").and_then(Value::as_str).unwrap_or("");
            timings.push((stage.to_string(), secs, note.to_string()));
        }
    }
    let model = model_name(&v, path, &provenance);
    let training_data = v.get("training_data").and_then(Value::as_str).map(str::to_string);
    let protocol = v.get("protocol").and_then(Value::as_str).map(str::to_string);
    let body = match protocol.as_deref() {
        Some(p) if p == "lfw" || p == "ytf" || p.starts_with("bin:") => {
            Body::Verification(Box::new(verification(&at, &v, p)?))
        }
        None if v.get("sizes").is_some() && v.get("dataset").is_some() => Body::Megaface(megaface(&at, &v)?),
        Some("megaface") => Body::Megaface(megaface(&at, &v)?),
        Some(p) => Body::Unrecognised { reason: format!("protocol `{p}` is not one the summary knows") },
        None => Body::Unrecognised { reason: "no `protocol` field and not a MegaFace results file".into() },
    };
    Ok(Entry { path: path.to_path_buf(), model, training_data, provenance, timings, body })
}

/// The model: the file's `model` (or `label`), else the provenance's, else the name of the
/// embeddings file, else the folder holding the results file.
fn model_name(v: &Value, path: &Path, provenance: &[(String, String)]) -> String {
    let from_file = ["model", "label"].iter().find_map(|k| v.get(*k).and_then(Value::as_str)).map(str::to_string);
    let from_prov = || provenance.iter().find(|(k, _)| k == "model").map(|(_, m)| m.clone());
    let from_emb = || {
        v.get("embeddings")
            .and_then(Value::as_str)
            .and_then(|e| Path::new(e).file_stem())
            .map(|s| s.to_string_lossy().into_owned())
    };
    let from_dir = || path.parent().and_then(Path::file_name).map(|s| s.to_string_lossy().into_owned());
    from_file.or_else(from_prov).or_else(from_emb).or_else(from_dir).unwrap_or_else(|| "unnamed".into())
}

fn verification(at: &At, v: &Value, protocol: &str) -> Result<Verification> {
    let r = at.get(v, "results")?;
    // LFW's and .bin's results say `n_pairs`; YTF's say `pairs_evaluated` of `pairs_total`.
    let n_pairs = match r.get("n_pairs") {
        Some(_) => at.u64(r, "n_pairs")?,
        None => at
            .u64(r, "pairs_evaluated")
            .map_err(|_| bad(at.path, "field `results.n_pairs` (or `results.pairs_evaluated`) is missing".into()))?,
    };
    let expected = r.get("pairs_total").and_then(Value::as_u64).or(match protocol {
        "lfw" => Some(LFW_PAIRS),
        "ytf" => Some(YTF_PAIRS),
        _ => None,
    });
    let says_partial = [v.get("partial"), r.get("partial")]
        .into_iter()
        .flatten()
        .any(|p| p.as_bool() == Some(true) || p.as_str().is_some_and(|s| !s.is_empty()));
    let partial = match expected {
        Some(e) if n_pairs != e => Some(format!("partial: {} of {} pairs", thousands(n_pairs), thousands(e))),
        _ if says_partial => Some(format!("partial: {} pairs", thousands(n_pairs))),
        _ => None,
    };
    let notes: Vec<String> = [v.get("partial"), r.get("not_measurable")]
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    let mode = r.get("mode").and_then(Value::as_str).map(str::to_string);
    let mut rules = Vec::new();
    // Absent when accuracy could not be measured (too few pairs): then `not_measurable` says why.
    let no_accuracy = Vec::new();
    let accuracy = if r.get("accuracy").is_some() { at.arr(r, "accuracy")? } else { &no_accuracy };
    for (i, a) in accuracy.iter().enumerate() {
        let f = |name: &str| format!("results.accuracy[{i}].{name}");
        let rule = a
            .get("rule")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(at.path, format!("field `{}` is missing", f("rule"))))?;
        let num = |name: &str| a.get(name).and_then(Value::as_f64);
        let mean = num("mean").ok_or_else(|| bad(at.path, format!("field `{}` is not a number", f("mean"))))?;
        let std_population = num("std_population")
            .ok_or_else(|| bad(at.path, format!("field `{}` is not a number", f("std_population"))))?;
        let thresholds: Vec<f64> = a
            .get("folds")
            .and_then(Value::as_array)
            .map(|fs| fs.iter().filter_map(|x| x.get("threshold").and_then(Value::as_f64)).collect())
            .unwrap_or_default();
        let mean_thr = (!thresholds.is_empty()).then(|| thresholds.iter().sum::<f64>() / thresholds.len() as f64);
        // Squared-L2 rules (d = 2 - 2cos on unit vectors) convert; cosine rules are as is;
        // sphereface's threshold is on mean-subtracted concatenated features: not comparable.
        let cosine_threshold = match rule {
            "insightface" | "facenet" => mean_thr.map(|t| 1.0 - t / 2.0),
            "exact" | "facexzoo" => mean_thr,
            _ => None,
        };
        rules.push(RuleAccuracy {
            rule: rule.to_string(),
            mean,
            std_population,
            std_sample: num("std_sample"),
            sem: num("sem"),
            cosine_threshold,
        });
    }
    let mut tar_at_far = Vec::new();
    if let Some(list) = r.get("tar_at_far").and_then(Value::as_array) {
        for (i, t) in list.iter().enumerate() {
            let far = at
                .f64(t, "far_target")
                .map_err(|_| bad(at.path, format!("field `results.tar_at_far[{i}].far_target` is not a number")))?;
            let method = t.get("method").and_then(Value::as_str).unwrap_or("?").to_string();
            let tar = match (t.get("exact"), t.get("insightface")) {
                (Some(e), _) if !e.is_null() => e.get("tar").and_then(Value::as_f64),
                (_, Some(i)) if !i.is_null() => i.get("val_mean").and_then(Value::as_f64),
                _ => None,
            };
            tar_at_far.push((far, tar, method));
        }
    }
    let roc = if let Some(rf) = r.get("roc_folds").filter(|x| !x.is_null()) {
        Some((at.nums(rf, "far")?, at.nums(rf, "tar_mean")?, "fold mean"))
    } else if let Some(rp) = r.get("roc").filter(|x| !x.is_null()) {
        Some((at.nums(rp, "far")?, at.nums(rp, "tar")?, "pooled"))
    } else {
        None
    };
    let scores = match at.path.parent().map(|d| d.join("pairs_scores.csv")) {
        Some(csv) if csv.is_file() => Some(read_pair_scores(&csv, mode.as_deref())?),
        _ => None,
    };
    let other_variants = v
        .get("baselines_and_other_variants")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|x| {
                    Some((
                        x.get("name")?.as_str()?.to_string(),
                        x.get("rule").and_then(Value::as_str).unwrap_or("").to_string(),
                        x.get("accuracy_mean")?.as_f64()?,
                        x.get("accuracy_std").and_then(Value::as_f64).unwrap_or(f64::NAN),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let preprocessing = v
        .get("preprocessing")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| "as stored in the embeddings".into());
    Ok(Verification {
        protocol: protocol.to_string(),
        n_pairs,
        partial,
        notes,
        mode,
        preprocessing,
        rules,
        auc: r.get("auc").and_then(Value::as_f64),
        eer: r.get("eer").and_then(Value::as_f64),
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

fn megaface(at: &At, v: &Value) -> Result<Megaface> {
    let mut sizes = Vec::new();
    for (i, s) in at.arr(v, "sizes")?.iter().enumerate() {
        let ctx = |e: Error| match e {
            Error::Io { path, source } => {
                Error::Io { path, source: std::io::Error::new(source.kind(), format!("sizes[{i}]: {source}")) }
            }
            other => other,
        };
        let mut tars = Vec::new();
        for t in s.get("tar_at_far").and_then(Value::as_array).into_iter().flatten() {
            let far = at.f64(t, "far").map_err(ctx)?;
            let exact = t.get("exact").and_then(|e| e.get("tar")).and_then(Value::as_f64);
            tars.push((far, exact, t.get("devkit_log_interp").and_then(Value::as_f64)));
        }
        let (fpr, tpr) = match s.get("roc") {
            Some(r) => (at.nums(r, "fpr").map_err(ctx)?, at.nums(r, "tpr").map_err(ctx)?),
            None => (Vec::new(), Vec::new()),
        };
        sizes.push(MegaSize {
            size: at.u64(s, "size").map_err(ctx)?,
            rank1: at.f64(s, "rank1").map_err(ctx)?,
            cmc: s.get("cmc").map(|_| at.nums(s, "cmc")).transpose().map_err(ctx)?.unwrap_or_default(),
            tar_at_far: tars,
            roc_fpr: fpr,
            roc_tpr: tpr,
        });
    }
    Ok(Megaface {
        dataset: at.str(v, "dataset")?.to_string(),
        variant: v.get("variant").and_then(Value::as_str).unwrap_or("raw").to_string(),
        scoring: v.get("scoring").and_then(Value::as_str).unwrap_or("f32").to_string(),
        probes: v.get("probes").and_then(Value::as_u64).unwrap_or(0),
        sizes,
    })
}
