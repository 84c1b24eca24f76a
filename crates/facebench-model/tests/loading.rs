//! Loading by name, provenance and the errors a user meets: missing, truncated, modified or
//! wrong weight files, unknown names and devices, badly shaped input. Needs `make models`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use facebench_model::{batch_from_rgb8, default_models_dir, device_from_name, load, MobileFace, Registry, TfjsWeights};
use sha2::{Digest, Sha256};

fn registry() -> Registry {
    Registry::load(Registry::default_path()).unwrap()
}

fn model_names() -> Vec<String> {
    registry().names().into_iter().map(str::to_string).collect()
}

fn models() -> PathBuf {
    let d = default_models_dir();
    for spec in registry().models() {
        let m = spec.manifest_path(&d);
        assert!(m.is_file(), "{} missing: run \"make models\" (scripts/fetch_models.py) first", m.display());
    }
    d
}

/// A scratch models dir holding copies of `files` (relative to the real models dir).
fn scratch(tag: &str, files: &[&str]) -> PathBuf {
    let src = models();
    let dir = std::env::temp_dir().join(format!("facebench-model-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for f in files {
        let to = dir.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), &to).unwrap();
    }
    dir
}

const FACEAPI: [&str; 2] =
    ["face-api/face_recognition_model-weights_manifest.json", "face-api/face_recognition_model.bin"];
const MOBILEFACE: [&str; 2] = ["human-models/mobileface.json", "human-models/mobileface.bin"];

fn err(name: &str, dir: &Path) -> String {
    match load(name, dir, &Device::Cpu) {
        Ok(_) => panic!("{name} from {} loaded but should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn specs_and_checksums() {
    let d = models();
    for (name, size, dim, bin) in [("faceapi-resnet", 150, 128, FACEAPI[1]), ("mobileface", 112, 256, MOBILEFACE[1])] {
        let m = load(name, &d, &Device::Cpu).unwrap();
        assert_eq!(m.name(), name);
        let spec = m.input_spec();
        assert_eq!((spec.width, spec.height, spec.rgb, spec.value_min, spec.value_max), (size, size, true, 0.0, 255.0));
        assert_eq!(m.embedding_dim(), dim);
        let sha: String =
            Sha256::digest(std::fs::read(d.join(bin)).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(m.weights_sha256(), sha, "weights_sha256 is sha256sum of {bin}");
    }
}

#[test]
fn batched_forward_equals_one_by_one() {
    // 5 images (odd, more than one internal chunk) against each image alone.
    let d = models();
    for name in model_names() {
        let m = load(&name, &d, &Device::Cpu).unwrap();
        let s = m.input_spec();
        let imgs: Vec<Vec<u8>> = (0..5)
            .map(|i| (0..s.width * s.height * 3).map(|p| ((p * (i + 3) + i * 17) % 256) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
        let all = m.forward(&batch_from_rgb8(m.as_ref(), &refs).unwrap()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!((all.len(), all[0].len()), (5, m.embedding_dim()));
        for (i, img) in refs.iter().enumerate() {
            let one = m.forward(&batch_from_rgb8(m.as_ref(), &[img]).unwrap()).unwrap().to_vec2::<f32>().unwrap();
            let diff = one[0].iter().zip(&all[i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{name} image {i}: batched vs alone differ by {diff}");
        }
        assert_ne!(all[0], all[1]);
    }
}

#[test]
fn missing_weights_say_make_models() {
    let dir = std::env::temp_dir().join(format!("facebench-model-none-{}", std::process::id()));
    for name in model_names() {
        let e = err(&name, &dir);
        assert!(e.contains("make models") && e.contains(&dir.display().to_string()), "{e}");
    }
    // manifest present, shard missing: the shard is named
    let dir = scratch("noshard", &FACEAPI[..1]);
    let e = err("faceapi-resnet", &dir);
    assert!(e.contains("face_recognition_model.bin") && e.contains("make models"), "{e}");
}

#[test]
fn truncated_or_modified_weights_are_errors() {
    let dir = scratch("trunc", &MOBILEFACE);
    let bin = dir.join(MOBILEFACE[1]);
    let mut bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() - 100]).unwrap();
    let e = err("mobileface", &dir);
    assert!(e.contains("mobileface.bin") && e.contains("truncated") && e.contains("make models"), "{e}");
    // same size, one byte changed: only the checksum can tell
    bytes[1000] ^= 0x55;
    std::fs::write(&bin, &bytes).unwrap();
    let e = err("mobileface", &dir);
    assert!(e.contains("sha256") && e.contains("make models"), "{e}");
    // not JSON
    std::fs::write(dir.join(MOBILEFACE[0]), b"<html>").unwrap();
    let e = err("mobileface", &dir);
    assert!(e.contains("mobileface.json") && e.contains("JSON"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_weights_list_missing_and_unexpected_tensors() {
    // face-api's recogniser placed where mobileface is expected
    let dir = scratch("wrong", &FACEAPI);
    std::fs::create_dir_all(dir.join("human-models")).unwrap();
    std::fs::rename(dir.join(FACEAPI[0]), dir.join(MOBILEFACE[0])).unwrap();
    std::fs::rename(dir.join(FACEAPI[1]), dir.join("human-models/face_recognition_model.bin")).unwrap();
    let e = err("mobileface", &dir);
    assert!(e.contains("not the weights of model mobileface"), "{e}");
    assert!(e.contains("missing tensors [") && e.contains("conv1_weight") && e.contains("dense/kernel"), "{e}");
    assert!(e.contains("unexpected tensors [") && e.contains("conv32_down/conv/filters") && e.contains("fc"), "{e}");
    // the same through the per-network constructor
    let w = TfjsWeights::load(registry().get("faceapi-resnet").unwrap().manifest_path(&models())).unwrap();
    let e = MobileFace::from_weights(&w, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("missing tensors") && e.contains("stage1_unit1_conv0_1_df"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_devices_and_inputs_are_checked() {
    let e = err("resnet-9000", Path::new("models")).to_string();
    assert!(e.contains("resnet-9000") && e.contains("faceapi-resnet") && e.contains("mobileface"), "{e}");
    assert!(device_from_name("cpu").unwrap().is_cpu());
    let e = device_from_name("tpu").unwrap_err().to_string();
    assert!(e.contains("tpu") && e.contains("cuda"), "{e}");
    if !cfg!(feature = "cuda") {
        let e = device_from_name("cuda").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
    let m = load("mobileface", &models(), &Device::Cpu).unwrap();
    let e = m.forward(&Tensor::zeros((2, 150, 150, 3), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("[N, 112, 112, 3]") && e.contains("150"), "{e}");
    let e = m.forward(&Tensor::zeros((2, 3, 112, 112), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(e.contains("NHWC"), "{e}");
    let e = batch_from_rgb8(m.as_ref(), &[&[0u8; 10]]).unwrap_err().to_string();
    assert!(e.contains("10 bytes"), "{e}");
}
