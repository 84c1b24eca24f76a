//! Hand-computed tiny cases and the error paths.

use facebench_metrics::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn insightface_threshold_is_first_grid_value_strictly_above() {
    // fold 0: same d = grid value 50, diff 1.5; fold 1: same d = grid value 70, diff 1.2.
    // (Grid value i is i * 0.01 as NumPy's arange computes it: 70 * 0.01 != 0.7.)
    let d = [50.0 * 0.01, 1.5, 70.0 * 0.01, 1.2];
    let same = [true, false, true, false];
    let r = ten_fold(Rule::InsightFace, FoldScores::Shared(&d), &same, &[0, 0, 1, 1]).unwrap();
    // Test fold 0, trained on fold 1: d < d is false, so the first perfect threshold is 0.71.
    assert_eq!(r.folds[0].threshold, 71.0 * 0.01);
    assert_eq!((r.folds[0].train_accuracy, r.folds[0].test_accuracy), (1.0, 1.0));
    // Test fold 1, trained on fold 0: first perfect threshold 0.51; then 0.7 < 0.51 fails.
    assert_eq!(r.folds[1].threshold, 51.0 * 0.01);
    assert_eq!(r.folds[1].test_accuracy, 0.5);
    assert!(close(r.mean, 0.75) && close(r.std_population, 0.25));
    assert!(close(r.std_sample, 0.125f64.sqrt()) && close(r.sem, 0.25));
    assert_eq!(r.folds[1].n_test, 2);
    assert_eq!(r.tool_plus_minus(), Some(r.std_population));
}

#[test]
fn sphereface_takes_the_mean_of_all_best_thresholds() {
    let s = [0.3, -0.2, 0.3, -0.2, 0.1, 0.04];
    let same = [true, false, true, false, true, false];
    let r = ten_fold(Rule::SphereFace, FoldScores::Shared(&s), &same, &[0, 0, 1, 1, 2, 2]).unwrap();
    // Test fold 2: every k/10000 strictly inside (-0.2, 0.3) is perfect: mean = 0.05.
    assert!(close(r.folds[2].threshold, 0.05), "{}", r.folds[2].threshold);
    // 0.1 > 0.05 right; 0.04 < 0.05 right.
    assert_eq!(r.folds[2].test_accuracy, 1.0);
    assert_eq!(r.tool_plus_minus(), None);
}

#[test]
fn sphereface_score_equal_to_threshold_is_wrong_both_ways() {
    // Training folds: same {1.0}, diff {-1.0} -> best thresholds -0.9999..0.9999, mean 0
    // (up to summation rounding, far below 1e-12).
    let s = [1.0, -1.0, 1.0, -1.0, 0.5, -0.5];
    let same = [true, false, true, false, true, false];
    let folds = [0, 0, 1, 1, 2, 2];
    let r = ten_fold(Rule::SphereFace, FoldScores::Shared(&s), &same, &folds).unwrap();
    let thr = r.folds[2].threshold;
    assert!(thr.abs() < 1e-12);
    // Put a test score exactly on the chosen threshold: wrong whether same or different.
    for label in [true, false] {
        let s2 = [1.0, -1.0, 1.0, -1.0, thr, -0.5];
        let same2 = [true, false, true, false, label, false];
        let r2 = ten_fold(Rule::SphereFace, FoldScores::Shared(&s2), &same2, &folds).unwrap();
        assert_eq!(r2.folds[2].threshold, thr);
        assert_eq!(r2.folds[2].test_accuracy, 0.5, "label {label}");
    }
}

#[test]
fn facexzoo_threshold_lies_on_its_grid() {
    let s = [0.8, 0.0, 0.6, 0.2, 0.7, 0.1];
    let same = [true, false, true, false, true, false];
    let r = ten_fold(Rule::FaceXZoo, FoldScores::Shared(&s), &same, &[0, 0, 1, 1, 2, 2]).unwrap();
    // Test fold 2: train = {0.8 s, 0.0 d, 0.6 s, 0.2 d}; grid 0 + i * 0.8/1000, i >= 1.
    let step = f64::from(0.8f32) / 1000.0;
    let t = r.folds[2].threshold;
    let i = (t / step).round();
    assert!(close(t, step * i) && (1.0..=1000.0).contains(&i));
    // First i with tpr - fpr = 1: the first threshold not below 0.2 (in f32).
    assert!((t as f32) >= 0.2f32 && ((t - step) as f32) < 0.2f32, "{t}");
    assert_eq!(r.folds[2].test_accuracy, 1.0);
    // FaceX-Zoo's "±" is the SEM.
    assert!(close(r.sem, r.std_sample / 3f64.sqrt()));
    assert_eq!(r.tool_plus_minus(), Some(r.sem));
}

#[test]
fn exact_rule_takes_the_smallest_best_midpoint() {
    // Train (fold 1): 0.1 d, 0.5 s, 0.5 d, 0.9 s. Cuts: below all 2/4; after 0.1 3/4 (thr 0.3);
    // after 0.5 3/4 again (thr 0.7, not taken: smallest wins); after 0.9 2/4.
    let s = [0.1, 0.5, 0.5, 0.9, 0.35, 0.2];
    let same = [false, true, false, true, true, false];
    let r = ten_fold(Rule::Exact, FoldScores::Shared(&s), &same, &[1, 1, 1, 1, 0, 0]).unwrap();
    assert!(close(r.folds[0].threshold, 0.3));
    assert_eq!(r.folds[0].train_accuracy, 0.75);
    assert_eq!(r.folds[0].test_accuracy, 1.0);
}

#[test]
fn per_test_fold_scores_are_used_for_their_fold_only() {
    let same = [true, false, true, false, true, false];
    let folds = [0, 0, 1, 1, 2, 2];
    let per = vec![
        vec![0.9, 0.1, 0.8, 0.2, 0.6, 0.5],
        vec![0.1, 0.9, 0.3, 0.2, 0.1, 0.7],
        vec![0.4, 0.45, 0.8, 0.2, 0.3, 0.35],
    ];
    let r = ten_fold(Rule::Exact, FoldScores::PerTestFold(&per), &same, &folds).unwrap();
    let mut differs = false;
    for k in 0..3 {
        let shared = ten_fold(Rule::Exact, FoldScores::Shared(&per[k]), &same, &folds).unwrap();
        assert_eq!(r.folds[k], shared.folds[k], "fold {k}");
        let other = ten_fold(Rule::Exact, FoldScores::Shared(&per[(k + 1) % 3]), &same, &folds).unwrap();
        differs |= other.folds[k] != r.folds[k];
    }
    assert!(differs, "the vectors should give different fold results");
}

#[test]
fn ten_fold_errors_are_clear() {
    let s = [0.1, 0.2, 0.3, 0.4];
    let same = [true, false, true, false];
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&s[..3]), &same, &[0, 0, 1, 1]).unwrap_err();
    assert!(e.to_string().contains("length mismatch"), "{e}");
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&s), &same, &[0, 0, 1]).unwrap_err();
    assert!(matches!(e, MetricsError::LengthMismatch { what: "folds", .. }), "{e}");
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&s), &same, &[0, 0, 2, 2]).unwrap_err();
    assert_eq!(e, MetricsError::EmptyFold { fold: 1, n_folds: 3 });
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&s), &same, &[0, 0, 0, 0]).unwrap_err();
    assert_eq!(e, MetricsError::TooFewFolds(1));
    // Fold 1 holds both same pairs: training for test fold 0 has no different pairs.
    let e =
        ten_fold(Rule::InsightFace, FoldScores::Shared(&s), &[true, false, true, false], &[1, 0, 1, 0]).unwrap_err();
    assert_eq!(e, MetricsError::TrainingSplitLacks { fold: 0, missing: "different" });
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&s), &[true; 4], &[0, 0, 1, 1]).unwrap_err();
    assert_eq!(e, MetricsError::MissingClass("different"));
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&[0.1, f64::NAN, 0.3, 0.4]), &same, &[0, 0, 1, 1]).unwrap_err();
    assert!(e.to_string().contains("pair 1"), "{e}");
    let per = vec![vec![0.1; 4]];
    let e = ten_fold(Rule::SphereFace, FoldScores::PerTestFold(&per), &same, &[0, 0, 1, 1]).unwrap_err();
    assert!(e.to_string().contains("PerTestFold"), "{e}");
    let e = ten_fold(Rule::Exact, FoldScores::Shared(&[]), &[], &[]).unwrap_err();
    assert_eq!(e, MetricsError::Empty);
}

#[test]
fn roc_auc_eer_by_hand() {
    // same {0.9, 0.4}, diff {0.6, 0.1}.
    let s = [0.9, 0.6, 0.4, 0.1];
    let same = [true, false, true, false];
    let r = roc(&s, &same).unwrap();
    assert_eq!(r.far, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(r.tar, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(&r.thresholds[1..], &[0.9, 0.6, 0.4, 0.1]);
    assert!(close(auc(&r), 0.75));
    assert!(close(eer(&s, &same).unwrap(), 0.5));
    // same {0.9, 0.8, 0.3}, diff {0.7, 0.2}: the crossing is inside the segment
    // (0, 2/3)-(0.5, 2/3): FAR = FRR = 1/3.
    let s = [0.9, 0.8, 0.3, 0.7, 0.2];
    let same = [true, true, true, false, false];
    assert!(close(eer(&s, &same).unwrap(), 1.0 / 3.0));
    // Ties between a same and a different score make one diagonal ROC step.
    let r = roc(&[0.5, 0.5], &[true, false]).unwrap();
    assert_eq!((r.far.clone(), r.tar.clone()), (vec![0.0, 1.0], vec![0.0, 1.0]));
    assert!(close(auc(&r), 0.5));
    assert_eq!(roc(&[0.5], &[true]).unwrap_err(), MetricsError::MissingClass("different"));
    assert!(roc(&[0.5, 0.2], &[true]).is_err());
}

#[test]
fn tar_at_far_exact_by_hand() {
    let s = [0.1, 0.2, 0.3, 0.25, 0.35, 0.5];
    let same = [false, false, false, true, true, true];
    assert_eq!(tar_at_far_exact(&s, &same, 0.1).unwrap(), TarAtFar::NotMeasurable { far_target: 0.1, negatives: 3 });
    // k = 1 false accept allowed (also at exactly 1/3): threshold = 2nd largest negative.
    for far in [0.34, 1.0 / 3.0] {
        assert_eq!(
            tar_at_far_exact(&s, &same, far).unwrap(),
            TarAtFar::Measured { tar: 1.0, far: 1.0 / 3.0, threshold: 0.2 }
        );
    }
    // Same-score tie at the threshold: 0.3 is not > 0.3.
    let s2 = [0.1, 0.2, 0.3, 0.3, 0.35, 0.5];
    assert_eq!(tar_at_far_exact(&s2, &same, 0.0).unwrap_err(), MetricsError::BadFarTarget(0.0));
    match tar_at_far_exact(&s2, &same, 0.4).unwrap() {
        TarAtFar::Measured { tar, far, threshold } => {
            assert_eq!((threshold, far), (0.2, 1.0 / 3.0));
            assert!(close(tar, 1.0));
        }
        other => panic!("{other:?}"),
    }
    match tar_at_far_exact(&s, &same, 1.0).unwrap() {
        TarAtFar::Measured { tar, far, threshold } => {
            assert_eq!((tar, far), (1.0, 1.0));
            assert!(threshold < 0.1 && threshold > 0.1 - 1e-15);
        }
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_string(&TarAtFar::NotMeasurable { far_target: 1e-6, negatives: 2700 }).unwrap();
    assert_eq!(json, r#"{"status":"not_measurable","far_target":1e-6,"negatives":2700}"#);
}

#[test]
fn insightface_val_is_zero_when_far_is_never_reached() {
    // Negatives at distance >= 4 never fall under any grid threshold: threshold 0, VAL 0.
    let d = [0.5, 4.5, 0.6, 5.0];
    let same = [true, false, true, false];
    let v = tar_at_far_insightface(&d, &same, &[0, 0, 1, 1], 1e-3).unwrap();
    assert!(v.folds.iter().all(|f| f.threshold == 0.0 && f.val == 0.0 && f.far == 0.0));
    assert_eq!((v.val_mean, v.val_std, v.far_mean), (0.0, 0.0, 0.0));
    assert!(tar_at_far_insightface(&d, &same, &[0, 0, 1, 1], 0.0).is_err());
}

#[test]
fn fold_averaged_roc_by_hand() {
    // fold 0 perfect, fold 1 inverted.
    let s = [0.9, 0.1, 0.1, 0.9];
    let same = [true, false, true, false];
    let r = roc_fold_averaged(&s, &same, &[0, 0, 1, 1], &[0.0, 0.5, 1.0]).unwrap();
    assert_eq!(r.tar_min, vec![0.0, 0.0, 1.0]);
    assert_eq!(r.tar_max, vec![1.0, 1.0, 1.0]);
    assert_eq!(r.tar_mean, vec![0.5, 0.5, 1.0]);
    assert!(roc_fold_averaged(&s, &same, &[0, 0, 1, 1], &[1.5]).is_err());
    // A fold without different pairs has no ROC.
    assert!(roc_fold_averaged(&s, &same, &[0, 1, 0, 1], &[0.5]).is_err());
}

#[test]
fn cmc_from_counts_by_hand() {
    let c = cmc_from_counts(&[0, 1, 1, 3, 10], 4).unwrap();
    assert_eq!(c, vec![0.2, 0.6, 0.6, 0.8]);
    assert_eq!(cmc_from_counts(&[], 3).unwrap_err(), MetricsError::Empty);
    assert!(cmc_from_counts(&[1], 0).is_err());
}

#[test]
fn megaface_rule_by_hand_ties_count_for_the_query() {
    let ids = [7, 7];
    let pp = [1.0, 0.5, 0.7, 1.0];
    let pd = [0.5, 0.9, 0.2, 0.7, 0.7, 0.1];
    // (p=0, g=1): mate 0.5, one distractor above (0.9), the tie at 0.5 does not count.
    // (p=1, g=0): mate 0.7, ties with two distractors, none above: rank 1.
    assert_eq!(megaface_counts(&ids, &pp, &pd).unwrap(), vec![1, 0]);
    assert_eq!(megaface_cmc(&ids, &pp, &pd, 4).unwrap(), vec![0.5, 1.0, 1.0, 1.0]);
    assert!(megaface_cmc(&[1, 2], &pp, &pd, 3).is_err()); // no identity with two images
    assert!(megaface_cmc(&ids, &pp[..3], &pd, 3).is_err());
    assert!(megaface_counts(&ids, &pp, &pd[..5]).is_err());
    assert!(megaface_counts(&ids, &[1.0, f64::NAN, 0.7, 1.0], &pd).unwrap_err().to_string().contains("pair 1"));
}

/// Small deterministic generator (SplitMix64) so the test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn cmc_from_counts_equals_brute_force_with_ties() {
    let mut rng = Rng(42);
    for trial in 0..40 {
        let n = 2 + rng.below(12) as usize;
        let m = rng.below(20) as usize; // sometimes fewer distractors than ranks, even none
        let ids: Vec<usize> = (0..n).map(|_| rng.below(3) as usize).collect();
        if !(0..n).any(|p| (0..n).any(|g| g != p && ids[g] == ids[p])) {
            continue;
        }
        // Coarse grid: many exact ties between mates and distractors.
        let pp: Vec<f64> = (0..n * n).map(|_| rng.below(8) as f64 / 8.0).collect();
        let pd: Vec<f64> = (0..n * m).map(|_| rng.below(8) as f64 / 8.0).collect();
        let max_rank = 1 + rng.below(25) as usize;
        let brute = megaface_cmc(&ids, &pp, &pd, max_rank).unwrap();
        let counts = megaface_counts(&ids, &pp, &pd).unwrap();
        assert_eq!(cmc_from_counts(&counts, max_rank).unwrap(), brute, "trial {trial}");
        assert!(brute.windows(2).all(|w| w[0] <= w[1]));
    }
}
