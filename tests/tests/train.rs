//! `facebench train` on a store whose keys name identities: the loss must fall and the
//! checkpoint and per-step CSV must be written.

use facebench_core::{store, Embeddings};
use facebench_e2e::{run, scratch, SplitMix};

#[test]
fn head_training_lowers_the_loss() {
    let dir = scratch("train");
    let mut e = Embeddings::new(8);
    let mut rng = SplitMix(7);
    for id in 0..12 {
        let centre: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        for i in 0..10 {
            let row: Vec<f32> = centre.iter().map(|c| (c + 0.3 * rng.normal()) as f32).collect();
            e.push(format!("P{id}/P{id}_{i:04}.jpg"), &row).unwrap();
        }
    }
    let s = dir.join("emb.csv");
    store::write(&s, &e).unwrap();
    let out = dir.join("out");
    let o = run(&[
        "train",
        "--embeddings",
        s.to_str().unwrap(),
        "--loss",
        "cosface:s=16,m=0.2",
        "--out-dim",
        "8",
        "--epochs",
        "30",
        "--batch",
        "32",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    let losses: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
    assert!(losses.len() >= 30);
    let (first, last) = (losses[..4].iter().sum::<f64>() / 4.0, losses[losses.len() - 4..].iter().sum::<f64>() / 4.0);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(out.join("model.safetensors").exists());
    let bad = run(&[
        "train",
        "--embeddings",
        s.to_str().unwrap(),
        "--loss",
        "cosface:m=oops",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
}

/// Issue #9's CPU check of the backbone path: the 8 LFW identities with the most images
/// (first 16 images each, to keep `make test` short), trained from scratch; the loss of the
/// last epoch must be well below the first's and training accuracy above chance (1/8).
#[test]
fn backbone_training_on_eight_real_lfw_identities_lowers_the_loss() {
    let dir = scratch("train-backbone");
    let root = facebench_e2e::data_root().join("lfw/lfw-deepfunneled");
    let out = dir.join("out");
    let o = run(&[
        "train",
        "--images",
        root.to_str().unwrap(),
        "--classes",
        "8",
        "--max-per-class",
        "16",
        "--loss",
        "cosface:s=16,m=0.2",
        "--epochs",
        "6",
        "--batch",
        "32",
        "--lr",
        "0.05",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("128 samples, 8 classes"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    let rows: Vec<(usize, f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    let epoch = |e: usize| {
        let r: Vec<_> = rows.iter().filter(|r| r.0 == e).collect();
        (r.iter().map(|r| r.1).sum::<f64>() / r.len() as f64, r.iter().map(|r| r.2).sum::<f64>() / r.len() as f64)
    };
    let ((l0, a0), (l5, a5)) = (epoch(0), epoch(5));
    eprintln!("8 LFW identities x 16 images: loss {l0:.3} -> {l5:.3}, batch accuracy {a0:.3} -> {a5:.3}");
    assert!(l5 < 0.7 * l0, "loss {l0} -> {l5}");
    assert!(a5 > 0.3, "accuracy {a0} -> {a5}");
    assert!(out.join("model.safetensors").exists());
}
