//! `facebench eval megaface` end to end on the real devkit lists with packed stores of
//! seeded features: devkit-named outputs, raw/R labels, figures, and the missing-feature
//! error that makes the devkit's silent "0.059 rank-1" impossible.

use facebench_core::{store, Embeddings};
use facebench_e2e::{data_root, fnv, run, scratch, SplitMix};

const DIM: usize = 32;

fn paths(file: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data_root().join("megaface/templatelists").join(file)).unwrap())
            .unwrap();
    v["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

/// Probes cluster by identity (the parent folder), distractors are spread out.
fn features(keys: &[String], by_identity: bool) -> Embeddings {
    let mut e = Embeddings::new(DIM);
    for k in keys {
        let id = k.rsplit_once('/').map_or(k.as_str(), |(d, _)| d);
        let (mut a, mut b) = (SplitMix(fnv(id)), SplitMix(fnv(k)));
        let row: Vec<f32> =
            (0..DIM).map(|_| if by_identity { a.normal() + 0.6 * b.normal() } else { b.normal() } as f32).collect();
        e.push(k.clone(), &row).unwrap();
    }
    e
}

#[test]
fn eval_megaface_from_stores_writes_devkit_files() {
    let dir = scratch("megaface_eval");
    let probes = paths("facescrub_features_list.json");
    let mut distractors = Vec::new();
    for size in [10, 100, 1000] {
        for p in paths(&format!("megaface_features_list.json_{size}_1")) {
            if !distractors.contains(&p) {
                distractors.push(p);
            }
        }
    }
    let (ps, ds) = (dir.join("probes.npy"), dir.join("distractors.npy"));
    store::write(&ps, &features(&probes, true)).unwrap();
    store::write(&ds, &features(&distractors, false)).unwrap();
    let out = dir.join("out");
    for clean in [false, true] {
        let mut args = vec![
            "eval",
            "megaface",
            "--probe-store",
            ps.to_str().unwrap(),
            "--distractor-store",
            ds.to_str().unwrap(),
            "--sizes",
            "10,100,1000",
            "--out",
            out.to_str().unwrap(),
        ];
        if clean {
            args.push("--clean");
        }
        let o = run(&args);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
        let tag = if clean { "R" } else { "raw" };
        assert!(stdout.lines().filter(|l| l.contains("MegaFace") && l.contains(tag)).count() >= 3, "{stdout}");
        for size in [10, 100, 1000] {
            let alg = if clean { "facebench_R" } else { "facebench" };
            let f = out.join(format!("cmc_facescrub_megaface_{alg}_{size}_1.json"));
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            assert_eq!(v["cmc"].as_array().unwrap().len(), 2, "{}", f.display());
            assert_eq!(v["roc"].as_array().unwrap().len(), 2);
        }
    }
    for f in ["results.json", "cmc.png", "cmc.svg", "roc.png", "roc.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("MegaFace (R)") && md.contains("## Published") && md.contains("82.72"), "{md}");
}

#[test]
fn missing_devkit_features_are_counted_and_named() {
    let dir = scratch("megaface_missing");
    let probes = paths("facescrub_features_list.json");
    let ps = dir.join("probes.npy");
    store::write(&ps, &features(&probes, true)).unwrap();
    let root = dir.join("distractors");
    // Write all but two of the 10-distractor list's feature files.
    let list = paths("megaface_features_list.json_10_1");
    for p in &list[2..] {
        store::write_devkit_feature(&root.join(format!("{p}_fb.bin")), &[0.5; DIM]).unwrap();
    }
    let o = run(&[
        "eval",
        "megaface",
        "--probe-store",
        ps.to_str().unwrap(),
        "--distractor-root",
        root.to_str().unwrap(),
        "--ending",
        "_fb.bin",
        "--sizes",
        "10",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("2 of 10") && err.contains(&list[0]), "{err}");
}
