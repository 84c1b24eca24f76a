#!/usr/bin/env python3
"""Dev-only generator of the facebench-metrics reference fixtures.

Reimplements, step by step as in each tool's source, the LFW-style metrics facebench
reproduces, runs them on seeded synthetic problems and writes JSON fixtures that the Rust
tests compare to 1e-9:

  * InsightFace recognition/arcface_torch/eval/verification.py: calculate_roc /
    calculate_accuracy / calculate_val / calculate_val_far (KFold shuffle=False,
    np.arange grids, np.argmax, np.less, interp1d 'slinear', np.std).
  * facenet src/facenet.py calculate_roc with distance_metric 0/1 and subtract_mean.
  * SphereFace test/code/evaluation.m (per-fold mean subtraction, getThreshold with
    (-10000:10000)/10000, mean of all best thresholds, getAccuracy with > and <).
  * FaceX-Zoo test_protocol/lfw/lfw_evaluator.py getThreshold (1000 thresholds, Youden
    argmax) and test_one_model (float32 scores, ddof=1 SEM).
  * the exact rule (best midpoint, brute force over all candidates).
  * scikit-learn roc_curve / roc_auc_score / auc, an exact-rational EER, exact TAR@FAR,
    fold-averaged TAR and the MegaFace CMC rule, all by brute force.

Needs numpy, scipy, scikit-learn (pip install numpy scipy scikit-learn). CI never runs this;
the fixtures it writes are committed.

    python3 scripts/reference_metrics.py [out_dir]
"""

import json
import os
import sys
from fractions import Fraction

import numpy as np
from scipy.interpolate import BSpline
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold

NFOLDS = 10


def hex64(a):
    return np.asarray(a, dtype="<f8").tobytes().hex()


def hex32(a):
    return np.asarray(a, dtype="<f4").tobytes().hex()


# ---------------------------------------------------------------- InsightFace / facenet
def calculate_accuracy(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def calculate_roc_from_dist(thresholds, dist_for_fold, actual_issame, nrof_folds=NFOLDS):
    """calculate_roc with the distance computation factored out: dist_for_fold(fold_idx,
    train_set) returns the distances of all pairs for that fold (facenet recomputes them per
    fold when subtract_mean is set; InsightFace computes them once)."""
    nrof_pairs = len(actual_issame)
    nrof_thresholds = len(thresholds)
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    accuracy = np.zeros((nrof_folds))
    indices = np.arange(nrof_pairs)
    folds = []
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        dist = dist_for_fold(fold_idx, train_set)
        acc_train = np.zeros((nrof_thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = calculate_accuracy(
                threshold, dist[train_set], actual_issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        _, _, accuracy[fold_idx] = calculate_accuracy(
            thresholds[best_threshold_index], dist[test_set], actual_issame[test_set])
        folds.append(dict(fold=fold_idx, threshold=float(thresholds[best_threshold_index]),
                          train_accuracy=float(acc_train[best_threshold_index]),
                          test_accuracy=float(accuracy[fold_idx]), n_test=int(len(test_set))))
    return summary(folds, accuracy)


def summary(folds, accuracy):
    accuracy = np.asarray(accuracy, dtype=np.float64)
    std_sample = float(np.std(accuracy, ddof=1))
    return dict(folds=folds, mean=float(np.mean(accuracy)),
                std_population=float(np.std(accuracy)), std_sample=std_sample,
                sem=float(std_sample / np.sqrt(len(accuracy))))


def insightface_ten_fold(dist, issame):
    thresholds = np.arange(0, 4, 0.01)
    return calculate_roc_from_dist(thresholds, lambda f, tr: dist, issame)


def calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    val = float(true_accept) / float(n_same)
    far = float(false_accept) / float(n_diff)
    return val, far


def interp1d_slinear_old(x, y, x_new):
    """interp1d(x, y, kind='slinear')(x_new) as SciPy did before it started rejecting
    repeated x: stable argsort of x, bounds check, then make_interp_spline(k=1), which for
    k=1 is BSpline(t=np.r_[x[0], x, x[-1]], c=y, k=1) (Lyche-Morken special case)."""
    ind = np.argsort(x, kind="mergesort")
    xs, ys = x[ind], y[ind]
    if x_new < xs[0] or x_new > xs[-1]:
        raise ValueError("A value in x_new is outside the interpolation range.")
    spl = BSpline.construct_fast(np.r_[xs[0], xs, xs[-1]], ys, 1)
    return float(spl(x_new))


def calculate_val(thresholds, dist, actual_issame, far_target, nrof_folds=NFOLDS):
    nrof_pairs = len(actual_issame)
    nrof_thresholds = len(thresholds)
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    val = np.zeros(nrof_folds)
    far = np.zeros(nrof_folds)
    indices = np.arange(nrof_pairs)
    folds = []
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        far_train = np.zeros(nrof_thresholds)
        for threshold_idx, threshold in enumerate(thresholds):
            _, far_train[threshold_idx] = calculate_val_far(
                threshold, dist[train_set], actual_issame[train_set])
        if np.max(far_train) >= far_target:
            threshold = interp1d_slinear_old(far_train, thresholds, far_target)
        else:
            threshold = 0.0
        val[fold_idx], far[fold_idx] = calculate_val_far(
            threshold, dist[test_set], actual_issame[test_set])
        folds.append(dict(fold=fold_idx, threshold=float(threshold), val=val[fold_idx], far=far[fold_idx]))
    return dict(far_target=far_target, val_mean=float(np.mean(val)), val_std=float(np.std(val)),
                far_mean=float(np.mean(far)), folds=folds)


def facenet_distance(e1, e2, distance_metric):
    if distance_metric == 0:
        diff = np.subtract(e1, e2)
        return np.sum(np.square(diff), 1)
    dot = np.sum(np.multiply(e1, e2), axis=1)
    norm = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    similarity = dot / norm
    # facebench clamps the cosine to [-1, 1]; on these data it never leaves the range.
    assert np.all(np.abs(similarity) <= 1.0)
    return np.arccos(similarity) / np.pi


def facenet_ten_fold(e1, e2, issame, distance_metric, subtract_mean):
    def dist_for_fold(fold_idx, train_set):
        if subtract_mean:
            mean = np.mean(np.concatenate([e1[train_set], e2[train_set]]), axis=0)
        else:
            mean = 0.0
        return facenet_distance(e1 - mean, e2 - mean, distance_metric)
    return calculate_roc_from_dist(np.arange(0, 4, 0.01), dist_for_fold, issame)


# ---------------------------------------------------------------- SphereFace evaluation.m
def sphere_get_accuracy(scores, flags, threshold):
    return (len(np.nonzero(scores[flags == 1] > threshold)[0]) +
            len(np.nonzero(scores[flags != 1] < threshold)[0])) / len(scores)


def sphere_get_threshold(scores, flags, thrNum):
    thresholds = np.arange(-thrNum, thrNum + 1) / thrNum
    accuracys = np.zeros(2 * thrNum + 1)
    pos = scores[flags == 1]
    neg = scores[flags != 1]
    for start in range(0, len(thresholds), 1000):  # chunked, same comparisons as the loop
        t = thresholds[start:start + 1000, None]
        accuracys[start:start + 1000] = (np.sum(pos[None, :] > t, 1) + np.sum(neg[None, :] < t, 1)) / len(scores)
    return float(np.mean(thresholds[accuracys == np.max(accuracys)]))


def sphereface_from_scores(score_for_fold, flags, fold):
    """The 10-fold loop of evaluation.m; score_for_fold(i) gives the scores of all pairs
    when fold i is the test fold. `fold` holds 0-based fold ids, `flags` +1/-1."""
    ACCs = np.zeros(NFOLDS)
    folds = []
    for i in range(NFOLDS):
        valFold = np.nonzero(fold != i)[0]
        testFold = np.nonzero(fold == i)[0]
        scores = score_for_fold(i, valFold)
        threshold = sphere_get_threshold(scores[valFold], flags[valFold], 10000)
        ACCs[i] = sphere_get_accuracy(scores[testFold], flags[testFold], threshold)
        folds.append(dict(fold=i, threshold=threshold,
                          train_accuracy=sphere_get_accuracy(scores[valFold], flags[valFold], threshold),
                          test_accuracy=float(ACCs[i]), n_test=int(len(testFold))))
    return summary(folds, ACCs)


def sphere_scores_mean_subtracted(L, R):
    """featureLs/featureRs are columns in Matlab; here rows. Re-read from the raw features
    at every fold, exactly as the Matlab loop does (cell2mat(pairs(:, 5)') each iteration)."""
    def score_for_fold(i, valFold):
        featureLs = L.astype(np.float64)
        featureRs = R.astype(np.float64)
        mu = np.mean(np.concatenate([featureLs[valFold], featureRs[valFold]]), axis=0)
        featureLs = featureLs - mu
        featureRs = featureRs - mu
        featureLs = featureLs / np.sqrt(np.sum(featureLs ** 2, 1))[:, None]
        featureRs = featureRs / np.sqrt(np.sum(featureRs ** 2, 1))[:, None]
        return np.sum(featureLs * featureRs, 1)
    return score_for_fold


# ---------------------------------------------------------------- FaceX-Zoo
def facex_get_threshold(score_list, label_list, num_thresholds=1000):
    pos_score_list = score_list[label_list == 1]
    neg_score_list = score_list[label_list == 0]
    pos_pair_nums = pos_score_list.size
    neg_pair_nums = neg_score_list.size
    score_max = np.max(score_list)
    score_min = np.min(score_list)
    score_span = score_max - score_min
    # NumPy 1.x (FaceX-Zoo's) promoted float32_scalar / int to float64; NumPy 2 keeps float32.
    step = np.float64(score_span) / num_thresholds
    threshold_list = score_min + step * np.array(range(1, num_thresholds + 1))
    fpr_list = []
    tpr_list = []
    for threshold in threshold_list:
        # NumPy 1.x compared a float32 array with a float64 scalar in float32.
        t = np.float32(threshold)
        fpr = np.sum(neg_score_list > t) / neg_pair_nums
        tpr = np.sum(pos_score_list > t) / pos_pair_nums
        fpr_list.append(fpr)
        tpr_list.append(tpr)
    fpr = np.array(fpr_list)
    tpr = np.array(tpr_list)
    best_index = np.argmax(tpr - fpr)
    return float(threshold_list[best_index])


def facex_accuracy(scores, labels, thr):
    t = np.float32(thr)
    return (np.sum(scores[labels == 1] > t) + np.sum(scores[labels == 0] < t)) / len(scores)


def facexzoo_ten_fold(sim, issame, fold):
    scores = sim.astype(np.float32)
    labels = issame.astype(np.int8)
    accu_list = []
    folds = []
    for subset_idx in range(NFOLDS):
        test = fold == subset_idx
        train = ~test
        best_thres = facex_get_threshold(scores[train], labels[train])
        # FaceX-Zoo divides by 600 (its fold size); here the fold size is used.
        acc = facex_accuracy(scores[test], labels[test], best_thres)
        accu_list.append(acc)
        folds.append(dict(fold=subset_idx, threshold=best_thres,
                          train_accuracy=float(facex_accuracy(scores[train], labels[train], best_thres)),
                          test_accuracy=float(acc), n_test=int(np.sum(test))))
    return summary(folds, accu_list)


# ---------------------------------------------------------------- exact (brute force)
def exact_candidates(s):
    u = np.unique(s)
    cands = [u[0] - 1.0]
    for a, b in zip(u[:-1], u[1:]):
        m = a + (b - a) * 0.5
        cands.append(a if (m >= b or m < a) else m)
    cands.append(u[-1] + 1.0)
    return np.array(cands)


def exact_ten_fold(sim, issame, fold):
    acc = []
    folds = []
    for k in range(NFOLDS):
        tr, te = fold != k, fold == k
        cands = exact_candidates(sim[tr])
        accs = np.array([np.mean((sim[tr] > c) == issame[tr]) for c in cands])
        best = np.flatnonzero(accs == accs.max())
        thr = float(np.min(cands[best]))
        a = float(np.mean((sim[te] > thr) == issame[te]))
        acc.append(a)
        folds.append(dict(fold=k, threshold=thr, train_accuracy=float(accs.max()), test_accuracy=a,
                          n_test=int(np.sum(te))))
    return summary(folds, acc)


# ---------------------------------------------------------------- pooled ROC family
def roc_block(sim, issame, stride):
    fpr, tpr, thr = roc_curve(issame, sim, drop_intermediate=False)
    assert np.isinf(thr[0])
    idx = list(range(1, len(fpr), stride))
    if idx[-1] != len(fpr) - 1:
        idx.append(len(fpr) - 1)
    return dict(n_points=len(fpr), index=idx, far=fpr[idx].tolist(), tar=tpr[idx].tolist(),
                thresholds=thr[idx].tolist(), auc=float(sk_auc(fpr, tpr)),
                roc_auc_score=float(roc_auc_score(issame, sim)))


def eer_exact(sim, issame):
    """Exact-rational crossing of the ROC polyline with FAR = 1 - TAR."""
    P = int(np.sum(issame))
    N = len(issame) - P
    pts = [(Fraction(0), Fraction(0))]
    tp = fp = 0
    order = np.argsort(-sim, kind="mergesort")
    s = sim[order]
    y = issame[order]
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            tp += int(y[j])
            fp += int(not y[j])
            j += 1
        pts.append((Fraction(fp, N), Fraction(tp, P)))
        i = j
    for (f0, t0), (f1, t1) in zip(pts[:-1], pts[1:]):
        d0, d1 = f0 - (1 - t0), f1 - (1 - t1)
        if d1 >= 0:
            if d1 == 0:
                return float(f1)
            t = -d0 / (d1 - d0)
            return float(f0 + t * (f1 - f0))
    raise AssertionError("no crossing")


def tar_at_far_exact(sim, issame, far):
    pos, neg = sim[issame], sim[~issame]
    N = len(neg)
    k = max(k for k in range(N + 1) if k / N <= far)
    if k == 0:
        return dict(far_target=far, status="not_measurable", negatives=N)
    best = None
    for v in np.unique(neg):  # smallest negative value with at most k negatives above it
        if np.sum(neg > v) <= k:
            best = v
            break
    if k >= N:
        best = np.nextafter(np.min(sim), -np.inf)
    return dict(far_target=far, status="measured", tar=float(np.mean(pos > best)),
                far=float(np.mean(neg > best)), threshold=float(best))


def fold_averaged(sim, issame, fold, grid):
    per = []
    for k in range(NFOLDS):
        m = fold == k
        fpr, tpr, _ = roc_curve(issame[m], sim[m], drop_intermediate=False)
        per.append([float(np.max(tpr[fpr <= g])) for g in grid])
    per = np.array(per)
    return dict(grid=list(grid), mean=per.mean(0).tolist(), min=per.min(0).tolist(), max=per.max(0).tolist())


def score_problem(name, sim, dist, issame, fold, roc_stride, fars_exact, fars_val):
    issame = np.asarray(issame, dtype=bool)
    flags = np.where(issame, 1, -1)
    exp = dict(
        ten_fold=dict(
            insightface=insightface_ten_fold(dist, issame),
            facenet=calculate_roc_from_dist(np.arange(0, 4, 0.01), lambda f, tr: dist, issame),
            sphereface=sphereface_from_scores(lambda i, v: sim, flags, fold),
            facexzoo=facexzoo_ten_fold(sim, issame, fold),
            exact=exact_ten_fold(sim, issame, fold),
        ),
        val=[calculate_val(np.arange(0, 4, 0.001), dist, issame, f) for f in fars_val],
        roc=roc_block(sim, issame, roc_stride),
        eer=eer_exact(sim, issame),
        tar_at_far=[tar_at_far_exact(sim, issame, f) for f in fars_exact],
        fold_averaged=fold_averaged(sim, issame, fold, [0.0, 1e-3, 0.01, 0.05, 0.1, 0.3, 1.0]),
    )
    return dict(name=name, n=len(issame), folds=fold.tolist(), is_same=issame.astype(int).tolist(),
                similarity_f64hex=hex64(sim), distance_f64hex=hex64(dist), expected=exp)


def kfold_ids(n):
    ids = np.zeros(n, dtype=int)
    for k, (_, te) in enumerate(KFold(n_splits=NFOLDS, shuffle=False).split(np.arange(n))):
        ids[te] = k
    return ids


def lfw_labels(n_folds, per_fold):
    return np.tile(np.r_[np.ones(per_fold // 2, bool), np.zeros(per_fold // 2, bool)], n_folds)


def realistic(rng):
    issame = lfw_labels(NFOLDS, 600)
    sim = np.where(issame, rng.normal(0.62, 0.14, issame.size), rng.normal(0.08, 0.11, issame.size))
    sim = np.clip(sim, -1, 1).astype(np.float32).astype(np.float64)  # f32 cosines, as a model gives
    dist = 2.0 - 2.0 * sim
    return score_problem("realistic_6000", sim, dist, issame, kfold_ids(6000), 60,
                         [0.1, 0.01, 1e-3, 1e-4], [0.1, 0.01, 1e-3])


def ties(rng):
    """Scores on the rules' own grids, with many exact ties: similarity k/100 lies on the
    SphereFace grid, distance j*0.01 is exactly an InsightFace grid value."""
    n = 400
    issame = lfw_labels(NFOLDS, 40)
    k = np.where(issame, rng.integers(20, 80, n), rng.integers(0, 45, n))
    j = np.where(issame, rng.integers(40, 160, n), rng.integers(120, 220, n))
    sim = k / 100.0
    dist = j * 0.01
    return score_problem("ties_on_grid", sim, dist, issame, kfold_ids(n), 1,
                         [0.5, 0.1, 0.05, 0.01], [0.5, 0.1, 0.05, 0.01])


def unbalanced(rng):
    n = 1000
    issame = rng.random(n) < 0.15
    issame[:3] = True
    sim = np.where(issame, rng.beta(6, 3, n), rng.beta(2, 5, n)) * 2 - 1
    dist = 2.0 - 2.0 * sim
    return score_problem("unbalanced_1000", sim, dist, issame, kfold_ids(n), 7,
                         [0.3, 0.05, 0.01, 1e-3], [0.1, 0.01, 1e-3])


def f32_grid(rng):
    """float32 scores on FaceX-Zoo's own threshold grid (train min 0, max 1, step 1/1000):
    whether a score equal to a threshold in float32 counts depends on comparing in float32
    (NumPy 1.x, FaceX-Zoo's) or float64 (NumPy 2)."""
    n = 400
    issame = lfw_labels(NFOLDS, 40)
    j = np.where(issame, rng.integers(200, 501, n), rng.integers(0, 300, n))
    j[0::40] = 500
    j[39::40] = 0
    sim = (j / 500).astype(np.float32).astype(np.float64)
    dist = 2.0 - 2.0 * sim
    return score_problem("f32_grid_400", sim, dist, issame, kfold_ids(n), 1,
                         [0.5, 0.1, 0.05, 0.01], [0.5, 0.1, 0.05, 0.01])


def features(rng):
    """Feature-level rules: SphereFace mean subtraction, facenet distances."""
    n, dim = 600, 8
    issame = lfw_labels(NFOLDS, 60)
    fold = kfold_ids(n)
    offset = rng.normal(0, 1.0, dim)
    L = offset + rng.normal(0, 1, (n, dim))
    R = np.where(issame[:, None], L + rng.normal(0, 0.8, (n, dim)), offset + rng.normal(0, 1, (n, dim)))
    L = L.astype(np.float32)
    R = R.astype(np.float32)
    L64, R64 = L.astype(np.float64), R.astype(np.float64)
    flags = np.where(issame, 1, -1)
    sphere_scores = sphere_scores_mean_subtracted(L, R)
    per_fold = [sphere_scores(i, np.nonzero(fold != i)[0]) for i in range(NFOLDS)]

    def checks(arrs):
        return [dict(sum=float(np.sum(a)), head=a[:4].tolist(), tail=a[-4:].tolist()) for a in arrs]

    angular_mean = []
    for i in range(NFOLDS):
        tr = np.nonzero(fold != i)[0]
        mean = np.mean(np.concatenate([L64[tr], R64[tr]]), axis=0)
        angular_mean.append(facenet_distance(L64 - mean, R64 - mean, 1))
    sq = facenet_distance(L64, R64, 0)
    ang = facenet_distance(L64, R64, 1)
    exp = dict(
        sphereface=sphereface_from_scores(sphere_scores, flags, fold),
        sphereface_scores=checks(per_fold),
        facenet_squared=facenet_ten_fold(L64, R64, issame, 0, False),
        facenet_squared_mean=facenet_ten_fold(L64, R64, issame, 0, True),
        facenet_angular=facenet_ten_fold(L64, R64, issame, 1, False),
        facenet_angular_mean=facenet_ten_fold(L64, R64, issame, 1, True),
        squared_l2=checks([sq])[0],
        angular=checks([ang])[0],
        angular_mean_scores=checks(angular_mean),
    )
    return dict(name="features_600x8", n=n, dim=dim, folds=fold.tolist(), is_same=issame.astype(int).tolist(),
                left_f32hex=hex32(L.ravel()), right_f32hex=hex32(R.ravel()), expected=exp)


def cmc(rng):
    """MegaFace rule on a small score matrix with many ties (scores on a 0.05 grid)."""
    ids = np.repeat(np.arange(5), [4, 3, 2, 3, 1])
    n, m, max_rank = len(ids), 25, 30
    pp = rng.integers(6, 20, (n, n)) * 0.05
    pd = rng.integers(0, 16, (n, m)) * 0.05
    succ = np.zeros(max_rank)
    pairs = 0
    for g in range(n):
        for p in range(n):
            if p == g or ids[p] != ids[g]:
                continue
            row = np.sort(pd[p])[::-1]
            for r in range(1, max_rank + 1):
                if r > m or pp[p, g] >= row[r - 1]:
                    succ[r - 1] += 1
            pairs += 1
    return dict(name="megaface_cmc_ties", probe_ids=ids.tolist(), n_distractors=m, max_rank=max_rank,
                probe_scores_f64hex=hex64(pp.ravel()), distractor_scores_f64hex=hex64(pd.ravel()),
                expected=dict(cmc=(succ / pairs).tolist(), pairs=pairs))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates", "facebench-metrics", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20260528)
    for prob in [realistic(rng), ties(rng), unbalanced(rng), features(rng), cmc(rng), f32_grid(rng)]:
        path = os.path.join(out, prob["name"] + ".json")
        with open(path, "w") as f:
            json.dump(prob, f, separators=(",", ":"), allow_nan=False)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
