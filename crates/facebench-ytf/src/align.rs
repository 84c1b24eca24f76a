//! Alignment of YTF frames: full frames are aligned like any photo, with the labelled face box
//! (grown by a margin) as the search region.
//!
//! The search region (the labelled box grown by a margin) is cropped, centred on a black canvas
//! a few times its size (see [`Search`]), and face-api's SSD detector + 68-point landmark net
//! (`facebench-detect`) run on that canvas; the detection centred in the region nearest the
//! labelled centre is chosen and its box and landmarks are mapped back to frame coordinates.
//! When none is found, the landmark net runs inside the labelled box itself (`fallback: true`):
//! unlike an LFW photo, a YTF frame says where its face is. Aligned-layout frames (no labels)
//! are searched whole, the face nearest the centre chosen, with `facebench-detect`'s fixed
//! centre box as the fallback.
//!
//! Records have the shape of `facebench align`'s cache (`AlignRecord`, one JSON line per
//! frame), so the extraction pipeline reads them with `facebench_detect::read_alignments`.

use std::path::Path;

use facebench_core::overlap::pipelined;
pub use facebench_detect::AlignOutcome;
use facebench_detect::{fallback_box, AlignCache, AlignRecord, Detector, Face};
use image::RgbImage;
use rayon::prelude::*;

use crate::layout::LabeledFaces;
use crate::{Error, Result};

/// Frames per detector batch (decoding of the next batch overlaps inference of this one).
const BATCH: usize = 8;

/// Where the face of each frame is looked for.
#[derive(Debug, Clone, Copy)]
pub enum SearchRegion<'a> {
    /// The labelled box grown by `margin` x its size on every side (full frames).
    Labelled { faces: &'a LabeledFaces, margin: f64 },
    /// The whole image, face nearest its centre (aligned crops).
    Whole,
}

/// How the detector sees a search region: the region cropped from the frame and centred on a
/// black canvas `context` times its width and height. face-api's SSD needs space around a face:
/// on the real frames, crops of the labelled box grown by 1x gave no detection at face-api's 0.5
/// threshold on 5 of 5 frames, the same crops on a 3x canvas gave the labelled face on all 5
/// (0.72-0.98), above the whole frame's own 0.53-0.99. The SSD resizes every input to 512x512,
/// so the canvas costs nothing extra.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub region: SearchRegion<'a>,
    /// Canvas size as a multiple of the region (1 = the crop as it is).
    pub context: f64,
}

/// Default margin around a labelled box (the region is 3x the box, before clipping).
pub const DEFAULT_MARGIN: f64 = 1.0;
/// Default canvas multiple (see [`Search`]).
pub const DEFAULT_CONTEXT: f64 = 3.0;

impl<'a> Search<'a> {
    /// The labelled box grown by `margin`, on the default canvas.
    pub fn labelled(faces: &'a LabeledFaces, margin: f64) -> Self {
        Search { region: SearchRegion::Labelled { faces, margin }, context: DEFAULT_CONTEXT }
    }
    /// The whole image, on the default canvas.
    pub fn whole() -> Self {
        Search { region: SearchRegion::Whole, context: DEFAULT_CONTEXT }
    }
}

/// A decoded frame, its search region and the canvas the detector sees.
struct Job {
    key: String,
    frame: RgbImage,
    /// `[x, y, w, h]` of the search region in frame pixels.
    region: [u32; 4],
    labelled: Option<[f64; 4]>,
    canvas: RgbImage,
    /// Canvas position of the region's top-left corner.
    inset: [u32; 2],
}

fn prepare(root: &Path, key: &str, search: Search) -> Result<Job> {
    let path = root.join(key);
    let frame = image::open(&path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?.to_rgb8();
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Invalid(format!("{}: empty image", path.display())));
    }
    let (region, labelled) = match search.region {
        SearchRegion::Whole => ([0, 0, w, h], None),
        SearchRegion::Labelled { faces, margin } => {
            let b = faces.get(key).ok_or_else(|| {
                Error::Invalid(format!("{key}: no labelled face box for this frame in {:?}", faces.files()))
            })?;
            let region = b.search_region(margin, w, h).ok_or_else(|| {
                Error::Invalid(format!("{key}: labelled box {:?} lies outside the {w}x{h} frame", b.xywh()))
            })?;
            (region, Some(b.xywh()))
        }
    };
    let [x, y, rw, rh] = region;
    let k = search.context.max(1.0);
    let (cw, ch) = (((rw as f64) * k).round() as u32, ((rh as f64) * k).round() as u32);
    let inset = [(cw - rw) / 2, (ch - rh) / 2];
    let mut canvas = RgbImage::new(cw, ch);
    let crop = image::imageops::crop_imm(&frame, x, y, rw, rh).to_image();
    image::imageops::replace(&mut canvas, &crop, inset[0] as i64, inset[1] as i64);
    Ok(Job { key: key.to_string(), frame, region, labelled, canvas, inset })
}

/// A face found on the canvas, moved into frame coordinates.
fn to_frame(mut f: Face, job: &Job) -> Face {
    let dx = job.region[0] as f32 - job.inset[0] as f32;
    let dy = job.region[1] as f32 - job.inset[1] as f32;
    f.bbox[0] += dx;
    f.bbox[1] += dy;
    for p in f.landmarks68.iter_mut().chain(f.points5.iter_mut()) {
        p[0] += dx;
        p[1] += dy;
    }
    f
}

/// The face to use (frame coordinates): a detection centred in the search region, nearest the
/// labelled centre, or nearest the image centre without a label.
fn choose(job: &Job, faces: &[Face]) -> Option<usize> {
    let [x, y, w, h] = job.region.map(f64::from);
    let (cx, cy) = match job.labelled {
        Some([lx, ly, lw, lh]) => (lx + lw / 2.0, ly + lh / 2.0),
        None => (x + w / 2.0, y + h / 2.0),
    };
    let centre = |f: &Face| f.center().map(f64::from);
    (0..faces.len())
        .filter(|&i| {
            let [fx, fy] = centre(&faces[i]);
            (x..=x + w).contains(&fx) && (y..=y + h).contains(&fy)
        })
        .min_by(|&a, &b| {
            let d = |i: usize| {
                let [fx, fy] = centre(&faces[i]);
                (fx - cx).powi(2) + (fy - cy).powi(2)
            };
            d(a).total_cmp(&d(b))
        })
}

fn record(job: &Job, faces: Vec<Face>, detector: &Detector) -> Result<AlignRecord> {
    let faces: Vec<Face> = faces.into_iter().map(|f| to_frame(f, job)).collect();
    if let Some(chosen) = choose(job, &faces) {
        return Ok(AlignRecord { key: job.key.clone(), faces, chosen, fallback: false });
    }
    let (fw, fh) = job.frame.dimensions();
    let bbox = job.labelled.unwrap_or_else(|| fallback_box(fw, fh));
    let face = detector
        .landmarks_for_box(&job.frame, bbox, 0.0)
        .map_err(|e| Error::Invalid(format!("{}: {e}", job.key)))?
        .ok_or_else(|| {
            Error::Invalid(format!("{}: fallback box {bbox:?} lies outside the {fw}x{fh} frame", job.key))
        })?;
    Ok(AlignRecord { key: job.key.clone(), faces: vec![face], chosen: 0, fallback: true })
}

fn prepare_all(root: &Path, keys: &[String], search: Search) -> Result<Vec<Job>> {
    keys.par_iter().map(|k| prepare(root, k, search)).collect()
}

/// Aligns `root/key` for every key, handing one record per frame to `out` in key order and
/// calling `progress` with the frames finished since its last call. Returns the keys that fell
/// back (no detection in the search region). The first unreadable frame stops the run.
pub fn align_frames(
    root: &Path,
    keys: &[String],
    search: Search,
    detector: &Detector,
    progress: impl Fn(usize),
    mut out: impl FnMut(AlignRecord) -> Result<()>,
) -> Result<Vec<String>> {
    let mut fallbacks = Vec::new();
    // A bad frame of the next batch is reported after this batch's records are handed out.
    pipelined(
        keys,
        BATCH,
        |_, chunk| prepare_all(root, chunk, search),
        |jobs: Vec<Job>| -> Result<()> {
            let imgs: Vec<&RgbImage> = jobs.iter().map(|j| &j.canvas).collect();
            let found = detector.detect_batch(&imgs).map_err(Error::Detect)?;
            for (j, f) in jobs.iter().zip(found) {
                let r = record(j, f, detector)?;
                if r.fallback {
                    fallbacks.push(r.key.clone());
                }
                out(r)?;
            }
            progress(jobs.len());
            Ok(())
        },
    )?;
    Ok(fallbacks)
}

/// Aligns the keys not yet in the JSON-lines cache at `cache` and appends their records; the
/// detector is loaded (by `load`) only when there is work. A rerun after a crash keeps every
/// finished frame.
pub fn align_cached(
    root: &Path,
    keys: &[String],
    search: Search,
    cache: &Path,
    load: impl FnOnce() -> Result<Detector>,
    progress: impl Fn(usize),
) -> Result<AlignOutcome> {
    let detect = Error::Detect;
    let mut store = AlignCache::open(cache).map_err(detect)?;
    let todo = store.missing(keys);
    let already = keys.len() - todo.len();
    progress(already);
    if todo.is_empty() {
        return Ok(AlignOutcome { already, ..Default::default() });
    }
    let detector = load()?;
    let t0 = std::time::Instant::now();
    let fallbacks = align_frames(root, &todo, search, &detector, progress, |r| store.append(&r).map_err(detect))?;
    store.sync().map_err(detect)?;
    Ok(AlignOutcome { aligned: todo.len(), already, fallbacks, seconds: t0.elapsed().as_secs_f64() })
}
