//! Every number compared, to 1e-9, with `scripts/reference_metrics.py`, which transcribes
//! the reference tools step by step (InsightFace, facenet, SphereFace evaluation.m,
//! FaceX-Zoo, scikit-learn) on seeded synthetic problems.

use facebench_metrics::*;
use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    hex_bytes(v.as_str().unwrap()).chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    hex_bytes(v.as_str().unwrap()).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(num).collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= TOL, "{what}: got {got:.17}, want {want:.17}");
}

struct Problem {
    name: String,
    sim: Vec<f64>,
    dist: Vec<f64>,
    is_same: Vec<bool>,
    folds: Vec<usize>,
    expected: Value,
}

fn problem(name: &str) -> Problem {
    let v = fixture(name);
    Problem {
        name: name.to_string(),
        sim: f64s(&v["similarity_f64hex"]),
        dist: f64s(&v["distance_f64hex"]),
        is_same: v["is_same"].as_array().unwrap().iter().map(|b| b.as_u64() == Some(1)).collect(),
        folds: v["folds"].as_array().unwrap().iter().map(|f| f.as_u64().unwrap() as usize).collect(),
        expected: v["expected"].clone(),
    }
}

const SCORE_PROBLEMS: [&str; 4] = ["realistic_6000", "ties_on_grid", "unbalanced_1000", "f32_grid_400"];

fn check_report(got: &FoldReport, want: &Value, what: &str) {
    let wf = want["folds"].as_array().unwrap();
    assert_eq!(got.folds.len(), wf.len(), "{what}: fold count");
    for (g, w) in got.folds.iter().zip(wf) {
        let k = g.fold;
        assert_eq!(k as u64, w["fold"].as_u64().unwrap(), "{what}: fold order");
        close(g.threshold, num(&w["threshold"]), &format!("{what} fold {k} threshold"));
        close(g.train_accuracy, num(&w["train_accuracy"]), &format!("{what} fold {k} train accuracy"));
        close(g.test_accuracy, num(&w["test_accuracy"]), &format!("{what} fold {k} test accuracy"));
        assert_eq!(g.n_test as u64, w["n_test"].as_u64().unwrap(), "{what} fold {k} n_test");
    }
    close(got.mean, num(&want["mean"]), &format!("{what} mean"));
    close(got.std_population, num(&want["std_population"]), &format!("{what} std_population"));
    close(got.std_sample, num(&want["std_sample"]), &format!("{what} std_sample"));
    close(got.sem, num(&want["sem"]), &format!("{what} sem"));
}

#[test]
fn ten_fold_rules_match_reference_tools() {
    for name in SCORE_PROBLEMS {
        let p = problem(name);
        for rule in Rule::ALL {
            let scores = if rule.lower_is_same() { &p.dist } else { &p.sim };
            let got = ten_fold(rule, FoldScores::Shared(scores), &p.is_same, &p.folds).unwrap();
            assert_eq!(got.rule, rule);
            check_report(&got, &p.expected["ten_fold"][rule.name()], &format!("{} {rule}", p.name));
        }
    }
}

#[test]
fn insightface_val_matches_calculate_val() {
    for name in SCORE_PROBLEMS {
        let p = problem(name);
        for want in p.expected["val"].as_array().unwrap() {
            let far = num(&want["far_target"]);
            let what = format!("{} VAL@FAR={far}", p.name);
            let got = tar_at_far_insightface(&p.dist, &p.is_same, &p.folds, far).unwrap();
            for (g, w) in got.folds.iter().zip(want["folds"].as_array().unwrap()) {
                close(g.threshold, num(&w["threshold"]), &format!("{what} fold {} threshold", g.fold));
                close(g.val, num(&w["val"]), &format!("{what} fold {} val", g.fold));
                close(g.far, num(&w["far"]), &format!("{what} fold {} far", g.fold));
            }
            close(got.val_mean, num(&want["val_mean"]), &format!("{what} val_mean"));
            close(got.val_std, num(&want["val_std"]), &format!("{what} val_std"));
            close(got.far_mean, num(&want["far_mean"]), &format!("{what} far_mean"));
        }
    }
}

#[test]
fn pooled_roc_auc_eer_match_sklearn() {
    for name in SCORE_PROBLEMS {
        let p = problem(name);
        let want = &p.expected["roc"];
        let r = roc(&p.sim, &p.is_same).unwrap();
        assert_eq!(r.far.len() as u64, want["n_points"].as_u64().unwrap(), "{name}: ROC points");
        assert!(r.thresholds[0].is_infinite() && r.far[0] == 0.0 && r.tar[0] == 0.0);
        let idx: Vec<usize> = want["index"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
        for (j, &i) in idx.iter().enumerate() {
            close(r.far[i], num(&want["far"][j]), &format!("{name} roc far[{i}]"));
            close(r.tar[i], num(&want["tar"][j]), &format!("{name} roc tar[{i}]"));
            close(r.thresholds[i], num(&want["thresholds"][j]), &format!("{name} roc threshold[{i}]"));
        }
        close(auc(&r), num(&want["auc"]), &format!("{name} auc"));
        close(auc(&r), num(&want["roc_auc_score"]), &format!("{name} roc_auc_score"));
        close(eer(&p.sim, &p.is_same).unwrap(), num(&p.expected["eer"]), &format!("{name} eer"));
    }
}

#[test]
fn tar_at_far_exact_matches_brute_force_including_not_measurable() {
    let mut not_measurable = 0;
    for name in SCORE_PROBLEMS {
        let p = problem(name);
        for want in p.expected["tar_at_far"].as_array().unwrap() {
            let far = num(&want["far_target"]);
            let what = format!("{name} TAR@FAR={far}");
            match tar_at_far_exact(&p.sim, &p.is_same, far).unwrap() {
                TarAtFar::Measured { tar, far: got_far, threshold } => {
                    assert_eq!(want["status"], "measured", "{what}");
                    close(tar, num(&want["tar"]), &what);
                    close(got_far, num(&want["far"]), &what);
                    assert!(got_far <= far, "{what}: FAR reached above target");
                    close(threshold, num(&want["threshold"]), &format!("{what} threshold"));
                }
                TarAtFar::NotMeasurable { far_target, negatives } => {
                    assert_eq!(want["status"], "not_measurable", "{what}");
                    assert_eq!(far_target, far);
                    assert_eq!(negatives as u64, want["negatives"].as_u64().unwrap());
                    not_measurable += 1;
                }
            }
        }
    }
    assert!(not_measurable >= 2, "fixtures should exercise NotMeasurable");
}

#[test]
fn fold_averaged_roc_matches_reference() {
    for name in SCORE_PROBLEMS {
        let p = problem(name);
        let want = &p.expected["fold_averaged"];
        let grid = nums(&want["grid"]);
        let got = roc_fold_averaged(&p.sim, &p.is_same, &p.folds, &grid).unwrap();
        for (j, g) in grid.iter().enumerate() {
            close(got.tar_mean[j], num(&want["mean"][j]), &format!("{name} mean TAR at {g}"));
            close(got.tar_min[j], num(&want["min"][j]), &format!("{name} min TAR at {g}"));
            close(got.tar_max[j], num(&want["max"][j]), &format!("{name} max TAR at {g}"));
        }
    }
}

fn check_scores(got: &[f64], want: &Value, what: &str) {
    close(got.iter().sum(), num(&want["sum"]), &format!("{what} sum"));
    for (j, w) in nums(&want["head"]).iter().enumerate() {
        close(got[j], *w, &format!("{what} [{j}]"));
    }
    let tail = nums(&want["tail"]);
    for (j, w) in tail.iter().enumerate() {
        let i = got.len() - tail.len() + j;
        close(got[i], *w, &format!("{what} [{i}]"));
    }
}

#[test]
fn feature_rules_match_sphereface_and_facenet() {
    let v = fixture("features_600x8");
    let dim = v["dim"].as_u64().unwrap() as usize;
    let left = f32s(&v["left_f32hex"]);
    let right = f32s(&v["right_f32hex"]);
    let is_same: Vec<bool> = v["is_same"].as_array().unwrap().iter().map(|b| b.as_u64() == Some(1)).collect();
    let folds: Vec<usize> = v["folds"].as_array().unwrap().iter().map(|f| f.as_u64().unwrap() as usize).collect();
    let e = &v["expected"];

    let sphere = mean_subtracted_cosines(&left, &right, dim, &folds).unwrap();
    for (k, s) in sphere.iter().enumerate() {
        check_scores(s, &e["sphereface_scores"][k], &format!("sphereface scores fold {k}"));
    }
    let rep = ten_fold(Rule::SphereFace, FoldScores::PerTestFold(&sphere), &is_same, &folds).unwrap();
    check_report(&rep, &e["sphereface"], "sphereface evaluation.m");

    let sq = squared_l2(&left, &right, dim).unwrap();
    check_scores(&sq, &e["squared_l2"], "squared_l2");
    assert_eq!(sq, facenet_distances(&left, &right, dim, FacenetMetric::SquaredL2).unwrap());
    let rep = ten_fold(Rule::FaceNet, FoldScores::Shared(&sq), &is_same, &folds).unwrap();
    check_report(&rep, &e["facenet_squared"], "facenet squared");

    let ang = facenet_distances(&left, &right, dim, FacenetMetric::Angular).unwrap();
    check_scores(&ang, &e["angular"], "facenet angular");
    let rep = ten_fold(Rule::FaceNet, FoldScores::Shared(&ang), &is_same, &folds).unwrap();
    check_report(&rep, &e["facenet_angular"], "facenet angular");

    let sq_mean = facenet_mean_subtracted_distances(&left, &right, dim, FacenetMetric::SquaredL2, &folds).unwrap();
    let rep = ten_fold(Rule::FaceNet, FoldScores::PerTestFold(&sq_mean), &is_same, &folds).unwrap();
    check_report(&rep, &e["facenet_squared_mean"], "facenet squared subtract_mean");

    let ang_mean = facenet_mean_subtracted_distances(&left, &right, dim, FacenetMetric::Angular, &folds).unwrap();
    for (k, s) in ang_mean.iter().enumerate() {
        check_scores(s, &e["angular_mean_scores"][k], &format!("facenet angular subtract_mean fold {k}"));
    }
    let rep = ten_fold(Rule::FaceNet, FoldScores::PerTestFold(&ang_mean), &is_same, &folds).unwrap();
    check_report(&rep, &e["facenet_angular_mean"], "facenet angular subtract_mean");
}

#[test]
fn megaface_cmc_matches_reference_with_ties() {
    let v = fixture("megaface_cmc_ties");
    let ids: Vec<usize> = v["probe_ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
    let pp = f64s(&v["probe_scores_f64hex"]);
    let pd = f64s(&v["distractor_scores_f64hex"]);
    let max_rank = v["max_rank"].as_u64().unwrap() as usize;
    let want = nums(&v["expected"]["cmc"]);
    let brute = megaface_cmc(&ids, &pp, &pd, max_rank).unwrap();
    let counts = megaface_counts(&ids, &pp, &pd).unwrap();
    assert_eq!(counts.len() as u64, v["expected"]["pairs"].as_u64().unwrap());
    let streamed = cmc_from_counts(&counts, max_rank).unwrap();
    for r in 0..max_rank {
        close(brute[r], want[r], &format!("brute-force CMC rank {}", r + 1));
        close(streamed[r], want[r], &format!("counts CMC rank {}", r + 1));
    }
    // Ranks beyond the distractor count always succeed.
    assert_eq!(streamed[max_rank - 1], 1.0);
    // The grid makes mate/distractor ties common, and they must matter.
    let ties = ids.iter().enumerate().any(|(p, _)| {
        let m = pd.len() / ids.len();
        (0..ids.len()).any(|g| g != p && ids[g] == ids[p] && pd[p * m..(p + 1) * m].contains(&pp[p * ids.len() + g]))
    });
    assert!(ties, "fixture should contain mate scores tied with distractors");
}
