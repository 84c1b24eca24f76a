//! Face detection and 68-point landmarks for facebench: candle ports of face-api's
//! (`@vladmandic/face-api@1.7.15`) SSD MobileNetV1 detector and `FaceLandmark68Net`, following
//! face-api's own pre- and post-processing so that boxes and landmarks agree with the original
//! to a fraction of a pixel, plus the parallel `align` pass that caches them per image.
//!
//! ```no_run
//! # fn main() -> facebench_detect::Result<()> {
//! let det = facebench_detect::Detector::load("models", &candle_core::Device::Cpu)?;
//! let img = image::open("photo.jpg").unwrap().to_rgb8();
//! for face in det.detect(&img)? {
//!     println!("{:?} {} {:?}", face.bbox, face.score, face.points5);
//! }
//! # Ok(()) }
//! ```
//!
//! The crops themselves (dlib box, ArcFace warp) are made from these landmarks by
//! `facebench-image`.
//!
//! Agreement with face-api (TF.js 4.22 CPU) on its demo photos: 2e-4 px for boxes and landmarks
//! on the same pixels (decoded by `facebench-image`'s jpeg-js port, as the reference was; choose
//! it for `align` with [`align_images_with`]); with the default JPEG decoder (`image` crate)
//! 0.45 / 1.70 px (mean / max) on box corners and 1.05 / 4.94 px on landmarks
//! (`tests/reference.rs`).
//!
//! Speed (CPU): the detector is ~3 GMAC per image (every image is resized to 512x512), 2.8 of
//! them in the pointwise GEMMs, which run at the machine's GEMM peak (~55 ms of one core per
//! image on the 2-core AVX-512 dev box). Around them: depthwise convolutions, which are memory
//! bound, the RGB convolution, epilogues, resizes and the landmark net. The layers are
//! `facebench-nn`'s: each depthwise-separable pair runs as chunked GEMMs fed from cache, the
//! first layers stream rows (the network's largest tensors never go to memory), the small
//! kernels are blocked in registers and candle's element-wise ops (and their spinning pool)
//! stay out of the hot path, all with the same floating-point operations in the same order as
//! running the layers one by one (tests: bit-identical). Measured on 250x250 LFW images
//! (`examples/speed.rs`, quiet machine): 74-82 ms CPU per image = 24.5-27 images/s on 2 cores;
//! [`bench::profile`] gives CPU time per layer kind.

mod align;
mod landmarks;
mod prof;
mod ssd;

/// Benchmark helpers: per-layer CPU time.
pub mod bench {
    pub use crate::prof::{cpu_seconds, profile, LayerTime};
}

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use align::{
    align_images, align_images_with, choose_central, fallback_box, read_alignments, AlignCache, AlignOutcome,
    AlignRecord, AlignSummary,
};
pub use landmarks::LANDMARK_INPUT;
pub use ssd::SSD_INPUT;

/// Errors of this crate; each names the file (image or weights) at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A weight file could not be read or is not the expected model (says to run `make models`).
    #[error(transparent)]
    Model(#[from] facebench_model::Error),
    /// A layer that does not fit its input (or candle failing inside one).
    #[error(transparent)]
    Nn(#[from] facebench_nn::Error),
    #[error("{}: not found; run \"make models\" (scripts/fetch_models.py) to fetch the face-api weights", .0.display())]
    MissingWeights(PathBuf),
    /// An image that cannot be read or decoded.
    #[error("{}: {msg}", path.display())]
    Image { path: PathBuf, msg: String },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    /// The alignment cache cannot be read or written.
    #[error("{}: {source}", path.display())]
    CacheIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the alignment cache that is not a record (and not a torn last line).
    #[error("{}:{line}: {msg}", path.display())]
    CacheLine { path: PathBuf, line: usize, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// One face: box, score and landmarks in pixel coordinates of the original image. Serialises as
/// `{"box": [x, y, w, h], "score": s, "landmarks68": [[x, y], ...], "points5": [[x, y], ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Left, top, width, height (face-api's `detection.box`).
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Detector confidence (sigmoid of the face class); 0 for a fallback box.
    pub score: f32,
    /// The 68 iBUG points (face-api's `landmarks.positions`).
    pub landmarks68: Vec<[f32; 2]>,
    /// Left eye centre (mean of 36-41), right eye centre (mean of 42-47), nose tip (30), left
    /// and right mouth corners (48, 54): the 5-point rule of the reference inputs.
    pub points5: [[f32; 2]; 5],
}

impl Face {
    fn new(bbox: [f64; 4], score: f32, lm: &[[f64; 2]]) -> Face {
        Face {
            bbox: bbox.map(|v| v as f32),
            score,
            landmarks68: lm.iter().map(|p| [p[0] as f32, p[1] as f32]).collect(),
            points5: points5(lm),
        }
    }

    /// Centre of the box.
    pub fn center(&self) -> [f32; 2] {
        [self.bbox[0] + self.bbox[2] / 2.0, self.bbox[1] + self.bbox[3] / 2.0]
    }
}

/// See [`Detector::load`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; both values are in glibc's valid range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// The reference 5 points from 68 landmarks (means summed in order, in f64).
fn points5(lm: &[[f64; 2]]) -> [[f32; 2]; 5] {
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let s = lm[r].iter().fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
        [(s[0] / n) as f32, (s[1] / n) as f32]
    };
    let pt = |i: usize| [lm[i][0] as f32, lm[i][1] as f32];
    [mean(36..42), mean(42..48), pt(30), pt(48), pt(54)]
}

/// face-api's `SsdMobilenetv1Options`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Keep detections scoring strictly above this (face-api default 0.5).
    pub min_confidence: f32,
    /// At most this many faces per image (face-api default 100).
    pub max_results: usize,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions { min_confidence: 0.5, max_results: 100 }
    }
}

const SSD_MANIFEST: &str = "ssd_mobilenetv1_model-weights_manifest.json";
const LANDMARK_MANIFEST: &str = "face_landmark_68_model-weights_manifest.json";

/// SSD MobileNetV1 face detector + 68-point landmark net, loaded once and shared by threads.
pub struct Detector {
    ssd: ssd::Ssd,
    landmarks: landmarks::LandmarkNet,
    device: Device,
    options: DetectOptions,
}

impl Detector {
    /// Loads both networks from the model cache: `models_dir` is either the cache root that
    /// `make models` fills (holding `face-api/`) or the `face-api` folder itself.
    ///
    /// On the CPU with glibc this also raises the allocator's mmap threshold to its 32 MB maximum
    /// and its trim threshold to 512 MB (process-wide `mallopt`): the detector allocates and
    /// frees activations of up to 17 MB per layer, which glibc would otherwise return to the
    /// kernel and fault in again, costing as much time as the arithmetic (measured: system
    /// time 1.26 s -> 0.18 s for 80 images; the only effect is that freed memory is kept).
    pub fn load(models_dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = models_dir.as_ref();
        let dir = if dir.join(SSD_MANIFEST).is_file() { dir.to_path_buf() } else { dir.join("face-api") };
        for f in [SSD_MANIFEST, LANDMARK_MANIFEST] {
            if !dir.join(f).is_file() {
                return Err(Error::MissingWeights(dir.join(f)));
            }
        }
        if device.is_cpu() {
            keep_freed_memory();
        }
        Ok(Detector {
            ssd: ssd::Ssd::load(&dir.join(SSD_MANIFEST), device)?,
            landmarks: landmarks::LandmarkNet::load(&dir.join(LANDMARK_MANIFEST), device)?,
            device: device.clone(),
            options: DetectOptions::default(),
        })
    }

    /// Replaces the detection options (threshold, face limit).
    pub fn with_options(mut self, options: DetectOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> DetectOptions {
        self.options
    }

    /// All faces of one image, in face-api's order (descending score).
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        Ok(self.detect_batch(&[image])?.pop().unwrap_or_default())
    }

    /// All faces of each image. The detector runs on the whole batch at once (every image is
    /// resized to 512x512), then the landmark net on every face of the batch at once.
    pub fn detect_batch(&self, images: &[&RgbImage]) -> Result<Vec<Vec<Face>>> {
        for img in images {
            if img.width() == 0 || img.height() == 0 {
                let msg = format!("cannot detect faces in an empty {}x{} image", img.width(), img.height());
                return Err(candle_core::Error::Msg(msg).into());
            }
        }
        let dets = self.ssd.detect(images, &self.device, self.options.min_confidence, self.options.max_results)?;
        let jobs: Vec<(&RgbImage, ssd::Detection)> =
            dets.iter().zip(images).flat_map(|(ds, img)| ds.iter().map(move |d| (*img, *d))).collect();
        let mut lms = self.landmarks.landmarks(&jobs, &self.device)?.into_iter();
        let mut out = Vec::with_capacity(images.len());
        for ds in &dets {
            let mut faces = Vec::with_capacity(ds.len());
            for d in ds {
                if let Some(lm) = lms.next().flatten() {
                    faces.push(Face::new([d.x, d.y, d.w, d.h], d.score, &lm));
                }
            }
            out.push(faces);
        }
        Ok(out)
    }

    /// 68 landmarks for a given box (pixels, `[x, y, w, h]`), as face-api computes them for a
    /// detection with that box; None when the box has no pixel inside the image.
    pub fn landmarks_for_box(&self, image: &RgbImage, bbox: [f64; 4], score: f32) -> Result<Option<Face>> {
        let d = ssd::Detection { score, x: bbox[0], y: bbox[1], w: bbox[2], h: bbox[3] };
        let lm = self.landmarks.landmarks(&[(image, d)], &self.device)?;
        Ok(lm.into_iter().next().flatten().map(|lm| Face::new(bbox, score, &lm)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// The device-independent path (what CUDA runs) computes the same network as the CPU
    /// kernels: raw SSD outputs on a real LFW face image agree.
    #[test]
    fn generic_path_matches_cpu_kernels_on_the_full_detector() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let models = std::env::var_os("FACEBENCH_MODELS").map(PathBuf::from).unwrap_or_else(|| repo.join("models"));
        let det = Detector::load(&models, &Device::Cpu).unwrap_or_else(|e| panic!("{e}\n(run \"make models\")"));
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or_else(|| repo.join("../shared/data"));
        let p = data.join("lfw/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0001.jpg");
        let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).to_rgb8();
        let x = Tensor::from_vec(ssd::preprocess_for_test(&img), (1, SSD_INPUT, SSD_INPUT, 3), &Device::Cpu).unwrap();
        let fast = det.ssd.forward(&x).unwrap();
        let (generic, lm_generic) = facebench_nn::with_candle_ops(|| {
            let lm = det.landmarks_for_box(&img, [70.0, 70.0, 100.0, 120.0], 0.9).unwrap().unwrap();
            (det.ssd.forward(&x).unwrap(), lm)
        });
        let lm_fast = det.landmarks_for_box(&img, [70.0, 70.0, 100.0, 120.0], 0.9).unwrap().unwrap();
        let (fb, fs) = &fast[0];
        let (gb, gs) = &generic[0];
        let dbox = fb.iter().flatten().zip(gb.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let dscore = fs.iter().zip(gs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(dbox < 1e-3 && dscore < 1e-4, "box encodings differ by {dbox}, scores by {dscore}");
        assert!(fs.iter().any(|&s| s > 0.5), "the image has a face");
        let dlm = lm_fast
            .landmarks68
            .iter()
            .flatten()
            .zip(lm_generic.landmarks68.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(dlm < 1e-3, "landmarks differ by {dlm} px");
    }
}
