//! `facebench eval ytf`: YouTube Faces from frames (align -> embed, both cached) or from a
//! frame-feature store, scored per video under every mode and reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use facebench_core::store::{self, AppendStore};
use facebench_core::Embeddings;
use facebench_extract::{read_alignments, Job};
use facebench_lfw::Rule;
use facebench_report::ytf::{write_ytf_report, TarCell, YtfModeReport, YtfReport};
use facebench_ytf::{
    align_cached, evaluate, Coverage, EvalSettings, FrameSelection, LabeledFaces, Layout, Mode, Search, SearchRegion,
    Splits, VideoIndex, YtfResults,
};

use super::embed::{embed_cached, flip_path, recipe, ModelName};
use super::keys::progress_bar;
use super::run_args::ModelRunArgs;
use super::{create_dir, write_json, CmdResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// aligned_images_DB/<Name>/<vid>/aligned_detect_<vid>.<frame>.jpg
    Aligned,
    /// frame_images_DB/<Name>/<vid>/<vid>.<frame>.jpg with labeled_faces.txt boxes
    Frames,
}

#[derive(Args)]
pub struct YtfArgs {
    /// Model that embeds the frames [default: faceapi-resnet unless --embeddings is given].
    #[arg(long, value_enum)]
    model: Option<ModelName>,
    /// A store of frame features instead of a model (.npy/.csv/.safetensors/.fbs), keys =
    /// frame paths relative to the layout root (`Alek_Wek/4/4.74.jpg`), used as given.
    #[arg(long, conflicts_with = "model")]
    embeddings: Option<PathBuf>,
    /// Keys file for a .npy --embeddings store.
    #[arg(long, requires = "embeddings")]
    keys: Option<PathBuf>,
    /// Frame layout [default: aligned if <data-root>/ytf/aligned_images_DB exists, else frames;
    /// with --root, what the folder's name says].
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
    /// Folder of the videos [default: <data-root>/ytf/aligned_images_DB, or frame_images_DB,
    /// else frame_images_DB_subset].
    #[arg(long)]
    root: Option<PathBuf>,
    /// The pairs file [default: <data-root>/ytf/splits.txt].
    #[arg(long)]
    splits: Option<PathBuf>,
    /// Evaluate the pairs whose two videos exist instead of stopping at the first missing
    /// video; the report's first line then says how many of the 5000 pairs were evaluated.
    #[arg(long)]
    allow_missing: bool,
    /// Video scoring mode(s), comma-separated; the first is the headline:
    /// mean-feature, mean-pair, min-pair, max-pair.
    #[arg(long, value_delimiter = ',', default_value = "mean-feature,mean-pair,min-pair,max-pair")]
    mode: Vec<Mode>,
    /// Accuracy rule(s): insightface, sphereface, facenet, facexzoo, exact.
    #[arg(long, value_delimiter = ',', default_value = "insightface,sphereface")]
    protocol: Vec<Rule>,
    /// Use at most the first N frames of each video (after --stride).
    #[arg(long)]
    max_frames: Option<usize>,
    /// Use every K-th frame (frame-number order, from the first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    stride: u64,
    /// How a frame becomes model input: `landmarks` (detector + 68 landmarks; for full frames
    /// the labelled box is the search region), `none` or `centre:S` (aligned layout only: the
    /// aligned crop as it is, or its centre square).
    #[arg(long, default_value = "landmarks")]
    align: String,
    /// Search region = the labelled box grown by MARGIN x its size on every side.
    #[arg(long, default_value_t = facebench_ytf::DEFAULT_MARGIN)]
    margin: f64,
    /// The detector sees the search region on a black canvas CONTEXT x its size.
    #[arg(long, default_value_t = facebench_ytf::DEFAULT_CONTEXT)]
    context: f64,
    /// Also embed mirrored frames; frame feature = normalize(orig + flip).
    #[arg(long)]
    flip: bool,
    /// Cache of alignments and embeddings (reused by later runs).
    #[arg(long, default_value = "cache/ytf")]
    cache: PathBuf,
    #[command(flatten)]
    run: ModelRunArgs,
    /// Output folder: results.json, pairs_scores.csv, report.md, report.html, roc.png/svg,
    /// scores.png/svg [default: reports/ytf/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// (stage, seconds, note): a row of the report's Time table.
type Timing = (String, f64, String);

/// A stage's timing row and its frames/s. Stages that did work are remembered in
/// `<cache>/stages.json` (seconds, note, frames) so that a fully cached run still reports what
/// computing them cost, and at what rate.
fn stage(
    cache: &Path,
    name: &str,
    seconds: f64,
    note: String,
    frames: usize,
) -> Result<(Timing, Option<f64>), Box<dyn std::error::Error>> {
    let path = cache.join("stages.json");
    let mut known: BTreeMap<String, (f64, String, usize)> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if frames > 0 {
        known.insert(name.to_string(), (seconds, note.clone(), frames));
        write_json(&path, &known)?;
        return Ok(((name.to_string(), seconds, note), Some(frames as f64 / seconds.max(1e-9))));
    }
    Ok(match known.get(name) {
        Some((secs, first, n)) => (
            (name.to_string(), seconds, format!("{note}; when computed: {secs:.1} s, {first}")),
            Some(*n as f64 / secs.max(1e-9)),
        ),
        None => ((name.to_string(), seconds, note), None),
    })
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect()
}

/// The frame features, from the model pipeline (align + embed, cached) or a store.
struct Frames {
    features: Embeddings,
    label: String,
    preprocessing: String,
    weights_sha: Option<String>,
    fallbacks: Vec<String>,
    timings: Vec<(String, f64, String)>,
    /// Frames/s of alignment and of embedding (this run, or when the cache was filled).
    align_fps: Option<f64>,
    embed_fps: Option<f64>,
}

fn embed_frames(
    a: &YtfArgs,
    model: ModelName,
    index: &VideoIndex,
    names: &[&str],
    keys: &[String],
) -> Result<Frames, Box<dyn std::error::Error>> {
    let layout = index.layout;
    let r = recipe(model, &a.align)?;
    if layout == Layout::Frames && !r.uses_alignment {
        return Err(format!("--align {}: full frames (the frames layout) need --align landmarks", a.align).into());
    }
    let mut timings = Vec::new();
    let mut fallbacks = Vec::new();
    let mut align_fps = None;
    let mut tag = format!("{}-{}", layout.name(), safe(&a.align));
    let faces = if r.uses_alignment {
        let labels;
        let search = match layout {
            Layout::Frames => {
                labels = LabeledFaces::read_for(&index.root, names.iter().copied())?;
                tag += &format!("-m{}-c{}", a.margin, a.context);
                Search { region: SearchRegion::Labelled { faces: &labels, margin: a.margin }, context: a.context }
            }
            Layout::Aligned => {
                tag += &format!("-c{}", a.context);
                Search { region: SearchRegion::Whole, context: a.context }
            }
        };
        let cache = a.cache.join(format!("align-{}.jsonl", safe(&tag)));
        let pb = progress_bar(keys.len(), "align frames");
        let models_dir = a.run.weights_dir();
        let o = align_cached(
            &index.root,
            keys,
            search,
            &cache,
            || {
                let dev = facebench_model::device_from_name(&a.run.device)
                    .map_err(|e| facebench_ytf::Error::Invalid(e.to_string()))?;
                facebench_detect::Detector::load(&models_dir, &dev)
                    .map_err(|e| facebench_ytf::Error::Invalid(e.to_string()))
            },
            |n| pb.inc(n as u64),
        )?;
        pb.finish_and_clear();
        let note = if o.aligned > 0 {
            format!("{} frames, {:.1} frames/s; {} cached", o.aligned, o.per_second(), o.already)
        } else {
            format!("all {} frames cached", o.already)
        };
        let (row, fps) = stage(&a.cache, &format!("align frames ({tag})"), o.seconds, note, o.aligned)?;
        timings.push(row);
        align_fps = fps;
        let (faces, fb) = read_alignments(&cache)?;
        let wanted: std::collections::HashSet<&String> = keys.iter().collect();
        fallbacks = fb.into_iter().filter(|k| wanted.contains(k)).collect();
        faces
    } else {
        Default::default()
    };

    let net = a.run.load(model.as_str())?;
    let job =
        Job { model: net.as_ref(), recipe: &r, root: &index.root, batch: a.run.batch, flip: a.flip, skip_bad: false };
    let path = a.cache.join(model.as_str()).join(format!("{}.fbs", safe(&tag)));
    let s = embed_cached(&job, keys, &faces, &path)?;
    let note = if s.computed > 0 {
        format!("{} frames{}, {:.1} frames/s", s.computed, if a.flip { " + mirrors" } else { "" }, s.images_per_sec())
    } else {
        format!("all {} frames cached", s.already_stored)
    };
    let (row, embed_fps) = stage(&a.cache, &format!("embed {} ({tag})", model.as_str()), s.seconds, note, s.computed)?;
    timings.push(row);
    let (_, orig) = AppendStore::read(&path)?;
    let features = if a.flip { orig.fuse_flip_sum(&AppendStore::read(&flip_path(&path))?.1)? } else { orig };
    let how = match (a.align.as_str(), layout, model) {
        ("landmarks", Layout::Frames, m) => format!(
            "face-api SSD + 68 landmarks in the labelled box grown by {}x (on a {}x canvas), then {}",
            a.margin,
            a.context,
            model_crop(m)
        ),
        ("landmarks", Layout::Aligned, m) => format!(
            "face-api SSD + 68 landmarks on the aligned crop (on a {}x canvas), then {}",
            a.context,
            model_crop(m)
        ),
        (other, _, _) => format!("--align {other} on the aligned crops"),
    };
    Ok(Frames {
        features,
        label: model.as_str().to_string(),
        preprocessing: format!("{how}{}", if a.flip { "; mirror features fused (sum, normalised)" } else { "" }),
        weights_sha: Some(net.weights_sha256().to_string()),
        fallbacks,
        timings,
        align_fps,
        embed_fps,
    })
}

impl Frames {
    /// `{"alignment": f/s, "embedding": f/s, "overall": f/s}` (the stages known).
    fn speed(&self) -> BTreeMap<&'static str, f64> {
        let mut m = BTreeMap::new();
        if let Some(a) = self.align_fps {
            m.insert("alignment", a);
        }
        if let Some(e) = self.embed_fps {
            m.insert("embedding", e);
        }
        let inv: f64 = m.values().map(|v| 1.0 / v).sum();
        if !m.is_empty() {
            m.insert("overall", 1.0 / inv);
        }
        m
    }

    fn speed_line(&self) -> Option<String> {
        let s = self.speed();
        let o = s.get("overall")?;
        let parts: Vec<String> =
            s.iter().filter(|(k, _)| **k != "overall").map(|(k, v)| format!("{k} {v:.1}")).collect();
        Some(format!(
            "Frame embedding speed on this machine: {o:.1} frames/s from frame to feature ({} frames/s; YTF's ~620,000 frames would take {:.1} h). See Time.",
            parts.join(", "),
            620_000.0 / o / 3600.0
        ))
    }
}

fn model_crop(m: ModelName) -> &'static str {
    match m {
        ModelName::FaceapiResnet => "the dlib box at 150x150",
        ModelName::Mobileface => "the ArcFace 5-point warp to 112x112",
    }
}

pub fn run(a: YtfArgs, data_root: &Path) -> CmdResult {
    let t_all = Instant::now();
    let ytf_dir = data_root.join("ytf");
    let splits_path = a.splits.clone().unwrap_or_else(|| ytf_dir.join("splits.txt"));
    let splits = Splits::read(&splits_path)?;
    let layout = match (a.layout, &a.root) {
        (Some(LayoutArg::Aligned), _) => Layout::Aligned,
        (Some(LayoutArg::Frames), _) => Layout::Frames,
        (None, Some(root)) => Layout::of_folder(root).ok_or_else(|| {
            format!(
                "{}: say --layout aligned|frames (the folder name is neither aligned_images_DB* nor frame_images_DB*)",
                root.display()
            )
        })?,
        (None, None) if ytf_dir.join("aligned_images_DB").is_dir() => Layout::Aligned,
        (None, None) => Layout::Frames,
    };
    let root = a.root.clone().unwrap_or_else(|| layout.default_root(&ytf_dir));
    let index = VideoIndex::scan(&root, layout, &splits.videos())?;
    let coverage = Coverage::of(&splits, &index);
    if !a.allow_missing {
        coverage.require_complete(&splits, &index)?;
    }
    eprintln!(
        "ytf: found {} of the {} videos splits.txt names under {} ({} layout); {} of {} pairs have both videos",
        coverage.videos_found,
        coverage.videos_named,
        root.display(),
        layout.name(),
        coverage.complete_pairs.len(),
        splits.pairs.len()
    );
    let selection = FrameSelection { stride: a.stride as usize, max_frames: a.max_frames };
    let mut videos: Vec<_> =
        coverage.complete_pairs.iter().flat_map(|&i| [&splits.pairs[i].left, &splits.pairs[i].right]).collect();
    videos.sort();
    videos.dedup();
    let keys: Vec<String> = videos.iter().flat_map(|v| index.selected_keys(v, &selection)).collect();
    let names: Vec<&str> = {
        let mut n: Vec<&str> = videos.iter().map(|v| v.name.as_str()).collect();
        n.dedup();
        n
    };

    let frames = match &a.embeddings {
        Some(p) => Frames {
            features: store::read(p, a.keys.as_deref())?,
            label: p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            preprocessing: "as stored in the embeddings".into(),
            weights_sha: None,
            fallbacks: Vec::new(),
            timings: Vec::new(),
            align_fps: None,
            embed_fps: None,
        },
        None => embed_frames(&a, a.model.unwrap_or(ModelName::FaceapiResnet), &index, &names, &keys)?,
    };
    let mut timings = frames.timings.clone();
    let settings = EvalSettings { rules: a.protocol.clone(), ..EvalSettings::default() };
    let t = Instant::now();
    let results = evaluate(&splits, &index, selection, &frames.features, &a.mode, &settings, a.allow_missing)?;
    timings.push((
        "score videos + 10-fold metrics".into(),
        t.elapsed().as_secs_f64(),
        format!("{} pairs, {} modes", results.pairs_evaluated, a.mode.len()),
    ));

    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/ytf").join(&frames.label));
    create_dir(&out)?;
    let mut extra = vec![
        ("model", frames.label.clone()),
        ("splits", splits_path.display().to_string()),
        ("frames root", root.display().to_string()),
        ("layout", layout.name().to_string()),
        ("frame selection", selection.describe()),
        ("data root", data_root.display().to_string()),
        ("device", a.run.device.clone()),
    ];
    if let Some(sha) = &frames.weights_sha {
        extra.push(("weights sha256", sha.clone()));
    }
    if let Some(p) = &a.embeddings {
        extra.push(("embeddings", p.display().to_string()));
    }
    let provenance = super::provenance::collect(&extra);
    timings.push(("total (build excluded)".into(), t_all.elapsed().as_secs_f64(), String::new()));

    results.write_pair_scores_csv(&out.join("pairs_scores.csv"))?;
    write_json(&out.join("results.json"), &results_json(&results, &frames, &timings, &provenance)?)?;
    write_ytf_report(&out, &report(&results, &frames, &timings, provenance))?;
    print!("{}", headline(&results));
    if let Some(sp) = frames.speed_line() {
        println!("{sp}");
    }
    println!("{} alignment fallback(s); report in {}", frames.fallbacks.len(), out.display());
    Ok(())
}

/// `{"protocol": "ytf", "model", "provenance", "results": {<headline mode, LFW's field names>,
/// "modes": [every mode], coverage and frame counts}}`.
fn results_json(
    r: &YtfResults,
    f: &Frames,
    timings: &[(String, f64, String)],
    provenance: &[(String, String)],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut res = serde_json::to_value(r)?;
    let obj = res.as_object_mut().expect("a struct serialises to an object");
    if r.pairs.len() > 50 {
        obj.remove("pairs");
    }
    let head = serde_json::to_value(&r.modes[0])?;
    for (k, v) in head.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    Ok(serde_json::json!({
        "protocol": "ytf",
        "model": f.label,
        "preprocessing": f.preprocessing,
        "partial": r.partial_line(),
        "alignment_fallbacks": f.fallbacks,
        "frames_per_second": f.speed(),
        "timings": timings.iter().map(|(s, t, n)| serde_json::json!({"stage": s, "seconds": t, "note": n})).collect::<Vec<_>>(),
        "provenance": provenance.iter().cloned().collect::<BTreeMap<_, _>>(),
        "results": res,
    }))
}

fn report(
    r: &YtfResults,
    f: &Frames,
    timings: &[(String, f64, String)],
    provenance: Vec<(String, String)>,
) -> YtfReport {
    let modes = r
        .modes
        .iter()
        .map(|m| {
            let scores = |same: bool| {
                r.pairs.iter().zip(&m.scores).filter(|(p, _)| p.is_same == same).map(|(_, &s)| s).collect()
            };
            let met = m.metrics.as_ref();
            YtfModeReport {
                mode: m.mode.to_string(),
                description: m.description.to_string(),
                accuracy: met.map(|x| x.accuracy.clone()).unwrap_or_default(),
                rule_scores: met.map(|x| x.rule_scores.clone().into_iter().collect()).unwrap_or_default(),
                auc: met.map(|x| x.auc),
                eer: met.map(|x| x.eer),
                tar_at_far: met
                    .map(|x| {
                        x.tar_at_far
                            .iter()
                            .map(|t| TarCell {
                                far_target: t.far_target,
                                method: t.method.to_string(),
                                exact: t.exact.clone(),
                                insightface: t.insightface.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                roc_folds: met.map(|x| x.roc_folds.clone()),
                not_measurable: m.not_measurable.clone(),
                genuine: scores(true),
                impostor: scores(false),
            }
        })
        .collect();
    let mut pair_header: Vec<String> =
        ["split", "pair", "left", "right", "same", "frames"].into_iter().map(String::from).collect();
    pair_header.extend(r.modes.iter().map(|m| m.mode.to_string()));
    let pair_rows = r
        .pairs
        .iter()
        .map(|p| {
            let mut row = vec![
                p.split.to_string(),
                p.pair.to_string(),
                p.left.clone(),
                p.right.clone(),
                if p.is_same { "yes" } else { "no" }.to_string(),
                format!("{} + {}", p.frames_left, p.frames_right),
            ];
            row.extend(r.modes.iter().map(|m| format!("{:.4}", p.scores[m.mode.name()])));
            row
        })
        .collect();
    YtfReport {
        model: f.label.clone(),
        partial_line: r.partial_line(),
        summary: format!(
            "{} of {} pairs of `{}` ({} of the {} named videos found; the dataset has {}), {} layout under `{}`, {} ({} frames scored).",
            r.pairs_evaluated,
            r.pairs_total,
            r.splits_file,
            r.videos_found,
            r.videos_named,
            r.dataset_videos,
            r.layout.name(),
            r.frames_root,
            r.frame_selection.describe(),
            r.frames_used
        ),
        preprocessing: f.preprocessing.clone(),
        speed: f.speed_line(),
        modes,
        pair_header,
        pair_rows,
        timings: timings.to_vec(),
        fallbacks: f.fallbacks.clone(),
        provenance,
    }
}

/// The terminal summary: partial line, accuracy per mode and rule (or why not), AUC/EER.
fn headline(r: &YtfResults) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some(p) = r.partial_line() {
        let _ = writeln!(s, "{p}");
    }
    let _ = writeln!(
        s,
        "YTF {}: {} pairs, {} frames, {}",
        r.splits_file,
        r.pairs_evaluated,
        r.frames_used,
        r.frame_selection.describe()
    );
    for m in &r.modes {
        match (&m.metrics, &m.not_measurable) {
            (Some(x), _) => {
                for rep in &x.accuracy {
                    let _ = writeln!(
                        s,
                        "{:<13} {:<12} {:>7.3}% +- {:.3}%",
                        m.mode.name(),
                        rep.rule.to_string(),
                        100.0 * rep.mean,
                        100.0 * rep.std_population
                    );
                }
                let _ = writeln!(s, "{:<13} AUC {:.5}  EER {:.3}%", m.mode.name(), x.auc, 100.0 * x.eer);
            }
            (None, _) => {
                let _ = writeln!(s, "{:<13} not measurable (below)", m.mode.name());
            }
        }
    }
    if let Some(why) = r.modes.iter().find_map(|m| m.not_measurable.as_deref()) {
        let _ = writeln!(s, "not measurable: {why}");
    }
    if r.pairs.len() <= 10 {
        for p in &r.pairs {
            let scores: Vec<String> =
                r.modes.iter().map(|m| format!("{} {:.4}", m.mode, p.scores[m.mode.name()])).collect();
            let _ = writeln!(
                s,
                "split {} pair {} {} vs {} (same: {}): {}",
                p.split,
                p.pair,
                p.left,
                p.right,
                p.is_same,
                scores.join(", ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// results.json has the LFW shape that `facebench report` reads, for a partial run.
    #[test]
    fn results_json_shape_of_a_partial_run() {
        let data = std::env::var_os("FACEBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
        let splits = Splits::read(&data.join("ytf/splits.txt")).unwrap();
        let mut index = VideoIndex { root: "r".into(), layout: Layout::Frames, videos: Default::default() };
        let mut e = Embeddings::new(3);
        for (v, row) in [("Alek_Wek/1", [1.0f32, 0.0, 0.0]), ("Alek_Wek/4", [0.8, 0.6, 0.0])] {
            let id = facebench_ytf::VideoId::parse(v).unwrap();
            e.push(index.frame_key(&id, 7), &row).unwrap();
            index.videos.insert(id, vec![7]);
        }
        let r = evaluate(&splits, &index, FrameSelection::default(), &e, &Mode::ALL, &EvalSettings::default(), true)
            .unwrap();
        let f = Frames {
            features: e,
            label: "m".into(),
            preprocessing: "p".into(),
            weights_sha: None,
            fallbacks: vec![],
            timings: vec![],
            align_fps: Some(4.0),
            embed_fps: Some(4.0),
        };
        let v = results_json(&r, &f, &[], &[("k".into(), "v".into())]).unwrap();
        assert_eq!(v["protocol"], "ytf");
        assert_eq!(v["model"], "m");
        assert_eq!(v["provenance"]["k"], "v");
        assert_eq!(v["frames_per_second"]["overall"], 2.0);
        assert!(v["partial"].as_str().unwrap().starts_with("PARTIAL EVALUATION: 1 of 5000 pairs"));
        let res = &v["results"];
        assert_eq!(
            (res["mode"].as_str(), res["pairs_evaluated"].as_u64(), res["pairs_total"].as_u64()),
            (Some("mean-feature"), Some(1), Some(5000))
        );
        assert!(res["not_measurable"].as_str().unwrap().contains("1 pair"));
        assert!(res.get("accuracy").is_none(), "no accuracy is invented");
        assert_eq!(res["modes"].as_array().unwrap().len(), 4);
        assert!((res["pairs"][0]["scores"]["max-pair"].as_f64().unwrap() - 0.8).abs() < 1e-6);
        let rep = report(&r, &f, &[], vec![]);
        assert_eq!(rep.modes[0].genuine.len(), 1);
        assert!(rep.speed.unwrap().contains("2.0 frames/s from frame to feature"));
    }

    /// A full (synthetic) run writes every figure and an accuracy row per mode and rule.
    #[test]
    fn full_synthetic_run_writes_the_whole_report() {
        let data = std::env::var_os("FACEBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
        let splits = Splits::read(&data.join("ytf/splits.txt")).unwrap();
        let mut index = VideoIndex { root: "r".into(), layout: Layout::Frames, videos: Default::default() };
        let mut e = Embeddings::new(8);
        // A person's direction from a hash of the name, plus a frame- and video-dependent wobble.
        let h = |s: &str, k: u64| s.bytes().fold(k, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        for v in splits.videos() {
            for f in 0..2u32 {
                let row: Vec<f32> = (0..8u64)
                    .map(|d| {
                        let base = (h(&v.name, d + 1) % 1000) as f32 / 500.0 - 1.0;
                        let wobble = (h(&format!("{v}/{f}"), d + 99) % 1000) as f32 / 1000.0 - 0.5;
                        base + 0.5 * wobble
                    })
                    .collect();
                e.push(index.frame_key(&v, f), &row).unwrap();
            }
            index.videos.insert(v, vec![0, 1]);
        }
        let r = evaluate(&splits, &index, FrameSelection::default(), &e, &Mode::ALL, &EvalSettings::default(), false)
            .unwrap();
        let f = Frames {
            features: e,
            label: "synthetic".into(),
            preprocessing: "p".into(),
            weights_sha: None,
            fallbacks: vec![],
            timings: vec![],
            align_fps: None,
            embed_fps: None,
        };
        let dir = std::env::temp_dir().join(format!("facebench-cli-ytf-{}", std::process::id()));
        write_ytf_report(&dir, &report(&r, &f, &[], vec![])).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.starts_with("# YouTube Faces (YTF): synthetic"), "a full run has no partial line");
        for m in Mode::ALL {
            for rule in ["insightface", "sphereface"] {
                assert!(md.contains(&format!("| measured | synthetic | {m} | {rule} |")), "{m} {rule}");
            }
        }
        assert!(md.contains("Per split, mean-feature") && md.contains("TAR@FAR=1e-3"));
        for fig in ["roc.png", "roc.svg", "scores.png", "scores.svg"] {
            assert!(dir.join(fig).is_file(), "{fig}");
        }
        let v = results_json(&r, &f, &[], &[]).unwrap();
        assert_eq!(v["results"]["accuracy"].as_array().unwrap().len(), 2);
        assert!(v["results"]["accuracy"][0]["mean"].as_f64().unwrap() > 0.9);
        assert!(v["results"].get("pairs").is_none(), "5000 pairs go to the CSV only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
