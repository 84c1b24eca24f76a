//! Locations of the weights, reference outputs and data for the integration tests. Missing weights
//! are a failure that says how to fetch them, never a silent pass.

#![allow(dead_code)]

use std::path::PathBuf;

use facebench_detect::Detector;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$FACEBENCH_MODELS`, else `<repo>/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("FACEBENCH_MODELS").map(PathBuf::from).unwrap_or_else(|| repo().join("models"))
}

/// `$FACEBENCH_DATA`, else `../shared/data` beside the repository.
pub fn data_root() -> PathBuf {
    std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/data"))
}

/// `$FACEBENCH_REFERENCE`, else `reference/` beside the data root.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("FACEBENCH_REFERENCE").map(PathBuf::from).unwrap_or_else(|| data_root().join("../reference"))
}

/// The detector on the CPU; panics with the fetch instruction when the weights are missing.
pub fn detector() -> Detector {
    match Detector::load(models_dir(), &candle_core::Device::Cpu) {
        Ok(d) => d,
        Err(e) => {
            panic!("cannot load the face-api weights from {}: {e}\n(run \"make models\")", models_dir().display())
        }
    }
}

fn demo_bytes(n: usize) -> (Vec<u8>, String) {
    let p = models_dir().join("face-api/demo").join(format!("sample{n}.jpg"));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}\n(run \"make models\")", p.display()));
    (bytes, p.display().to_string())
}

/// A demo photo of face-api (fetched with the weights by `make models`), decoded by the
/// project's default decoder (the `image` crate).
pub fn demo_image(n: usize) -> image::RgbImage {
    let (bytes, name) = demo_bytes(n);
    facebench_image::decode_bytes(&bytes, &name).unwrap_or_else(|e| panic!("{e}"))
}

/// A demo photo decoded as face-api's reference decoded it (the jpeg-js port).
pub fn demo_image_jpegjs(n: usize) -> image::RgbImage {
    let (bytes, name) = demo_bytes(n);
    facebench_image::decode_jpegjs(&bytes, &name).unwrap_or_else(|e| panic!("{e}"))
}
