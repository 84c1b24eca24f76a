//! Backbone training on a generated image folder: it learns, it is reproducible, checkpoints
//! round-trip, and folder problems are reported with the offending path.

use std::path::{Path, PathBuf};

use facebench_lmcl::{
    train_backbone, BackboneArch, BackboneConfig, ImageFolder, LrSchedule, MarginLoss, SgdParams, TrainedBackbone,
};

const CLASSES: usize = 4;

/// `<dir>/id<c>/img<i>.png`: 24x24 images, noise plus a bright 10x10 square in quadrant c
/// (class c), jittered by a pixel or two.
fn make_folder(dir: &Path, per_class: usize) {
    let mut s = 7u64;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    for c in 0..CLASSES {
        let sub = dir.join(format!("id{c}"));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..per_class {
            let (ox, oy) = ((c % 2) as u32 * 12 + next() % 3, (c / 2) as u32 * 12 + next() % 3);
            let img = image::RgbImage::from_fn(24, 24, |x, y| {
                let inside = (ox..ox + 10).contains(&x) && (oy..oy + 10).contains(&y);
                let base = if inside { 200 } else { 40 };
                let v = (base + next() % 40) as u8;
                image::Rgb([v, v / 2 + 20, 255 - v])
            });
            img.save(sub.join(format!("img{i}.png"))).unwrap();
        }
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("facebench-lmcl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(epochs: usize) -> BackboneConfig {
    BackboneConfig {
        arch: BackboneArch { input_size: 16, crop: None, widths: vec![8, 16, 16], embedding_dim: 16 },
        epochs,
        batch_size: 8,
        // A horizontal flip would swap the classes of this toy set (quadrants 0 <-> 1).
        flip: false,
        sgd: SgdParams { lr: 0.05, momentum: 0.9, weight_decay: 5e-4, nesterov: false },
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        ..BackboneConfig::new(MarginLoss::CosFace { s: 10.0, m: 0.2 })
    }
}

fn epoch_mean(m: &TrainedBackbone, epoch: usize) -> (f64, f64) {
    let r: Vec<_> = m.records().iter().filter(|r| r.epoch == epoch).collect();
    let n = r.len() as f64;
    (r.iter().map(|r| r.loss).sum::<f64>() / n, r.iter().map(|r| r.accuracy).sum::<f64>() / n)
}

#[test]
fn backbone_learns_a_small_folder_reproducibly_and_round_trips() {
    let dir = tmp("bb");
    make_folder(&dir, 8);
    let folder = ImageFolder::scan(&dir).unwrap();
    assert_eq!(folder.classes(), ["id0", "id1", "id2", "id3"]);
    assert_eq!(folder.items().len(), 32);
    let cfg = config(12);
    let model = train_backbone(&folder, &cfg, &mut |_| {}).unwrap();
    let (l0, a0) = epoch_mean(&model, 0);
    let (l1, a1) = epoch_mean(&model, cfg.epochs - 1);
    eprintln!("loss {l0:.3} -> {l1:.3}, accuracy {a0:.3} -> {a1:.3}");
    assert!(l1 < 0.5 * l0, "loss {l0} -> {l1}");
    assert!(a1 > a0 && a1 >= 0.9, "accuracy {a0} -> {a1}");

    // Same seed, same bits (flips, shuffles, init, batch-norm statistics).
    let again = train_backbone(&folder, &cfg, &mut |_| {}).unwrap();
    let bits = |m: &TrainedBackbone| -> Vec<u64> { m.records().iter().map(|r| r.loss.to_bits()).collect() };
    assert_eq!(bits(&model), bits(&again));
    let flips = BackboneConfig { flip: true, epochs: 2, ..cfg.clone() };
    let f1 = train_backbone(&folder, &flips, &mut |_| {}).unwrap();
    let f2 = train_backbone(&folder, &flips, &mut |_| {}).unwrap();
    assert_eq!(bits(&f1), bits(&f2));
    assert_ne!(bits(&f1), bits(&model)[..bits(&f1).len()], "flips change the run");
    let paths: Vec<PathBuf> = folder.items().iter().map(|(p, _)| p.clone()).collect();
    let e1 = model.embed_images(&paths).unwrap();
    assert_eq!(e1, again.embed_images(&paths).unwrap());
    assert_eq!(e1.len(), 32 * 16);

    // Embeddings of the same identity are closer than across identities.
    let cos = |a: usize, b: usize| -> f32 {
        let (x, y) = (&e1[a * 16..(a + 1) * 16], &e1[b * 16..(b + 1) * 16]);
        let d: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        d / (x.iter().map(|v| v * v).sum::<f32>().sqrt() * y.iter().map(|v| v * v).sum::<f32>().sqrt())
    };
    let (mut same, mut diff, mut ns, mut nd) = (0.0, 0.0, 0, 0);
    for a in 0..32 {
        for b in a + 1..32 {
            if a / 8 == b / 8 {
                same += cos(a, b);
                ns += 1;
            } else {
                diff += cos(a, b);
                nd += 1;
            }
        }
    }
    let (same, diff) = (same / ns as f32, diff / nd as f32);
    assert!(same > diff + 0.2, "same {same} vs different {diff}");

    let ckpt = dir.join("bb.safetensors");
    model.save(&ckpt).unwrap();
    let back = TrainedBackbone::load(&ckpt, &candle_core::Device::Cpu).unwrap();
    assert_eq!(back.arch(), model.arch());
    assert_eq!(back.classes(), model.classes());
    assert_eq!(back.loss(), model.loss());
    assert_eq!(back.embed_images(&paths).unwrap(), e1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folder_selection_and_errors() {
    let dir = tmp("folder");
    make_folder(&dir, 2);
    // A bigger class, a directory without images and a stray file are handled.
    std::fs::copy(dir.join("id3/img0.png"), dir.join("id3/img9.png")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    std::fs::write(dir.join("id1/readme.txt"), "x").unwrap();
    let folder = ImageFolder::scan(&dir).unwrap();
    assert_eq!(folder.classes().len(), 4);
    assert_eq!(folder.items().len(), 9);
    let capped = folder.at_most_per_class(2);
    assert_eq!(capped.classes().len(), 4);
    assert_eq!(capped.items().len(), 8, "id3 loses its third image");
    let top = folder.largest_classes(2);
    assert_eq!(top.classes(), ["id0", "id3"]); // id3 has 3 images, then ties by name
    assert_eq!(top.items().iter().filter(|(_, c)| *c == 1).count(), 3);

    let e = ImageFolder::scan(&dir.join("missing")).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    let e = ImageFolder::scan(&dir.join("empty")).unwrap_err().to_string();
    assert!(e.contains("no <identity>/<image>"), "{e}");

    std::fs::write(dir.join("id2/broken.jpg"), b"not a jpeg").unwrap();
    let folder = ImageFolder::scan(&dir).unwrap();
    let e = train_backbone(&folder, &config(1), &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("broken.jpg"), "{e}");

    let mut bad = config(1);
    bad.arch.input_size = 18; // not a multiple of 4 for three stages
    let e = train_backbone(&folder, &bad, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("multiple of 4"), "{e}");
    std::fs::write(dir.join("x.safetensors"), b"junk").unwrap();
    let e = TrainedBackbone::load(&dir.join("x.safetensors"), &candle_core::Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("x.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_trained_backbone_is_a_face_model() {
    use facebench_model::{batch_from_rgb8, Alignment, FaceModel};
    let dir = tmp("facemodel");
    make_folder(&dir, 3);
    let folder = ImageFolder::scan(&dir).unwrap();
    let trained = train_backbone(&folder, &config(2), &mut |_| {}).unwrap();
    let ckpt = dir.join("tiny-cosface.safetensors");
    trained.save(&ckpt).unwrap();
    let loaded = TrainedBackbone::load(&ckpt, &candle_core::Device::Cpu).unwrap();
    let model: &dyn FaceModel = &loaded;
    assert_eq!((model.name(), model.embedding_dim()), ("tiny-cosface", 16));
    assert_eq!(model.weights_sha256(), FaceModel::weights_sha256(&trained), "same tensors, same hash");
    let p = model.preprocessing();
    assert_eq!((p.input.width, p.input.height, p.input.value_max), (16, 16, 255.0));
    assert_eq!((p.alignment, p.landmarks), (Alignment::Centre { side: None }, None));

    // The images as the trainer feeds them (whole image, triangle-filtered to 16x16), through
    // the trait, give the trainer's own embeddings.
    let paths: Vec<PathBuf> = folder.items().iter().map(|(p, _)| p.clone()).collect();
    let pixels: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_rgb8();
            image::imageops::resize(&img, 16, 16, image::imageops::FilterType::Triangle).into_raw()
        })
        .collect();
    let refs: Vec<&[u8]> = pixels.iter().map(Vec::as_slice).collect();
    let out = model.forward(&batch_from_rgb8(model, &refs).unwrap()).unwrap();
    assert_eq!(out.dims(), [paths.len(), 16]);
    let want = loaded.embed_images(&paths).unwrap();
    let got = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-5, "trait forward vs embed_images differ by {diff}");
    let e =
        model.forward(&candle_core::Tensor::zeros((1, 3, 16, 16), candle_core::DType::F32, model.device()).unwrap());
    assert!(e.unwrap_err().to_string().contains("[N, 16, 16, 3]"));
    std::fs::remove_dir_all(&dir).unwrap();
}
