//! `facebench eval pairs --protocol-file` on a `list`-format protocol made here from 100 real
//! LFW pairs (`imgA imgB label` lines, 2 contiguous folds): the report, the terminal table
//! and results.json are titled by the protocol, never as LFW View 2.

use std::path::Path;

use facebench_e2e::{data_root, repo_root, run, scratch};

/// `Name/Name_0001.jpg` for a pairs.txt name and number.
fn key(name: &str, n: &str) -> String {
    format!("{name}/{name}_{:04}.jpg", n.parse::<u32>().unwrap())
}

/// Fold 1 and fold 2 each: 25 matched then 25 mismatched pairs of LFW's pairs.txt.
fn write_list(path: &Path) {
    let text = std::fs::read_to_string(data_root().join("lfw/pairs.txt")).unwrap();
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for l in text.lines().skip(1) {
        match l.split('\t').collect::<Vec<_>>()[..] {
            [n, i, j] => same.push(format!("{} {} 1", key(n, i), key(n, j))),
            [a, i, b, j] => diff.push(format!("{} {} 0", key(a, i), key(b, j))),
            _ => panic!("unexpected line {l:?}"),
        }
    }
    let mut list = String::new();
    for fold in 0..2 {
        for l in same[25 * fold..25 * (fold + 1)].iter().chain(&diff[25 * fold..25 * (fold + 1)]) {
            list += l;
            list.push('\n');
        }
    }
    std::fs::write(path, list).unwrap();
}

#[test]
fn a_list_protocol_is_evaluated_and_titled_by_its_name() {
    let dir = scratch("pairs_list");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("mini")).unwrap();
    std::os::unix::fs::symlink(
        std::fs::canonicalize(data_root().join("lfw/lfw-deepfunneled")).unwrap(),
        data.join("mini/images"),
    )
    .unwrap();
    write_list(&data.join("mini/pairs.txt"));
    let proto = dir.join("mini_list.toml");
    std::fs::write(
        &proto,
        r#"name = "mini_list"
description = "100 LFW pairs as an image-pair list (2 contiguous folds of 50)"
images = "mini/images"

[pairs]
format = "list"
file = "mini/pairs.txt"
count = 100
folds = 2

[metrics]
rules = ["insightface", "exact"]
exact_fars = [0.1]
insightface_fars = []

[[variants]]
name = "centre150+flip"
align = "centre:150"
flip = true

[[published]]
source = "a test row"
setting = "not a real result"
accuracy = 50.0
"#,
    )
    .unwrap();
    let out = dir.join("report");
    let o = run(&[
        "eval",
        "pairs",
        "--protocol-file",
        proto.to_str().unwrap(),
        "--model",
        "faceapi-resnet",
        "--cache",
        dir.join("cache").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--data-root",
        data.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let title = "mini_list (2 folds, 100 pairs)";
    assert!(stdout.contains(title) && !stdout.contains("LFW"), "{stdout}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(doc["protocol"], "mini_list");
    assert_eq!(doc["variant"]["name"], "centre150+flip");
    assert_eq!((doc["results"]["n_pairs"].as_u64(), doc["results"]["n_folds"].as_u64()), (Some(100), Some(2)));
    assert!(doc["tune"].is_null(), "no [tune] split: {}", doc["tune"]);

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with(&format!("# {title}: faceapi-resnet")), "{}", &report[..200.min(report.len())]);
    assert!(!report.contains("LFW View 2") && !report.contains("View 2"), "{report}");
    assert!(report.contains("a test row"), "the protocol's published row is shown\n{report}");

    // A .bin-format protocol is pointed to `eval bin`.
    let bin_proto = repo_root().join("protocols/cfp_fp.toml");
    let o = run(&["eval", "pairs", "--protocol-file", bin_proto.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("eval bin"), "{stderr}");
}
