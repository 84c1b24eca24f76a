//! `facebench eval lfw` end to end on the real `pairs.txt`, with embeddings made
//! per identity (so same-person pairs are close, with noise), checked against an
//! independent re-implementation of InsightFace's 10-fold rule written here.

use facebench_core::{store, Embeddings};
use facebench_e2e::{data_root, fnv, run, scratch, SplitMix};

const DIM: usize = 16;

/// Identity centre + per-image noise, not normalised (the tool normalises).
fn synthetic_store(keys: &[String], noise: f64) -> Embeddings {
    let mut e = Embeddings::new(DIM);
    for key in keys {
        let name = key.split('/').next().unwrap();
        let mut id = SplitMix(fnv(name));
        let mut img = SplitMix(fnv(key));
        let row: Vec<f32> = (0..DIM).map(|_| (id.normal() + noise * img.normal()) as f32).collect();
        e.push(key.clone(), &row).unwrap();
    }
    e
}

/// Every key named by pairs.txt, read with a plain split (not the crate's parser).
fn pair_lines() -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(data_root().join("lfw/pairs.txt")).unwrap();
    let key = |n: &str, i: &str| format!("{n}/{n}_{:04}.jpg", i.parse::<u32>().unwrap());
    text.lines()
        .skip(1) // the real file's header is `10\t300`
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f.len() {
                3 => (key(f[0], f[1]), key(f[0], f[2]), true),
                4 => (key(f[0], f[1]), key(f[2], f[3]), false),
                _ => panic!("bad line {l}"),
            }
        })
        .collect()
}

/// InsightFace `calculate_roc` accuracy, written out directly: squared L2 of unit
/// vectors, thresholds `np.arange(0, 4, 0.01)`, first argmax on the 9 training folds.
fn insightface_reference(e: &Embeddings, pairs: &[(String, String, bool)]) -> Vec<f64> {
    let unit = |k: &str| {
        let r = e.get(k).unwrap();
        let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        r.iter().map(|&v| (v as f64 / n) as f32).collect::<Vec<f32>>()
    };
    let dist: Vec<f64> = pairs
        .iter()
        .map(|(a, b, _)| {
            let (a, b) = (unit(a), unit(b));
            a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
        })
        .collect();
    let acc = |idx: &[usize], thr: f64| {
        idx.iter().filter(|&&i| (dist[i] < thr) == pairs[i].2).count() as f64 / idx.len() as f64
    };
    (0..10)
        .map(|k| {
            let test: Vec<usize> = (600 * k..600 * (k + 1)).collect();
            let train: Vec<usize> = (0..6000).filter(|i| i / 600 != k).collect();
            let mut best = (f64::MIN, 0.0);
            for t in 0..400 {
                let thr = t as f64 * 0.01;
                let a = acc(&train, thr);
                if a > best.0 {
                    best = (a, thr);
                }
            }
            acc(&test, best.1)
        })
        .collect()
}

#[test]
fn eval_lfw_matches_independent_insightface_rule() {
    let pairs = pair_lines();
    assert_eq!(pairs.len(), 6000);
    let mut keys: Vec<String> = pairs.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 7701, "distinct View-2 images");
    let e = synthetic_store(&keys, 0.9);

    let dir = scratch("eval_lfw");
    let npy = dir.join("emb.npy");
    store::write(&npy, &e).unwrap();
    let out = dir.join("out");
    let o = run(&[
        "eval",
        "lfw",
        "--embeddings",
        npy.to_str().unwrap(),
        "--protocol",
        "insightface,sphereface,exact",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("insightface") && stdout.contains("AUC"), "{stdout}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let acc = &doc["results"]["accuracy"];
    let insight = &acc[0];
    assert_eq!(insight["rule"], "insightface");
    let expected = insightface_reference(&e, &pairs);
    for (k, want) in expected.iter().enumerate() {
        let got = insight["folds"][k]["test_accuracy"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "fold {}: {got} vs {want}", k + 1);
    }
    let mean: f64 = expected.iter().sum::<f64>() / 10.0;
    assert!((insight["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    // The synthetic problem is hard enough that a broken pairing (50%) or a
    // perfect-score bug (100%) cannot pass.
    assert!(mean > 0.7 && mean < 0.999, "mean accuracy {mean}");

    for f in ["report.md", "roc.png", "roc.svg", "scores.png", "scores.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("insightface"));
    // Self-contained: no linked images, scripts or styles (SVG namespaces are not links).
    for link in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(!html.contains(link), "report.html has {link}");
    }
    let csv = std::fs::read_to_string(out.join("pairs_scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6001);
    assert!(csv.starts_with("fold,left,right,is_same,cosine,insightface_score,sphereface_score,exact_score"));
}

#[test]
fn missing_image_is_named() {
    let pairs = pair_lines();
    let mut keys: Vec<String> = pairs.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
    keys.sort();
    keys.dedup();
    let gone = pairs[1234].1.clone();
    keys.retain(|k| *k != gone);
    let dir = scratch("missing_image");
    let csv = dir.join("emb.csv");
    store::write(&csv, &synthetic_store(&keys, 0.5)).unwrap();
    let o = run(&["eval", "lfw", "--embeddings", csv.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(&gone) && err.contains("pairs.txt:"), "{err}");
}

#[test]
fn malformed_pairs_line_names_file_and_line() {
    let dir = scratch("malformed_pairs");
    let pairs = dir.join("pairs.txt");
    std::fs::write(&pairs, "1\t1\nA\t1\t2\nB\t1\tC\n").unwrap();
    let e = synthetic_store(&["A/A_0001.jpg".into(), "A/A_0002.jpg".into()], 0.5);
    let csv = dir.join("emb.csv");
    store::write(&csv, &e).unwrap();
    let o = run(&[
        "eval",
        "lfw",
        "--embeddings",
        csv.to_str().unwrap(),
        "--pairs",
        pairs.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("pairs.txt:3:"), "{err}");
}
