//! A backbone trained by `facebench train --images` is benchmarked by the same commands as
//! the registry's models: `--model <checkpoint>` loads it, and its declared preprocessing (a
//! centre crop) needs no alignment. Accuracy after one tiny epoch is poor; only the
//! structure of the outputs is checked.

use facebench_core::store::AppendStore;
use facebench_e2e::{data_root, run, scratch};

#[test]
fn a_trained_checkpoint_embeds_like_a_registry_model() {
    let dir = scratch("trained-backbone");
    let root = data_root().join("lfw/lfw-deepfunneled");
    let train_out = dir.join("train");
    let o = run(&[
        "train",
        "--images",
        root.to_str().unwrap(),
        "--classes",
        "4",
        "--max-per-class",
        "8",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--out",
        train_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = train_out.join("model.safetensors");

    let list = dir.join("keys.txt");
    let keys = [
        "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
        "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
        "Abel_Pacheco/Abel_Pacheco_0001.jpg",
    ];
    std::fs::write(&list, keys.join("\n")).unwrap();
    let store = dir.join("emb.fbs");
    let o = run(&[
        "embed",
        "--model",
        ckpt.to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--align",
        "landmarks",
        "--out",
        store.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("model: 3 embedded"), "{stdout}");
    let (_, e) = AppendStore::read(&store).unwrap();
    assert_eq!((e.len(), e.dim()), (3, 128));

    // An unknown name is an error naming the registry's models.
    let o =
        run(&["embed", "--model", "no-such-model", "--list", list.to_str().unwrap(), "--out", store.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("faceapi-resnet") && stderr.contains("mobileface"), "{stderr}");
}
