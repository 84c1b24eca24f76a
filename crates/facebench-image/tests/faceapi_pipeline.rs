//! `Preprocess::faceapi_resnet()` against face-api itself: the expected values below were
//! produced by `@vladmandic/face-api@1.7.15` (tfjs 4.22 `cpu` backend) running
//! `FaceLandmarks68.align(null, {useDlibAlignment: true})`, `extractFaceTensors` and
//! `NetInput.toBatchTensor(150, true)` on the lossless reference PNG `face_s1_f0_box150.png`
//! (and on a 2x2 tiling of it, for crops larger than 150), with that face's landmarks moved
//! into the PNG's frame and shifted/scaled so that boxes get clipped, padded, up- and
//! downscaled. The output must be bit-identical (sha256 of the little-endian bytes of the
//! tensor as float32, which is what the recognition net casts it to).

use std::path::PathBuf;

use facebench_image::{decode_file, faceapi_dlib_box, FaceAnnotation, Preprocess, RgbImage};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("FACEBENCH_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"));
    assert!(
        dir.join("inputs.json").is_file(),
        "reference inputs not found at {} (set FACEBENCH_REFERENCE to the shared reference folder)",
        dir.display()
    );
    dir
}

struct Case {
    tiled: bool,
    scale: f64,
    shift: [f64; 2],
    dlib_box: [u32; 4],
    sha256: &'static str,
    sum: f64,
    probes: [(usize, f32); 4],
}

const CASES: &[Case] = &[
    Case {
        tiled: false,
        scale: 1.0,
        shift: [0.0, 0.0],
        dlib_box: [0, 0, 150, 150],
        sha256: "d59f83eff5b35518555e1dfd71e934f7617f0e02b4c0f8b051a8dcc7963e3480",
        sum: 5702479.0,
        probes: [(0, 73.0), (12345, 156.0), (40000, 106.0), (67499, 26.0)],
    },
    Case {
        tiled: false,
        scale: 1.0,
        shift: [40.0, 0.0],
        dlib_box: [40, 0, 110, 150],
        sha256: "72b8c2dd3edc26933a610a07e1f856216cca147b65539bdb511a33f8af78382b",
        sum: 4667225.0,
        probes: [(0, 0.0), (12345, 139.0), (40000, 0.0), (67499, 0.0)],
    },
    Case {
        tiled: false,
        scale: 1.0,
        shift: [0.0, 50.0],
        dlib_box: [0, 50, 150, 100],
        sha256: "fe0a9b9c011f1e5e59fee03ed2d89f7fcd19454c363766432fe36ce4e303d84f",
        sum: 3686419.0,
        probes: [(0, 0.0), (12345, 162.0), (40000, 104.0), (67499, 0.0)],
    },
    Case {
        tiled: false,
        scale: 1.0,
        shift: [25.0, 35.0],
        dlib_box: [25, 35, 125, 115],
        sha256: "0f2d74c72373858fc3fbbeb432e6876c4579854c27b0c356766707c8177937ba",
        sum: 5243582.444488596,
        probes: [(0, 0.0), (12345, 182.5), (40000, 112.666_664), (67499, 0.0)],
    },
    Case {
        tiled: true,
        scale: 1.5,
        shift: [10.0, 20.0],
        dlib_box: [10, 20, 225, 225],
        sha256: "155fefd08df6f3491c67eddd7a5f535a527b05fbd4371f03afae73017cf5244c",
        sum: 5603575.25,
        probes: [(0, 74.0), (12345, 67.25), (40000, 115.0), (67499, 94.5)],
    },
    Case {
        tiled: true,
        scale: 1.7,
        shift: [130.0, 90.0],
        dlib_box: [130, 90, 170, 210],
        sha256: "7d978d5481a732f3832ee8e5096c735f81e4e93e1376f7026c520a3e815ac463",
        sum: 4478496.03883265,
        probes: [(0, 0.0), (12345, 70.0), (40000, 114.6), (67499, 0.0)],
    },
];

#[test]
fn faceapi_resnet_input_is_bit_identical_to_face_api() {
    let dir = reference_dir();
    let inputs: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let e = inputs["inputs"].as_array().unwrap().iter().find(|e| e["id"] == "face_s1_f0_box150").unwrap();
    let crop = |k: &str| e["crop"][k].as_f64().unwrap();
    let png = decode_file(dir.join("inputs/face_s1_f0_box150.png")).unwrap();
    let tiled = RgbImage::from_fn(300, 300, |x, y| *png.get_pixel(x % 150, y % 150));
    for (i, c) in CASES.iter().enumerate() {
        let photo = if c.tiled { &tiled } else { &png };
        // The same arithmetic, in the same order, as the script that produced the values.
        let landmarks: Vec<[f64; 2]> = e["landmarks68"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                [
                    (x - crop("x")) * 150.0 / crop("w") * c.scale + c.shift[0],
                    (y - crop("y")) * 150.0 / crop("h") * c.scale + c.shift[1],
                ]
            })
            .collect();
        let b = faceapi_dlib_box(&landmarks, photo.width(), photo.height()).unwrap();
        // face-api reports the unclipped box and the clipped slice shape [h, w]; the expected
        // box here is the clipped one.
        assert_eq!([b.x, b.y, b.w, b.h], c.dlib_box, "case {i}: box");
        let face = FaceAnnotation { landmarks68: Some(landmarks), ..Default::default() };
        let out = Preprocess::faceapi_resnet().apply(photo, &face).unwrap();
        assert_eq!((out.width(), out.height()), (150, 150));
        for &(k, v) in &c.probes {
            assert_eq!(out.as_slice()[k], v, "case {i}: value {k}");
        }
        let sum: f64 = out.as_slice().iter().map(|&v| v as f64).sum();
        assert_eq!(sum, c.sum, "case {i}: sum");
        let bytes: Vec<u8> = out.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();
        let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, c.sha256, "case {i}: sha256 of the f32 tensor");
    }
}
