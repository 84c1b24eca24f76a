//! YouTube Faces from frames (align -> embed, both cached) or from a frame-feature store,
//! scored per video under every mode and reported.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use facebench_core::{store, Embeddings};
use facebench_detect::read_alignments;
use facebench_extract::Job;
use facebench_metrics::Published;
use facebench_pairs::Rule;
use facebench_report::ytf::{headline_table, write_ytf_report, YtfReport, YtfRunInfo};
use facebench_ytf::{
    align_cached, default_settings, evaluate, Coverage, FrameSelection, LabeledFaces, Layout, Mode, Search,
    SearchRegion, Splits, VideoIndex, YtfProtocol, YtfResults,
};
use serde::Serialize;

use crate::cache::{flip_path, CacheLayout};
use crate::provenance::collect;
use crate::stages::StageLog;
use crate::{output_set, progress_bar, write_json, Error, Result, ResultsEnvelope, Stage, Workspace};

/// `facebench eval ytf`.
#[derive(Debug, Clone)]
pub struct YtfRequest {
    /// A registry name or a trained backbone checkpoint; one of `model` and `embeddings`.
    pub model: Option<String>,
    /// A store of frame features instead of a model, and its keys file for .npy.
    pub embeddings: Option<PathBuf>,
    pub keys: Option<PathBuf>,
    /// [default: aligned if <data-root>/ytf/aligned_images_DB exists, else frames; with
    /// `root`, what the folder's name says]
    pub layout: Option<Layout>,
    pub root: Option<PathBuf>,
    /// [default: the protocol file's, <data-root>/ytf/splits.txt]
    pub splits: Option<PathBuf>,
    pub allow_missing: bool,
    pub modes: Vec<Mode>,
    pub rules: Vec<Rule>,
    pub max_frames: Option<usize>,
    pub stride: usize,
    pub align: String,
    pub margin: f64,
    pub context: f64,
    pub flip: bool,
    /// [default: reports/ytf/<model>]
    pub out: Option<PathBuf>,
}

/// The frame features, from the model pipeline (align + embed, cached) or a store.
struct Frames {
    features: Embeddings,
    label: String,
    preprocessing: String,
    weights_sha: Option<String>,
    fallbacks: Vec<String>,
    timings: Vec<Stage>,
    /// Frames/s of alignment and of embedding (this run, or when the cache was filled).
    align_fps: Option<f64>,
    embed_fps: Option<f64>,
}

fn embed_frames(
    ws: &Workspace,
    a: &YtfRequest,
    model: &str,
    index: &VideoIndex,
    names: &[&str],
    keys: &[String],
) -> Result<Frames> {
    let layout = index.layout;
    let model = ws.load_model(model)?;
    let r = model.recipe(&a.align)?;
    if layout == Layout::Frames && !r.uses_alignment {
        return Err(Error::Invalid(format!(
            "--align {}: full frames (the frames layout) need --align landmarks",
            a.align
        )));
    }
    let mut log = StageLog::open(ws.cache.stages());
    let mut fallbacks = Vec::new();
    let mut align_fps = None;
    let mut tag = format!("{}-{}", layout.name(), CacheLayout::tag_part(&a.align));
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
        let cache = ws.cache.frame_align(&tag);
        let pb = progress_bar(keys.len(), "align frames");
        let o = align_cached(
            &index.root,
            keys,
            search,
            &cache,
            || {
                let device = facebench_model::device_from_name(&ws.device).map_err(facebench_detect::Error::from)?;
                Ok(facebench_detect::Detector::load(&ws.models_dir, &device)?)
            },
            |n| pb.inc(n as u64),
        )?;
        pb.finish_and_clear();
        let note = if o.aligned > 0 {
            format!("{} frames, {:.1} frames/s; {} cached", o.aligned, o.per_second(), o.already)
        } else {
            format!("all {} frames cached", o.already)
        };
        align_fps = log.cached(&format!("align frames ({tag})"), o.seconds, note, o.aligned)?;
        let (faces, fb) = read_alignments(&cache)?;
        let wanted: HashSet<&String> = keys.iter().collect();
        fallbacks = fb.into_iter().filter(|k| wanted.contains(k)).collect();
        faces
    } else {
        Default::default()
    };

    let net = model.net();
    let job = Job { model: net, recipe: &r, root: &index.root, batch: ws.batch, flip: a.flip, skip_bad: false };
    let path = ws.cache.frame_store(model.name(), &tag);
    let s = ws.embed(&job, keys, &faces, &path)?;
    let note = if s.computed > 0 {
        format!("{} frames{}, {:.1} frames/s", s.computed, if a.flip { " + mirrors" } else { "" }, s.images_per_sec())
    } else {
        format!("all {} frames cached", s.already_stored)
    };
    let embed_fps = log.cached(&format!("embed {} ({tag})", model.name()), s.seconds, note, s.computed)?;
    let orig = store::AppendStore::read(&path)?.1;
    let features = if a.flip { orig.fuse_flip_sum(&store::AppendStore::read(&flip_path(&path))?.1)? } else { orig };
    let how = match (a.align.as_str(), layout) {
        ("landmarks", Layout::Frames) => format!(
            "face-api SSD + 68 landmarks in the labelled box grown by {}x (on a {}x canvas), then {}",
            a.margin,
            a.context,
            model.crop_description()
        ),
        ("landmarks", Layout::Aligned) => format!(
            "face-api SSD + 68 landmarks on the aligned crop (on a {}x canvas), then {}",
            a.context,
            model.crop_description()
        ),
        (other, _) => format!("--align {other} on the aligned crops"),
    };
    Ok(Frames {
        features,
        label: model.name().to_string(),
        preprocessing: format!("{how}{}", if a.flip { "; mirror features fused (sum, normalised)" } else { "" }),
        weights_sha: Some(net.weights_sha256().to_string()),
        fallbacks,
        timings: log.into_stages(),
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

    fn report(
        &self,
        r: &YtfResults,
        timings: &[Stage],
        provenance: Vec<(String, String)>,
        published: Vec<Published>,
    ) -> YtfReport {
        YtfReport::of(
            r,
            YtfRunInfo {
                model: self.label.clone(),
                preprocessing: self.preprocessing.clone(),
                speed: self.speed_line(),
                timings: timings.to_vec(),
                fallbacks: self.fallbacks.clone(),
                provenance,
                published,
            },
        )
    }
}

#[derive(Serialize)]
struct YtfBody {
    preprocessing: String,
    partial: Option<String>,
    alignment_fallbacks: Vec<String>,
    frames_per_second: BTreeMap<&'static str, f64>,
    /// The results with the headline mode's fields (LFW's names) at the top and every
    /// mode under `modes`; the per-pair list only when short (always in the CSV).
    results: serde_json::Value,
}

/// The envelope of a YTF run.
fn results_json(
    r: &YtfResults,
    f: &Frames,
    timings: &[Stage],
    provenance: &[(String, String)],
) -> Result<ResultsEnvelope<YtfBody>> {
    let json = |e| Error::Invalid(format!("YTF results as JSON: {e}"));
    let mut res = serde_json::to_value(r).map_err(json)?;
    let obj = res.as_object_mut().expect("a struct serialises to an object");
    if r.pairs.len() > 50 {
        obj.remove("pairs");
    }
    let head = serde_json::to_value(&r.modes[0]).map_err(json)?;
    for (k, v) in head.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    let body = YtfBody {
        preprocessing: f.preprocessing.clone(),
        partial: r.partial_line(),
        alignment_fallbacks: f.fallbacks.clone(),
        frames_per_second: f.speed(),
        results: res,
    };
    Ok(ResultsEnvelope::new("ytf", &f.label, body, timings.to_vec(), provenance))
}

/// Runs YTF and writes results.json, pairs_scores.csv and the report. Returns what the
/// terminal shows.
pub fn run(ws: &Workspace, a: &YtfRequest) -> Result<String> {
    let t_all = Instant::now();
    let ytf_dir = ws.data_root.join("ytf");
    let proto_path = facebench_pairs::published::default_dir().join("ytf.toml");
    let proto = YtfProtocol::read(&proto_path)?;
    let splits_path = a.splits.clone().unwrap_or_else(|| ws.data_root.join(&proto.splits.file));
    let splits = Splits::read(&splits_path, &proto.splits)?;
    let layout = match (a.layout, &a.root) {
        (Some(l), _) => l,
        (None, Some(root)) => Layout::of_folder(root).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: say --layout aligned|frames (the folder name is neither aligned_images_DB* nor frame_images_DB*)",
                root.display()
            ))
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
    let selection = FrameSelection { stride: a.stride, max_frames: a.max_frames };
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
        None => {
            let model = a.model.as_deref().ok_or("give a model or a store of frame features")?;
            embed_frames(ws, a, model, &index, &names, &keys)?
        }
    };
    let mut timings = frames.timings.clone();
    let settings = facebench_pairs::MetricSettings { rules: a.rules.clone(), ..default_settings() };
    let t = Instant::now();
    let results = evaluate(&splits, &index, selection, &frames.features, &a.modes, &settings, a.allow_missing)?;
    timings.push(Stage::new(
        "score videos + 10-fold metrics",
        t.elapsed().as_secs_f64(),
        format!("{} pairs, {} modes", results.pairs_evaluated, a.modes.len()),
    ));

    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("reports/ytf").join(&frames.label));
    let set = output_set(&out)?;
    let dir = set.dir();
    let mut extra = vec![
        ("model", frames.label.clone()),
        ("protocol file", proto_path.display().to_string()),
        ("splits", splits_path.display().to_string()),
        ("frames root", root.display().to_string()),
        ("layout", layout.name().to_string()),
        ("frame selection", selection.describe()),
        ("data root", ws.data_root.display().to_string()),
        ("device", ws.device.clone()),
    ];
    if let Some(sha) = &frames.weights_sha {
        extra.push(("weights sha256", sha.clone()));
    }
    if let Some(p) = &a.embeddings {
        extra.push(("embeddings", p.display().to_string()));
    }
    let provenance = collect(&extra);
    timings.push(Stage::new("total (build excluded)", t_all.elapsed().as_secs_f64(), ""));

    results.write_pair_scores_csv(&dir.join("pairs_scores.csv"))?;
    write_json(&dir.join("results.json"), &results_json(&results, &frames, &timings, &provenance)?)?;
    write_ytf_report(dir, &frames.report(&results, &timings, provenance, proto.published))?;
    set.commit()?;
    let mut s = headline_table(&results);
    if let Some(sp) = frames.speed_line() {
        s += &format!("{sp}\n");
    }
    s += &format!("{} alignment fallback(s); report in {}\n", frames.fallbacks.len(), out.display());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn data_root() -> PathBuf {
        std::env::var_os("FACEBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
    }

    fn protocol() -> YtfProtocol {
        YtfProtocol::read(&facebench_pairs::published::default_dir().join("ytf.toml")).unwrap()
    }

    fn frames(e: Embeddings, label: &str, fps: Option<f64>) -> Frames {
        Frames {
            features: e,
            label: label.into(),
            preprocessing: "p".into(),
            weights_sha: None,
            fallbacks: vec![],
            timings: vec![],
            align_fps: fps,
            embed_fps: fps,
        }
    }

    /// results.json has the LFW shape that `facebench report` reads, for a partial run.
    #[test]
    fn results_json_shape_of_a_partial_run() {
        let splits = protocol().read_splits(&data_root()).unwrap();
        let mut index = VideoIndex { root: "r".into(), layout: Layout::Frames, videos: Default::default() };
        let mut e = Embeddings::new(3);
        for (v, row) in [("Alek_Wek/1", [1.0f32, 0.0, 0.0]), ("Alek_Wek/4", [0.8, 0.6, 0.0])] {
            let id = facebench_ytf::VideoId::parse(v).unwrap();
            e.push(index.frame_key(&id, 7), &row).unwrap();
            index.videos.insert(id, vec![7]);
        }
        let r =
            evaluate(&splits, &index, FrameSelection::default(), &e, &Mode::ALL, &default_settings(), true).unwrap();
        let f = frames(e, "m", Some(4.0));
        let v = serde_json::to_value(results_json(&r, &f, &[], &[("k".into(), "v".into())]).unwrap()).unwrap();
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
        let rep = f.report(&r, &[], vec![], protocol().published);
        assert_eq!(rep.modes[0].genuine.len(), 1);
        assert!(rep.speed.unwrap().contains("2.0 frames/s from frame to feature"));
    }

    /// A full (synthetic) run writes every figure and an accuracy row per mode and rule.
    #[test]
    fn full_synthetic_run_writes_the_whole_report() {
        let splits = protocol().read_splits(&data_root()).unwrap();
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
        let r =
            evaluate(&splits, &index, FrameSelection::default(), &e, &Mode::ALL, &default_settings(), false).unwrap();
        let f = frames(e, "synthetic", None);
        let dir = std::env::temp_dir().join(format!("facebench-pipeline-ytf-{}", std::process::id()));
        write_ytf_report(&dir, &f.report(&r, &[], vec![], protocol().published)).unwrap();
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
        let v = serde_json::to_value(results_json(&r, &f, &[], &[]).unwrap()).unwrap();
        assert_eq!(v["results"]["accuracy"].as_array().unwrap().len(), 2);
        assert!(v["results"]["accuracy"][0]["mean"].as_f64().unwrap() > 0.9);
        assert!(v["results"].get("pairs").is_none(), "5000 pairs go to the CSV only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
