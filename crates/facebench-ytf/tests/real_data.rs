//! The real YTF files under the data root: `splits.txt`, the `frame_images_DB_subset` frames
//! and labels, an `aligned_images_DB` tree built from those frames, and the one complete pair
//! (`9, 139, Alek_Wek/1, Alek_Wek/4, 1`) aligned and embedded end to end with the real models.

use std::path::{Path, PathBuf};

use facebench_core::store::AppendStore;
use facebench_core::Embeddings;
use facebench_detect::read_alignments;
use facebench_extract::{extract, store_meta, Job, Recipe};
use facebench_image::Preprocess;
use facebench_ytf::{
    align_cached, default_settings, evaluate, score_video_pairs, Coverage, FrameSelection, LabeledFaces, Layout, Mode,
    Search, Splits, VideoFeatures, VideoId, VideoIndex,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's `protocols/ytf.toml`.
fn protocol() -> facebench_ytf::YtfProtocol {
    facebench_ytf::YtfProtocol::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/ytf.toml")).unwrap()
}

fn data_root() -> PathBuf {
    std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/data"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("FACEBENCH_MODELS").map(PathBuf::from).unwrap_or_else(|| repo().join("models"))
}

fn subset() -> PathBuf {
    data_root().join("ytf/frame_images_DB_subset")
}

fn scratch_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("facebench-ytf-{name}-{}", std::process::id()))
}

/// A fresh temporary folder (removed by the test when it passes).
fn scratch(name: &str) -> PathBuf {
    let d = scratch_path(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vid(s: &str) -> VideoId {
    VideoId::parse(s).unwrap()
}

#[test]
fn real_splits_txt() {
    let s = protocol().read_splits(&data_root()).unwrap();
    assert_eq!(s.pairs.len(), 5000);
    assert_eq!(s.videos().len(), 3226);
    for (i, p) in s.pairs.iter().enumerate() {
        assert_eq!((p.split, p.pair, p.line), (i / 500 + 1, i % 500 + 1, i + 2));
        assert_eq!(p.is_same, p.pair <= 250, "line {}", p.line);
    }
    let p = &s.pairs[4138];
    assert_eq!(
        (p.split, p.pair, p.left.to_string(), p.right.to_string(), p.is_same),
        (9, 139, "Alek_Wek/1".into(), "Alek_Wek/4".into(), true)
    );
    // The copy without a header is refused: the header is checked, not skipped.
    let text = std::fs::read_to_string(data_root().join("ytf/splits.txt")).unwrap();
    let headless: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(Splits::parse(&headless, Path::new("s.txt"), &protocol().splits)
        .unwrap_err()
        .to_string()
        .contains("s.txt:1: expected the header"));
}

#[test]
fn frames_layout_of_the_real_subset() {
    let splits = protocol().read_splits(&data_root()).unwrap();
    assert_eq!(Layout::of_folder(&subset()), Some(Layout::Frames));
    assert_eq!(Layout::Frames.default_root(&data_root().join("ytf")), subset());
    let index = VideoIndex::scan(&subset(), Layout::Frames, &splits.videos()).unwrap();
    let counts: Vec<(String, usize)> = index.videos.iter().map(|(v, f)| (v.to_string(), f.len())).collect();
    assert_eq!(
        counts,
        [
            ("Aaron_Guiel/5", 33),
            ("Agbani_Darego/0", 46),
            ("Aishwarya_Rai/0", 19),
            ("Albert_Brooks/0", 55),
            ("Alberto_Ruiz_Gallardon/0", 50),
            ("Alek_Wek/1", 36),
            ("Alek_Wek/4", 70),
            ("Alexandre_Despatie/3", 29),
        ]
        .map(|(v, n)| (v.to_string(), n))
    );
    // Frames sorted by number, not by name: 4.74 .. 4.350 every 4th.
    assert_eq!(&index.videos[&vid("Alek_Wek/4")][..3], &[74, 78, 82]);
    assert_eq!(index.frame_key(&vid("Alek_Wek/4"), 74), "Alek_Wek/4/4.74.jpg");

    let cov = Coverage::of(&splits, &index);
    assert_eq!((cov.videos_named, cov.videos_found), (3226, 8));
    assert_eq!(cov.complete_pairs, vec![4138]);
    let e = cov.require_complete(&splits, &index).unwrap_err().to_string();
    assert!(e.contains("found 8 of the 3226 videos") && e.contains("3425"), "{e}");
    assert!(e.contains("split 1 pair 1") && e.contains("needs Sadie_Frost/1"), "{e}");

    // Per-video label files inside the person folders; every present frame is labelled.
    let labels = LabeledFaces::read_for(&subset(), index.videos.keys().map(|v| v.name.as_str())).unwrap();
    assert_eq!(labels.files().len(), 8);
    assert_eq!(labels.len(), 132 + 184 + 76 + 217 + 197 + 141 + 279 + 178);
    let b = labels.get("Alek_Wek/1/1.189.jpg").unwrap();
    assert_eq!((b.cx, b.cy, b.w, b.h), (335.0, 88.0, 51.0, 51.0));
    for (v, frames) in &index.videos {
        for &f in frames {
            assert!(labels.get(&index.frame_key(v, f)).is_some(), "{v} frame {f}");
        }
    }
    // The official per-person file at the root is read too.
    let dir = scratch("labels");
    std::fs::write(dir.join("P.labeled_faces.txt"), "P\\0\\0.1.jpg,0,10,20,8,8,0.0,1\n").unwrap();
    let l = LabeledFaces::read_for(&dir, ["P"]).unwrap();
    assert_eq!(l.get("P/0/0.1.jpg").unwrap().xywh(), [6.0, 16.0, 8.0, 8.0]);
    assert!(LabeledFaces::read_for(&dir, ["Q"]).unwrap_err().to_string().contains("no labelled face boxes for Q"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An `aligned_images_DB` tree of the complete pair: the first `n` selected frames of each
/// video, cropped around the labelled box (margin 1: three times its size), like YTF's aligned crops.
fn aligned_tree(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("aligned_images_DB");
    let splits = protocol().read_splits(&data_root()).unwrap();
    let frames = VideoIndex::scan(&subset(), Layout::Frames, &splits.videos()).unwrap();
    let labels = LabeledFaces::read_for(&subset(), ["Alek_Wek"]).unwrap();
    for v in [vid("Alek_Wek/1"), vid("Alek_Wek/4")] {
        let out = root.join(&v.name).join(v.video.to_string());
        std::fs::create_dir_all(&out).unwrap();
        for &f in frames.videos[&v].iter().take(n) {
            let key = frames.frame_key(&v, f);
            let img = image::open(subset().join(&key)).unwrap().to_rgb8();
            let [x, y, w, h] = labels.get(&key).unwrap().search_region(1.0, img.width(), img.height()).unwrap();
            let crop = image::imageops::crop_imm(&img, x, y, w, h).to_image();
            crop.save(out.join(Layout::Aligned.frame_file(v.video, f))).unwrap();
        }
    }
    root
}

#[test]
fn aligned_layout_from_real_frames() {
    let dir = scratch("aligned");
    let root = aligned_tree(&dir, 5);
    assert_eq!(Layout::of_folder(&root), Some(Layout::Aligned));
    let wanted = [vid("Alek_Wek/1"), vid("Alek_Wek/4"), vid("Sadie_Frost/1")];
    let index = VideoIndex::scan(&root, Layout::Aligned, &wanted).unwrap();
    assert_eq!(index.videos.len(), 2);
    assert_eq!(index.videos[&vid("Alek_Wek/4")], vec![74, 78, 82, 86, 90]);
    assert_eq!(index.frame_key(&vid("Alek_Wek/4"), 74), "Alek_Wek/4/aligned_detect_4.74.jpg");
    let sel = FrameSelection { stride: 2, max_frames: Some(2) };
    assert_eq!(index.selected_keys(&vid("Alek_Wek/1"), &sel).len(), 2);
    // A frame named the other layout's way is an error naming it.
    std::fs::write(root.join("Alek_Wek/1/1.5.jpg"), b"x").unwrap();
    let e = VideoIndex::scan(&root, Layout::Aligned, &wanted).unwrap_err().to_string();
    assert!(e.contains("1.5.jpg") && e.contains("aligned_detect_1.123.jpg"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Aligns (cached) and embeds `keys` with faceapi-resnet; returns the frame features.
fn align_and_embed(root: &Path, keys: &[String], search: Search, work: &Path) -> (Embeddings, usize) {
    let device = candle_core::Device::Cpu;
    let cache = work.join("align.jsonl");
    let o = align_cached(
        root,
        keys,
        search,
        &cache,
        || {
            facebench_detect::Detector::load(models_dir(), &device)
                .map_err(|e| facebench_ytf::Error::Invalid(e.to_string()))
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(o.aligned, keys.len());
    // A second pass finds everything cached (and must not need the detector).
    let again =
        align_cached(root, keys, search, &cache, || panic!("detector loaded for a cached run"), |_| {}).unwrap();
    assert_eq!((again.aligned, again.already), (0, keys.len()));
    let (faces, fallbacks) = read_alignments(&cache).unwrap();
    let model = facebench_model::load("faceapi-resnet", &models_dir(), &device).unwrap();
    let recipe = Recipe { preprocess: Preprocess::faceapi_resnet(), uses_alignment: true };
    let job = Job { model: model.as_ref(), recipe: &recipe, root, batch: 16, flip: false, skip_bad: false };
    let path = work.join("frames.fbs");
    let mut store = AppendStore::create_or_open(&path, &store_meta(&job, false)).unwrap();
    let s = extract(&job, keys, &faces, &mut store, None, &|_| {}).unwrap();
    assert_eq!(s.computed, keys.len());
    (AppendStore::read(&path).unwrap().1, fallbacks.len())
}

#[test]
fn the_complete_real_pair_end_to_end_in_both_layouts() {
    let splits = protocol().read_splits(&data_root()).unwrap();
    let sel = FrameSelection { stride: 2, max_frames: Some(4) };
    let modes = Mode::ALL;

    // Frames layout: the labelled box (default margin) is the detector's search region.
    let work = scratch("e2e-frames");
    let index = VideoIndex::scan(&subset(), Layout::Frames, &splits.videos()).unwrap();
    let labels = LabeledFaces::read_for(&subset(), index.videos.keys().map(|v| v.name.as_str())).unwrap();
    let other = vid("Albert_Brooks/0");
    let mut keys = Vec::new();
    for v in [vid("Alek_Wek/1"), vid("Alek_Wek/4"), other.clone()] {
        keys.extend(index.selected_keys(&v, &sel));
    }
    assert_eq!(keys.len(), 12);
    let search = Search::labelled(&labels, facebench_ytf::DEFAULT_MARGIN);
    let (frames, fallbacks) = align_and_embed(&subset(), &keys, search, &work);
    assert!(fallbacks <= 1, "{fallbacks} of 12 frames without a detection in the labelled region");
    // Every chosen face lies on the labelled face.
    let (faces, _) = read_alignments(&work.join("align.jsonl")).unwrap();
    for k in &keys {
        let b = faces[k].bbox.unwrap();
        let l = labels.get(k).unwrap();
        let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
        assert!((cx - l.cx).abs() < l.w * 0.5 && (cy - l.cy).abs() < l.h * 0.5, "{k}: face {b:?} vs label {l:?}");
    }

    let err = evaluate(&splits, &index, sel, &frames, &modes, &default_settings(), false).unwrap_err().to_string();
    assert!(err.contains("found 8 of the 3226 videos") && err.contains("split 1 pair 1"), "{err}");
    let r = evaluate(&splits, &index, sel, &frames, &modes, &default_settings(), true).unwrap();
    assert_eq!((r.pairs_evaluated, r.pairs_total, r.frames_used), (1, 5000, 8));
    assert!(r.partial_line().unwrap().starts_with("PARTIAL EVALUATION: 1 of 5000 pairs"));
    let row = &r.pairs[0];
    assert_eq!((row.split, row.pair, row.frames_left, row.frames_right), (9, 139, 4, 4));
    for m in &r.modes {
        assert!(m.metrics.is_none());
        assert!(m.not_measurable.as_ref().unwrap().contains("cannot be measured on 1 pair"));
    }

    // The same person across two videos scores far above a different person.
    let mut feats = VideoFeatures::new(frames.dim());
    for v in [vid("Alek_Wek/1"), vid("Alek_Wek/4"), other] {
        let rows: Vec<&[f32]> = index.selected_keys(&v, &sel).iter().map(|k| frames.get(k).unwrap()).collect();
        feats.push(&v.to_string(), rows).unwrap();
    }
    let same = score_video_pairs(&feats, &[(0, 1)], Mode::MeanFeature).unwrap()[0];
    let diff = score_video_pairs(&feats, &[(0, 2), (1, 2)], Mode::MeanFeature).unwrap();
    assert!((same - row.scores["mean-feature"]).abs() < 1e-9);
    // faceapi-resnet's raw 128-D features all have high cosines (dlib thresholds euclidean
    // distance), so compare cosine distances: a different person is clearly farther.
    assert!(same > 0.9 && diff.iter().all(|&d| 1.0 - d > 1.3 * (1.0 - same)), "same {same}, different {diff:?}");

    // Aligned layout: crops of the same frames, searched whole; the pair still matches.
    let work = scratch("e2e-aligned");
    let root = aligned_tree(&work, 8);
    let index = VideoIndex::scan(&root, Layout::Aligned, &splits.videos()).unwrap();
    let keys: Vec<String> =
        [vid("Alek_Wek/1"), vid("Alek_Wek/4")].iter().flat_map(|v| index.selected_keys(v, &sel)).collect();
    let (frames_a, fallbacks) = align_and_embed(&root, &keys, Search::whole(), &work);
    assert!(fallbacks <= 1, "{fallbacks} aligned crops without a detection");
    let r = evaluate(&splits, &index, sel, &frames_a, &modes, &default_settings(), true).unwrap();
    assert_eq!(r.pairs_evaluated, 1);
    let s = r.pairs[0].scores["mean-feature"];
    assert!(s > 0.9, "aligned-layout score {s}");
    // Same frames through both layouts give nearly the same embedding.
    let cos = |a: &[f32], b: &[f32]| {
        let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        d / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let c =
        cos(frames.get("Alek_Wek/1/1.189.jpg").unwrap(), frames_a.get("Alek_Wek/1/aligned_detect_1.189.jpg").unwrap());
    assert!(c > 0.9, "frame 1.189 through the two layouts: cosine {c}");
    for d in [scratch_path("e2e-frames"), work] {
        let _ = std::fs::remove_dir_all(d);
    }
}
