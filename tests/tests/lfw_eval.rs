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

/// Every pair of pairs.txt, read with a plain split (not the crate's parser).
fn pair_lines() -> Vec<(String, String, bool)> {
    pairs_of("lfw/pairs.txt")
}

/// The pairs of an LFW pairs file under the data root (one header line).
fn pairs_of(file: &str) -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(data_root().join(file)).unwrap();
    let key = |n: &str, i: &str| format!("{n}/{n}_{:04}.jpg", i.parse::<u32>().unwrap());
    text.lines()
        .skip(1) // pairs.txt's header is `10\t300`, View 1's the pair count
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

/// Squared L2 distance of the unit vectors of each pair's images.
fn unit_distances(e: &Embeddings, pairs: &[(String, String, bool)]) -> Vec<f64> {
    let unit = |k: &str| {
        let r = e.get(k).unwrap();
        let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        r.iter().map(|&v| (v as f64 / n) as f32).collect::<Vec<f32>>()
    };
    pairs
        .iter()
        .map(|(a, b, _)| {
            let (a, b) = (unit(a), unit(b));
            a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
        })
        .collect()
}

/// InsightFace's threshold choice: thresholds `np.arange(0, 4, 0.01)`, the first argmax of
/// the accuracy on `train`; returns the accuracy on `test` with it.
fn insightface_accuracy(dist: &[f64], same: &[bool], train: &[usize], test: &[usize]) -> f64 {
    let acc =
        |idx: &[usize], thr: f64| idx.iter().filter(|&&i| (dist[i] < thr) == same[i]).count() as f64 / idx.len() as f64;
    let mut best = (f64::MIN, 0.0);
    for t in 0..400 {
        let thr = t as f64 * 0.01;
        let a = acc(train, thr);
        if a > best.0 {
            best = (a, thr);
        }
    }
    acc(test, best.1)
}

/// InsightFace `calculate_roc` accuracy, written out directly: squared L2 of unit
/// vectors, the threshold chosen on the 9 training folds.
fn insightface_reference(e: &Embeddings, pairs: &[(String, String, bool)]) -> Vec<f64> {
    let dist = unit_distances(e, pairs);
    let same: Vec<bool> = pairs.iter().map(|p| p.2).collect();
    (0..10)
        .map(|k| {
            let test: Vec<usize> = (600 * k..600 * (k + 1)).collect();
            let train: Vec<usize> = (0..6000).filter(|i| i / 600 != k).collect();
            insightface_accuracy(&dist, &same, &train, &test)
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

/// Every distinct key of `pairs`, sorted.
fn keys_of(pairs: &[(String, String, bool)]) -> Vec<String> {
    let mut keys: Vec<String> = pairs.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// An `.fbs` store of `e` with this metadata.
fn fbs(path: &std::path::Path, e: &Embeddings, preprocessing: &str, weights: &str) {
    let meta = store::StoreMeta {
        model: "synthetic".into(),
        weights_sha256: weights.into(),
        preprocessing: preprocessing.into(),
        dim: e.dim(),
    };
    let mut s = store::AppendStore::create_or_open(path, &meta).unwrap();
    let rows: Vec<(String, Vec<f32>)> =
        e.keys().iter().enumerate().map(|(i, k)| (k.clone(), e.row(i).to_vec())).collect();
    s.append(&rows).unwrap();
}

fn stderr_of(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "facebench {args:?} should fail");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn stores_must_be_an_original_and_its_mirror() {
    let keys = keys_of(&pair_lines());
    let (orig, flip) = (synthetic_store(&keys, 0.9), synthetic_store(&keys, 0.8));
    let dir = scratch("store_provenance");
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    fbs(&dir.join("a.fbs"), &orig, "crop", "w1");
    fbs(&dir.join("a.flip.fbs"), &flip, "crop +hflip", "w1");
    fbs(&dir.join("b.flip.fbs"), &flip, "other crop +hflip", "w2");
    let out = p("out");
    let o = run(&["eval", "lfw", "--embeddings", &p("a.fbs"), "--flip-store", &p("a.flip.fbs"), "--out", &out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap()).unwrap();
    assert_eq!(doc["results"]["flip"], "sum");
    let prov = doc["provenance"].to_string();
    assert!(prov.contains("crop +hflip") && prov.contains("w1") && !prov.contains("weights not known"), "{prov}");

    // The unmirrored store given as the mirror, a mirror of another preprocessing and
    // weights, and the mirror given as the original: each names what differs.
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.fbs"), "--flip-store", &p("a.fbs"), "--out", &out]);
    assert!(err.contains("is not the mirror store") && err.contains("not a mirror store"), "{err}");
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.fbs"), "--flip-store", &p("b.flip.fbs"), "--out", &out]);
    assert!(err.contains("weights_sha256 \"w2\" vs \"w1\"") && err.contains("preprocessing \"other crop\""), "{err}");
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.flip.fbs"), "--out", &out]);
    assert!(err.contains("a mirror store") && err.contains("--flip-store"), "{err}");

    // Stores without metadata cannot be checked: refused unless the caller vouches for them.
    store::write(&dir.join("a.npy"), &orig).unwrap();
    store::write(&dir.join("a.flip.npy"), &flip).unwrap();
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.npy"), "--flip-store", &p("a.flip.npy"), "--out", &out]);
    assert!(err.contains("--unchecked-flip"), "{err}");
    let args = [
        "eval",
        "lfw",
        "--embeddings",
        &p("a.npy"),
        "--flip-store",
        &p("a.flip.npy"),
        "--unchecked-flip",
        "--out",
        &out,
    ];
    assert!(run(&args).status.success());
    let fused: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap()).unwrap();
    assert_eq!(fused["results"]["accuracy"], doc["results"]["accuracy"], "same features, same numbers");

    // A flag only a model run uses is refused rather than ignored.
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.fbs"), "--device", "cuda", "--out", &out]);
    assert!(err.contains("--device not used with --embeddings"), "{err}");

    // A store missing a mirror key says it is the mirror store.
    let mut short = Embeddings::new(DIM);
    for (i, k) in flip.keys().iter().enumerate().skip(1) {
        short.push(k.clone(), flip.row(i)).unwrap();
    }
    fbs(&dir.join("c.flip.fbs"), &short, "crop +hflip", "w1");
    let err = stderr_of(&["eval", "lfw", "--embeddings", &p("a.fbs"), "--flip-store", &p("c.flip.fbs"), "--out", &out]);
    assert!(err.contains("(the mirror store): 7,700 of 7,701 keys found") && err.contains(&keys[0]), "{err}");
}

#[test]
fn view1_is_scored_with_the_tune_split() {
    let (train, test) = (pairs_of("lfw/pairsDevTrain.txt"), pairs_of("lfw/pairsDevTest.txt"));
    assert_eq!((train.len(), test.len()), (2200, 1000));
    let all: Vec<(String, String, bool)> = train.iter().chain(&test).cloned().collect();
    let e = synthetic_store(&keys_of(&all), 0.9);
    let dir = scratch("view1");
    let csv = dir.join("emb.csv");
    store::write(&csv, &e).unwrap();
    let out = dir.join("out");
    let (csv, out) = (csv.to_str().unwrap(), out.to_str().unwrap());

    // A View 1 file is not View 2: the error says how View 1 is scored.
    let dev_test = data_root().join("lfw/pairsDevTest.txt");
    let err = stderr_of(&["eval", "lfw", "--embeddings", csv, "--pairs", dev_test.to_str().unwrap(), "--out", out]);
    assert!(
        err.contains("pairsDevTest.txt") && err.contains("1000 pairs in 1 folds") && err.contains("--tune-split"),
        "{err}"
    );

    let o = run(&["eval", "lfw", "--embeddings", csv, "--tune-split", "--out", out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/results.json")).unwrap()).unwrap();
    assert_eq!(doc["protocol"], "lfw:tune");
    assert_eq!((doc["results"]["n_train"].as_u64(), doc["results"]["n_test"].as_u64()), (Some(2200), Some(1000)));
    let row = &doc["results"]["rows"][0];
    assert_eq!(row["rule"], "insightface");
    let dist = unit_distances(&e, &all);
    let same: Vec<bool> = all.iter().map(|p| p.2).collect();
    let want = insightface_accuracy(&dist, &same, &(0..2200).collect::<Vec<_>>(), &(2200..3200).collect::<Vec<_>>());
    let got = row["test_accuracy"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "DevTest accuracy {got} vs {want}");
    assert!(want > 0.6 && want < 0.999, "{want}");
}

#[test]
fn eval_pairs_scores_a_store_on_any_protocol_file() {
    let pairs = pair_lines();
    let e = synthetic_store(&keys_of(&pairs), 0.9);
    let dir = scratch("eval_pairs_store");
    let csv = dir.join("emb.csv");
    store::write(&csv, &e).unwrap();
    let proto = facebench_e2e::repo_root().join("protocols/lfw.toml");
    let out = dir.join("out");
    let args = ["eval", "pairs", "--protocol-file", proto.to_str().unwrap(), "--embeddings", csv.to_str().unwrap()];
    let o = run(&[&args[..], &["--rules", "insightface", "--out", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(doc["protocol"], "lfw");
    let expected = insightface_reference(&e, &pairs);
    for (k, want) in expected.iter().enumerate() {
        let got = doc["results"]["accuracy"][0]["folds"][k]["test_accuracy"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "fold {k}: {got} vs {want}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with("# LFW View 2: emb") && report.contains("Accuracy (10-fold, View 2)"), "{report}");
}

/// A tmpfs of `bytes` at `dir`, unmounted on drop; None where mounting is not allowed.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, bytes: usize) -> Option<SmallDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn folder_contents(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = if e.path().is_file() { std::fs::read(e.path()).unwrap() } else { Vec::new() };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_leaves_the_previous_complete_outputs() {
    let keys = keys_of(&pair_lines());
    let dir = scratch("full_disk");
    let csv = dir.join("emb.csv");
    store::write(&csv, &synthetic_store(&keys, 0.9)).unwrap();
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    // Room for one output set (about 1.2 MB here), not for a second one staged beside it.
    let Some(_disk) = SmallDisk::mount(&disk, 2_000_000) else {
        eprintln!("cannot mount a tmpfs here (not root): the output-set fault is covered by facebench-core's tests");
        return;
    };
    let out = disk.join("out");
    let args = |label: &'static str| {
        let (csv, out) = (csv.to_str().unwrap().to_string(), out.to_str().unwrap().to_string());
        vec![
            "eval".to_string(),
            "lfw".into(),
            "--embeddings".into(),
            csv,
            "--label".into(),
            label.into(),
            "--out".into(),
            out,
        ]
    };
    let first = run(&args("first").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before = folder_contents(&out);
    assert!(before.iter().any(|(n, _)| n == "results.json") && before.iter().any(|(n, _)| n == "roc.png"));

    let second = run(&args("second").iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && err.contains("No space left"), "{err}");
    assert_eq!(folder_contents(&out), before, "the first run's outputs, complete and unchanged");
    let left: Vec<String> =
        std::fs::read_dir(&disk).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(left, ["out"], "no staging folder or temporary file is left");
}
