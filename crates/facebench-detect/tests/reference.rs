//! The port against the original: face-api's own detections and landmarks on its demo photos,
//! as recorded in `../shared/reference/inputs.json` (TF.js 4.22 CPU backend, jpeg-js decoding).
//!
//! Two checks:
//! * decoding as the reference did, with `facebench-image`'s bit-exact port of jpeg-js (its
//!   pixels' SHA-256 equal inputs.json's `decoded_rgb_sha256`): same faces, box corners and
//!   landmarks within the 1.5 px mean / 4 px max, and in fact within 0.01 px: measured
//!   2e-4 px, i.e. the port is exact and every difference below is the JPEG decoder's;
//! * with this project's default JPEG decoder (`image`/zune-jpeg, fancy chroma upsampling;
//!   jpeg-js replicates chroma samples, so pixels differ): same faces found, box corners within
//!   1.5 px mean / 4 px max, landmarks within 1.5 px mean / 6 px max. Landmarks amplify the
//!   decoder's box shifts (the crop is the floored box): measured 0.45 / 1.70 px (boxes) and
//!   1.05 / 4.94 px (landmarks); with the reference boxes the landmark net alone is within
//!   0.37 / 0.63 px.

mod common;

use facebench_detect::{DetectOptions, Face};
use serde_json::Value;

struct RefFace {
    sample: usize,
    score: f64,
    bbox: [f64; 4],
    landmarks: Vec<[f64; 2]>,
}

/// Reference faces of every sample (one entry per face; inputs.json lists each face twice, once
/// per crop kind).
fn reference_faces() -> (Vec<RefFace>, Value) {
    let p = common::reference_dir().join("inputs.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    let mut faces: Vec<RefFace> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for inp in json["inputs"].as_array().expect("inputs") {
        let Some(det) = inp.get("detection") else { continue };
        let sample: usize =
            inp["sample"].as_str().unwrap().trim_start_matches("sample").trim_end_matches(".jpg").parse().unwrap();
        if !seen.insert((sample, inp["face_index"].as_u64().unwrap())) {
            continue;
        }
        let b = &det["box"];
        let f = |v: &Value| v.as_f64().unwrap();
        faces.push(RefFace {
            sample,
            score: f(&det["score"]),
            bbox: [f(&b["x"]), f(&b["y"]), f(&b["w"]), f(&b["h"])],
            landmarks: inp["landmarks68"].as_array().unwrap().iter().map(|p| [f(&p[0]), f(&p[1])]).collect(),
        });
    }
    (faces, json)
}

fn corners(b: [f64; 4]) -> [[f64; 2]; 2] {
    [[b[0], b[1]], [b[0] + b[2], b[1] + b[3]]]
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn f64box(f: &Face) -> [f64; 4] {
    f.bbox.map(|v| v as f64)
}

/// Box-corner and landmark errors (px) over all reference faces, decoding sample N with `decode`.
fn errors(decode: impl Fn(usize) -> image::RgbImage) -> (Vec<f64>, Vec<f64>, Vec<String>) {
    let det = common::detector().with_options(DetectOptions { min_confidence: 0.5, max_results: 20 });
    let (reference, json) = reference_faces();
    assert!(reference.len() >= 9, "inputs.json lists {} faces", reference.len());
    let (mut box_errs, mut lm_errs) = (Vec::new(), Vec::new());
    let mut decoder_equal = Vec::new();
    for sample in 1..=6usize {
        let img = decode(sample);
        let info = &json["images"][sample - 1];
        assert_eq!(
            (img.width() as u64, img.height() as u64),
            (info["width"].as_u64().unwrap(), info["height"].as_u64().unwrap())
        );
        decoder_equal
            .push(format!("s{sample}:{}", sha256_hex(img.as_raw()) == info["decoded_rgb_sha256"].as_str().unwrap()));
        let found = det.detect(&img).unwrap();
        let want: Vec<&RefFace> = reference.iter().filter(|r| r.sample == sample).collect();
        // Samples without reference faces are not checked for absence: the reference only
        // records faces of the samples it made crops from.
        if want.is_empty() {
            eprintln!("sample{sample}: {} faces found (no reference faces recorded)", found.len());
            continue;
        }
        assert_eq!(
            found.len(),
            want.len(),
            "sample{sample}: found {:?}",
            found.iter().map(|f| f.bbox).collect::<Vec<_>>()
        );
        for r in want {
            // the detected face whose box corners are nearest
            let f = found
                .iter()
                .min_by(|a, b| {
                    let d = |f: &Face| {
                        corners(f64box(f)).iter().zip(corners(r.bbox)).map(|(p, q)| dist(*p, q)).sum::<f64>()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert!((f.score as f64 - r.score).abs() < 0.02, "sample{sample}: score {} vs {}", f.score, r.score);
            for (p, q) in corners(f64box(f)).iter().zip(corners(r.bbox)) {
                box_errs.push(dist(*p, q));
            }
            assert_eq!(f.landmarks68.len(), 68);
            for (p, q) in f.landmarks68.iter().zip(&r.landmarks) {
                lm_errs.push(dist([p[0] as f64, p[1] as f64], *q));
            }
        }
    }
    (box_errs, lm_errs, decoder_equal)
}

fn stats(v: &[f64]) -> (f64, f64) {
    (v.iter().sum::<f64>() / v.len() as f64, v.iter().cloned().fold(0.0, f64::max))
}

#[test]
fn demo_photos_match_face_api_detections_and_landmarks() {
    let (box_errs, lm_errs, decoder_equal) = errors(common::demo_image);
    let ((bm, bx), (lm, lx)) = (stats(&box_errs), stats(&lm_errs));
    eprintln!(
        "box corners: mean {bm:.3} px, max {bx:.3} px over {}; landmarks: mean {lm:.3} px, max {lx:.3} px over {}; decoded pixels equal jpeg-js's: {decoder_equal:?}",
        box_errs.len(),
        lm_errs.len()
    );
    assert_eq!(box_errs.len(), 18, "9 reference faces, 2 corners each");
    assert!(bm <= 1.5 && bx <= 4.0, "box corners: mean {bm} max {bx}");
    assert!(lm <= 1.5 && lx <= 6.0, "landmarks: mean {lm} max {lx}");
}

/// Exactness of the port on the pixels face-api saw, decoded by the jpeg-js port.
#[test]
fn demo_photos_match_face_api_exactly_on_jpegjs_pixels() {
    let (box_errs, lm_errs, decoder_equal) = errors(common::demo_image_jpegjs);
    assert!(decoder_equal.iter().all(|s| s.ends_with("true")), "{decoder_equal:?}");
    let ((bm, bx), (lm, lx)) = (stats(&box_errs), stats(&lm_errs));
    eprintln!(
        "jpeg-js pixels: box corners mean {bm:.5} max {bx:.5} px over {}; landmarks mean {lm:.5} max {lx:.5} px over {}",
        box_errs.len(),
        lm_errs.len()
    );
    assert_eq!(box_errs.len(), 18, "9 reference faces, 2 corners each");
    assert!(bm <= 1.5 && bx <= 4.0 && lm <= 1.5 && lx <= 4.0, "issue #4 bounds: box {bm}/{bx}, landmarks {lm}/{lx}");
    assert!(bx <= 0.01 && lx <= 0.01, "box max {bx}, landmark max {lx}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn missing_weights_are_an_error_that_says_make_models() {
    let dir = std::env::temp_dir().join(format!("facebench-detect-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = match facebench_detect::Detector::load(&dir, &candle_core::Device::Cpu) {
        Ok(_) => panic!("loading from an empty folder must fail"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("make models") && e.contains("ssd_mobilenetv1_model"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
