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
        "train", "--embeddings", s.to_str().unwrap(), "--loss", "cosface:s=16,m=0.2", "--out-dim", "8",
        "--epochs", "30", "--batch", "32", "--out", out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    let losses: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse().unwrap()).collect();
    assert!(losses.len() >= 30);
    let (first, last) = (losses[..4].iter().sum::<f64>() / 4.0, losses[losses.len() - 4..].iter().sum::<f64>() / 4.0);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(out.join("model.safetensors").exists());
    let bad = run(&["train", "--embeddings", s.to_str().unwrap(), "--loss", "cosface:m=oops", "--out", out.to_str().unwrap()]);
    assert!(!bad.status.success());
}
