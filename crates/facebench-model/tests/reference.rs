//! Each port against the outputs of the original TF.js models on every reference input and
//! its `#hflip` mirror (../shared/reference/embeddings_tfjs.json): cosine >= 0.99999 and
//! max |diff| <= 1e-4. Needs the weights (`make models`); without them these tests fail.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use facebench_model::{default_models_dir, load};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn reference_dir() -> PathBuf {
    match std::env::var_os("FACEBENCH_REFERENCE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"),
    }
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e} (set FACEBENCH_REFERENCE)", p.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// RGB8 pixels (row-major HWC) of reference input `id` (`syn_*` from its formula, others from
/// the PNG, checked against inputs.json's sha256), mirrored when the id ends in `#hflip`.
fn input_pixels(dir: &Path, inputs: &Value, id: &str, size: usize) -> Vec<u8> {
    let (base, flip) = match id.strip_suffix("#hflip") {
        Some(b) => (b, true),
        None => (id, false),
    };
    let px: Vec<u8> = if base.starts_with("syn_A_") || base.starts_with("syn_B_") {
        let a = base.starts_with("syn_A_");
        let mut v = Vec::with_capacity(size * size * 3);
        for y in 0..size {
            for x in 0..size {
                for c in 0..3 {
                    v.push(if a { (7 * x + 13 * y + 29 * c) % 256 } else { (x + y + 40 * c) % 256 } as u8);
                }
            }
        }
        v
    } else {
        let entry = inputs["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == base)
            .unwrap_or_else(|| panic!("input {base} not in inputs.json"));
        let file = dir.join(entry["file"].as_str().unwrap());
        let img = image::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).to_rgb8();
        assert_eq!((img.width() as usize, img.height() as usize), (size, size), "{}", file.display());
        let raw = img.into_raw();
        let sha: String = Sha256::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, entry["rgb_sha256"].as_str().unwrap(), "{}: decoded pixels differ", file.display());
        raw
    };
    if !flip {
        return px;
    }
    let mut out = px.clone();
    for y in 0..size {
        for x in 0..size {
            let (d, s) = ((y * size + x) * 3, (y * size + size - 1 - x) * 3);
            out[d..d + 3].copy_from_slice(&px[s..s + 3]);
        }
    }
    out
}

/// `only`: test just the first `only` references (the slow candle-ops path).
fn check_model(name: &str, ref_key: &str, size: usize, only: Option<usize>) {
    let dir = reference_dir();
    let inputs = read_json(&dir.join("inputs.json"));
    let refs = read_json(&dir.join("embeddings_tfjs.json"));
    let table = refs["embeddings"][ref_key]["rgb_255"]
        .as_object()
        .unwrap_or_else(|| panic!("no {ref_key}/rgb_255 in embeddings_tfjs.json"));
    // Every PNG of this size and every mirror the reference has must be covered.
    let pngs = inputs["inputs"].as_array().unwrap().iter().filter(|e| e["model_size"] == size).count();
    assert!(table.len() >= pngs + 2, "{ref_key}: {} references for {pngs} inputs", table.len());
    assert!(table.keys().any(|k| k.ends_with("#hflip")));

    let model = load(name, &default_models_dir(), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&String> = table.keys().collect();
    if let Some(k) = only {
        // keep a mirrored pair among the few
        ids.sort_by_key(|id| !id.starts_with("face_s1_f0"));
        ids.truncate(k);
    }
    let mut data = Vec::new();
    for id in &ids {
        data.extend(input_pixels(&dir, &inputs, id, size).into_iter().map(|v| v as f32));
    }
    let batch = Tensor::from_vec(data, (ids.len(), size, size, 3), &Device::Cpu).unwrap();
    let out = model.forward(&batch).unwrap().to_vec2::<f32>().unwrap();
    let (mut worst_diff, mut worst_cos) = (0f32, 1f64);
    for (id, got) in ids.iter().zip(&out) {
        let want: Vec<f32> =
            table[id.as_str()].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got.len(), want.len(), "{id}");
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let dot: f64 = got.iter().zip(&want).map(|(&a, &b)| a as f64 * b as f64).sum();
        let na: f64 = got.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        assert!(cos >= 0.99999 && diff <= 1e-4, "{name} {id}: cosine {cos}, max |diff| {diff}");
        worst_diff = worst_diff.max(diff);
        worst_cos = worst_cos.min(cos);
    }
    eprintln!("{name}: {} inputs, max |diff| {worst_diff:.3e}, min cosine {worst_cos:.9}", ids.len());
}

#[test]
fn faceapi_resnet_matches_tfjs() {
    check_model("faceapi-resnet", "faceapi_recognition", 150, None);
}

#[test]
fn mobileface_matches_tfjs() {
    check_model("mobileface", "mobileface", 112, None);
}

/// The path CUDA takes (plain candle ops: pad, conv2d, grouped conv2d, pools), run on CPU.
#[test]
fn candle_ops_path_matches_tfjs() {
    facebench_nn::with_candle_ops(|| {
        check_model("faceapi-resnet", "faceapi_recognition", 150, Some(3));
        check_model("mobileface", "mobileface", 112, Some(3));
    });
}
