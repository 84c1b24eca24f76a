//! The real devkit and InsightFace lists in ../shared/data/megaface parse as documented, and
//! bad input gives errors that name the file, line or entry.

use std::path::{Path, PathBuf};

use facebench_megaface::*;

fn data_root() -> PathBuf {
    let root = std::env::var_os("FACEBENCH_DATA")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(root.join("megaface").is_dir(), "MegaFace lists not found under {} (set FACEBENCH_DATA)", root.display());
    root
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("facebench-megaface-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn real_devkit_lists_parse() {
    let t = data_root().join("megaface/templatelists");
    let probes = read_probe_list(&t.join("facescrub_features_list.json")).unwrap();
    assert_eq!(probes.paths.len(), 3530);
    let ids: std::collections::HashSet<&String> = probes.ids.iter().collect();
    assert_eq!(ids.len(), 80);
    assert_eq!(probes.paths[0], "Michael_Landes/Michael_Landes_43667.png");
    let lists = read_distractor_lists(&t, &[10, 100, 1000, 10_000, 100_000], 1).unwrap();
    for (size, list) in &lists {
        assert_eq!(list.len(), *size, "size {size}");
    }
    assert_eq!(lists[0].1[0], "534/53415754@N00/37731000_1.jpg");
    // The lists are not nested: the 1,000 and 10,000 sets share only a few paths.
    let a: std::collections::HashSet<&String> = lists[2].1.iter().collect();
    assert!(lists[3].1.iter().filter(|p| a.contains(p)).count() < 100);
}

#[test]
fn real_noise_lists_match_probes_and_distractors() {
    let root = data_root().join("megaface");
    let fs = NoiseList::read(&root.join("noises/facescrub_noises.txt")).unwrap();
    let mf = NoiseList::read(&root.join("noises/megaface_noises.txt")).unwrap();
    assert_eq!((fs.len(), mf.len()), (605, 707));
    let probes = read_probe_list(&root.join("templatelists/facescrub_features_list.json")).unwrap();
    // The FaceScrub list covers all of FaceScrub; 24 of its images are in the devkit subset.
    assert_eq!(probes.paths.iter().filter(|p| fs.has_probe(p)).count(), 24);
    assert!(fs.has_probe("Aaron_Eckhart/Aaron_Eckhart_136.png"));
    let lists = read_distractor_lists(&root.join("templatelists"), &[1000, 10_000, 100_000], 1).unwrap();
    let noisy: Vec<usize> = lists.iter().map(|(_, l)| l.iter().filter(|p| mf.has_distractor(p)).count()).collect();
    assert_eq!(noisy, vec![0, 7, 80]);
}

#[test]
fn bad_lists_name_the_file_and_place() {
    let d = tmp("badlists");
    let p = d.join("probe.json");
    std::fs::write(&p, "{\"id\": [\"a\", \"b\"],\n \"path\": [\"a/1.png\"]}").unwrap();
    let e = read_probe_list(&p).unwrap_err().to_string();
    assert!(e.contains("probe.json") && e.contains("\"id\" has 2 entries but \"path\" has 1"), "{e}");
    std::fs::write(&p, "{\"id\": [\"a\",\n \"b\"], \"path\": [\"a/1.png\", 3]}").unwrap();
    let e = read_probe_list(&p).unwrap_err().to_string();
    assert!(e.contains("probe.json") && e.contains("line 2"), "{e}");
    let l = d.join("megaface_features_list.json_3_1");
    std::fs::write(&l, "{\"path\": [\"x/1.jpg\", \"x/2.jpg\", \"x/1.jpg\"]}").unwrap();
    let e = read_distractor_lists(&d, &[3], 1).unwrap_err().to_string();
    assert!(e.contains("megaface_features_list.json_3_1") && e.contains("entries 0 and 2"), "{e}");
    let n = d.join("noise.txt");
    std::fs::write(&n, "# comment\na.png\n\n b.png\na.png\n").unwrap();
    assert_eq!(NoiseList::read(&n).unwrap(), NoiseList::from_entries(["a.png", "b.png"]));
    let e = NoiseList::read(&d.join("absent.txt")).unwrap_err().to_string();
    assert!(e.contains("absent.txt"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn devkit_features_load_and_missing_files_are_counted() {
    let d = tmp("features");
    let probe_list = ProbeList {
        ids: vec!["A".into(), "A".into(), "B".into()],
        paths: vec!["A/A_1.png".into(), "A/A_2.png".into(), "B/B_1.png".into()],
    };
    for (i, p) in probe_list.paths.iter().enumerate() {
        facebench_core::store::write_devkit_feature(&d.join(format!("{p}_alg.bin")), &[i as f32 + 1.0, 1.0, 0.0])
            .unwrap();
    }
    let probes = ProbeSet::from_devkit(&probe_list, &d, "_alg.bin", |_| {}).unwrap();
    assert_eq!(probes.identities(), &[0, 0, 1]);
    let norm: f32 = probes.row(2).iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-6, "rows are L2-normalised");
    let lists = vec![
        (2, vec!["x/1.jpg".to_string(), "x/2.jpg".into()]),
        (3, vec!["x/3.jpg".into(), "x/1.jpg".into(), "x/4.jpg".into()]),
    ];
    facebench_core::store::write_devkit_feature(&d.join("x/1.jpg_alg.bin"), &[0.0, 1.0, 0.0]).unwrap();
    facebench_core::store::write_devkit_feature(&d.join("x/3.jpg_alg.bin"), &[0.0, 0.0, 1.0]).unwrap();
    let e = DistractorSet::from_devkit(&lists, &d, "_alg.bin", |_| {}).unwrap_err().to_string();
    assert!(e.contains("2 of 4") && e.contains("x/2.jpg") && e.contains("x/4.jpg"), "{e}");
    for p in ["x/2.jpg", "x/4.jpg"] {
        facebench_core::store::write_devkit_feature(&d.join(format!("{p}_alg.bin")), &[1.0, 0.0, 1.0]).unwrap();
    }
    let dset = DistractorSet::from_devkit(&lists, &d, "_alg.bin", |_| {}).unwrap();
    assert_eq!(dset.rows(), 4, "the union of the lists is read once");
    assert_eq!(dset.sizes().iter().map(|s| s.count).collect::<Vec<_>>(), vec![2, 3]);
    let r = evaluate(&probes, &dset, &EvalConfig::default(), &|_, _| {}).unwrap();
    assert_eq!(r.sizes[1].impostors, 9);
    // One list, sizes as its first N paths; empty or too large sizes are refused.
    let one: Vec<String> = ["x/1.jpg", "x/2.jpg", "x/3.jpg"].iter().map(|s| s.to_string()).collect();
    assert_eq!(first_n_lists(&one, &[1, 3]).unwrap()[0], (1, vec!["x/1.jpg".to_string()]));
    assert!(first_n_lists(&one, &[4]).unwrap_err().to_string().contains("size 4"));
    let e = DistractorSet::from_devkit(&[(5, vec![])], &d, "_alg.bin", |_| {}).unwrap_err().to_string();
    assert!(e.contains("size-5") && e.contains("empty"), "{e}");
    // A packed store must hold every listed path.
    let store = facebench_core::Embeddings::from_rows(vec!["x/1.jpg".into()], vec![1.0, 0.0, 0.0], 3).unwrap();
    let e = DistractorSet::from_store_lists(store, &lists).unwrap_err().to_string();
    assert!(e.contains("1 of 2") && e.contains("x/2.jpg"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
