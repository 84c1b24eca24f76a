//! Where detection time goes: CPU and wall seconds per layer kind.
//!
//! CPU time is the process's (getrusage: user + system, all threads), so spans are exact only
//! while nothing else in the process runs: [`profile`] therefore feeds one image at a time, and
//! the layers' own threads are all attributed to the layer that started them. On a machine
//! shared with other jobs, CPU seconds are far steadier than wall seconds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use image::RgbImage;

use crate::{Detector, Result};

/// The layer kinds a profile reports, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// padToSquare + bilinear resize to 512 (detector) or 112 (landmark crops).
    Resize,
    /// The backbone's depthwise-separable layers (the first with the RGB convolution).
    Pointwise,
    /// The SSD extra layers (1x1 and 3x3 stride 2).
    Extra,
    /// The six box/class predictors.
    BoxHead,
    /// Box decoding, score threshold, non-maximum suppression, pixel mapping.
    Nms,
    /// The whole 68-point landmark net (crops excluded).
    Landmarks,
}

const KINDS: [(Kind, &str); 6] = [
    (Kind::Resize, "resize (input + crops)"),
    (Kind::Pointwise, "depthwise + pointwise"),
    (Kind::Extra, "ssd extra layers"),
    (Kind::BoxHead, "box heads"),
    (Kind::Nms, "box decode + NMS"),
    (Kind::Landmarks, "landmark net"),
];

static ENABLED: AtomicBool = AtomicBool::new(false);
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static TOTALS: Mutex<[(usize, f64, f64); 6]> = Mutex::new([(0, 0.0, 0.0); 6]);

/// CPU seconds (user + system) of the whole process.
pub fn cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            return tv(u.ru_utime) + tv(u.ru_stime);
        }
        0.0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0.0
    }
}

/// Runs `f`, adding its CPU and wall time to `kind` while profiling (outermost span only, so a
/// landmark net's convolutions count as landmark net).
pub(crate) fn span<T>(kind: Kind, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    if DEPTH.fetch_add(1, Ordering::SeqCst) > 0 {
        let r = f();
        DEPTH.fetch_sub(1, Ordering::SeqCst);
        return r;
    }
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let r = f();
    let (dc, dw) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
    DEPTH.fetch_sub(1, Ordering::SeqCst);
    let i = KINDS.iter().position(|(k, _)| *k == kind).expect("listed kind");
    let mut t = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    t[i].0 += 1;
    t[i].1 += dc;
    t[i].2 += dw;
    r
}

/// Time spent in one layer kind over a profiled set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    pub kind: &'static str,
    /// Number of layer calls.
    pub calls: usize,
    /// Process CPU seconds (all threads).
    pub cpu_s: f64,
    pub wall_s: f64,
}

/// Detection + landmarks on each image in turn (one image per pass, so that process CPU time
/// can be attributed to layers), returning the time per layer kind; the last row, "total", is
/// the whole run, so the difference to the sum of the rows is what no span covers (landmark
/// crops' bookkeeping, tensor copies). Not reentrant: profile one detector at a time.
pub fn profile(detector: &Detector, images: &[&RgbImage]) -> Result<Vec<LayerTime>> {
    *TOTALS.lock().unwrap_or_else(|e| e.into_inner()) = [(0, 0.0, 0.0); 6];
    ENABLED.store(true, Ordering::SeqCst);
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let run = images.iter().try_for_each(|img| detector.detect_batch(&[img]).map(|_| ()));
    let (dc, dw) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
    ENABLED.store(false, Ordering::SeqCst);
    run?;
    let t = *TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<LayerTime> = KINDS
        .iter()
        .zip(t)
        .map(|(&(_, kind), (calls, cpu_s, wall_s))| LayerTime { kind, calls, cpu_s, wall_s })
        .collect();
    rows.push(LayerTime { kind: "total", calls: images.len(), cpu_s: dc, wall_s: dw });
    Ok(rows)
}
