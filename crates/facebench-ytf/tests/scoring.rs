//! Each video scoring mode against a direct computation (nested loops in f64) on small random
//! features, and the evaluation on synthetic features over the real 5,000 pairs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use facebench_core::Embeddings;
use facebench_ytf::{
    default_settings, evaluate, pair_stats, score_video_pairs, FrameSelection, Layout, Mode, Splits, VideoFeatures,
    VideoIndex,
};

/// xorshift64*: a fixed, dependency-free stream of uniform numbers in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    v.iter().map(|&x| f64::from(x) / n).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The reference: every mode computed the plain way from raw frame features.
fn direct(a: &[Vec<f32>], b: &[Vec<f32>], mode: Mode) -> f64 {
    let ua: Vec<Vec<f64>> = a.iter().map(|v| unit(v)).collect();
    let ub: Vec<Vec<f64>> = b.iter().map(|v| unit(v)).collect();
    let all: Vec<f64> = ua.iter().flat_map(|x| ub.iter().map(move |y| dot(x, y))).collect();
    match mode {
        Mode::MeanFeature => {
            let mean = |u: &[Vec<f64>]| {
                let mut m = vec![0.0; u[0].len()];
                for v in u {
                    for (s, x) in m.iter_mut().zip(v) {
                        *s += x;
                    }
                }
                let n = m.iter().map(|x| x * x).sum::<f64>().sqrt();
                m.iter().map(|x| x / n).collect::<Vec<f64>>()
            };
            dot(&mean(&ua), &mean(&ub))
        }
        Mode::MeanPair => all.iter().sum::<f64>() / all.len() as f64,
        Mode::MinPair => all.iter().cloned().fold(f64::INFINITY, f64::min),
        Mode::MaxPair => all.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Videos of 1, 3, 64, 65 and 150 frames: single frames and tiles cut at the 64-row blocks.
fn random_videos(dim: usize) -> Vec<Vec<Vec<f32>>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    [1usize, 3, 64, 65, 150].iter().map(|&n| (0..n).map(|_| rng.vec(dim)).collect()).collect()
}

#[test]
fn every_mode_matches_a_direct_computation() {
    let dim = 24;
    let videos = random_videos(dim);
    let mut feats = VideoFeatures::new(dim);
    for (i, v) in videos.iter().enumerate() {
        assert_eq!(feats.push(&format!("v{i}"), v.iter().map(Vec::as_slice)).unwrap(), i);
    }
    let pairs: Vec<(usize, usize)> = (0..videos.len()).flat_map(|a| (0..videos.len()).map(move |b| (a, b))).collect();
    for mode in Mode::ALL {
        let got = score_video_pairs(&feats, &pairs, mode).unwrap();
        for (k, &(a, b)) in pairs.iter().enumerate() {
            let want = direct(&videos[a], &videos[b], mode);
            assert!((got[k] - want).abs() < 2e-6, "{mode} ({a}, {b}): {} vs direct {want}", got[k]);
        }
    }
    // The modes really differ (a mode mix-up would not pass the loop above anyway).
    let s: Vec<f64> = Mode::ALL.iter().map(|&m| score_video_pairs(&feats, &[(3, 4)], m).unwrap()[0]).collect();
    assert!(s[2] < s[1] && s[1] < s[3], "min < mean < max: {s:?}");
    // mean-pair is the dot product of the un-renormalised mean features, which is smaller in
    // magnitude than the cosine of the re-normalised ones.
    assert!(s[1].abs() < s[0].abs(), "{s:?}");
}

#[test]
fn pair_statistics_do_not_depend_on_threads() {
    let dim = 16;
    let videos = random_videos(dim);
    let mut feats = VideoFeatures::new(dim);
    for (i, v) in videos.iter().enumerate() {
        feats.push(&format!("v{i}"), v.iter().map(Vec::as_slice)).unwrap();
    }
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let s = pair_stats(&feats, 4, 3).unwrap();
            (s.sum().to_bits(), s.min().unwrap().to_bits(), s.max().unwrap().to_bits(), s.count())
        })
    };
    let one = run(1);
    assert_eq!(one.3, 150 * 65);
    for t in [2, 3, 8] {
        assert_eq!(run(t), one, "{t} threads");
    }
}

#[test]
fn bad_frames_are_errors_naming_the_video() {
    let mut feats = VideoFeatures::new(3);
    let e = feats.push("video A/1", [&[1.0f32, 0.0, 0.0][..], &[0.0, 0.0, 0.0][..]]).unwrap_err().to_string();
    assert!(e.contains("video A/1, frame 2") && e.contains("zero"), "{e}");
    let e = feats.push("video A/2", [&[1.0f32, 0.0][..]]).unwrap_err().to_string();
    assert!(e.contains("frame 1") && e.contains("2 values, expected 3"), "{e}");
    assert!(feats.push("video A/3", std::iter::empty()).is_err());
    assert!(feats.is_empty(), "failed pushes leave nothing behind");
    feats.push("ok", [&[0.0f32, 2.0, 0.0][..]]).unwrap();
    assert!(score_video_pairs(&feats, &[(0, 1)], Mode::MaxPair).is_err());
    assert_eq!("max-pair".parse::<Mode>().unwrap(), Mode::MaxPair);
    assert!("max".parse::<Mode>().is_err());
}

/// The repository's `protocols/ytf.toml`.
fn protocol() -> facebench_ytf::YtfProtocol {
    facebench_ytf::YtfProtocol::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/ytf.toml")).unwrap()
}

fn data_root() -> PathBuf {
    std::env::var_os("FACEBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// Synthetic frame features for every video of the real splits.txt: a per-person direction
/// plus per-frame noise. Same-person videos then score high, different people near 0.
fn synthetic(splits: &Splits, noise: f32) -> (VideoIndex, Embeddings) {
    let dim = 32;
    let mut rng = Rng(7);
    let mut person: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut index = VideoIndex { root: "synthetic".into(), layout: Layout::Frames, videos: BTreeMap::new() };
    let mut e = Embeddings::new(dim);
    for v in splits.videos() {
        let base = person.entry(v.name.clone()).or_insert_with(|| rng.vec(dim)).clone();
        let frames: Vec<u32> = (1..=4).collect();
        for &f in &frames {
            let row: Vec<f32> = base.iter().map(|b| b + noise * rng.next()).collect();
            e.push(index.frame_key(&v, f), &row).unwrap();
        }
        index.videos.insert(v, frames);
    }
    (index, e)
}

#[test]
fn evaluation_over_the_real_splits_on_synthetic_features() {
    let splits = protocol().read_splits(&data_root()).unwrap();
    let (index, e) = synthetic(&splits, 0.6);
    let settings = default_settings();
    let r = evaluate(&splits, &index, FrameSelection::default(), &e, &Mode::ALL, &settings, false).unwrap();
    assert!(!r.partial && r.partial_line().is_none());
    assert_eq!((r.pairs_evaluated, r.videos_found, r.videos_named, r.frames_used), (5000, 3226, 3226, 4 * 3226));
    for m in &r.modes {
        let metrics = m.metrics.as_ref().unwrap_or_else(|| panic!("{}: {:?}", m.mode, m.not_measurable));
        assert_eq!(metrics.accuracy.len(), 2);
        for rep in &metrics.accuracy {
            assert_eq!(rep.folds.len(), 10);
            assert!(rep.mean > 0.9, "{} {}: {}", m.mode, rep.rule, rep.mean);
            assert_eq!(rep.folds.iter().map(|f| f.n_test).sum::<usize>(), 5000);
        }
        assert!(metrics.auc > 0.95 && metrics.auc <= 1.0);
    }
    // Pure noise: chance accuracy, so a scorer that leaked labels would show here.
    let (index, e) = synthetic(&splits, 1e4);
    let r = evaluate(&splits, &index, FrameSelection::default(), &e, &[Mode::MeanFeature], &settings, false).unwrap();
    let acc = r.modes[0].metrics.as_ref().unwrap().accuracy[0].mean;
    assert!((0.45..0.56).contains(&acc), "noise accuracy {acc}");
    // The JSON has LFW's field names at the top of each mode.
    let v = serde_json::to_value(&r.modes[0]).unwrap();
    for k in ["mode", "accuracy", "auc", "eer", "roc", "roc_folds", "tar_at_far"] {
        assert!(v.get(k).is_some(), "{k} missing in {v:.200}");
    }

    // Drop the videos of split 3 (YTF splits are identity-disjoint): partial, and honest about it.
    let (mut index, e) = synthetic(&splits, 0.6);
    let keep: Vec<_> =
        splits.pairs.iter().filter(|p| p.split != 3).flat_map(|p| [p.left.clone(), p.right.clone()]).collect();
    index.videos.retain(|v, _| keep.contains(v));
    let err = evaluate(&splits, &index, FrameSelection::default(), &e, &[Mode::MeanFeature], &settings, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("of the 3226 videos") && err.contains("split 3 pair"), "{err}");
    let r = evaluate(&splits, &index, FrameSelection::default(), &e, &[Mode::MeanFeature], &settings, true).unwrap();
    assert!(r.partial && r.pairs_evaluated < 5000 && r.pairs_evaluated >= 4500, "{}", r.pairs_evaluated);
    assert!(r.partial_line().unwrap().contains(&format!("{} of 5000 pairs", r.pairs_evaluated)));
    assert!(r.modes[0].metrics.is_none());
    let why = r.modes[0].not_measurable.as_ref().unwrap();
    assert!(why.contains("split 3: no pairs"), "{why}");
    assert_eq!(r.pairs.len(), r.pairs_evaluated);
}
