//! Alignment of YTF frames: full frames are aligned like any photo, with the labelled face box
//! (grown by a margin) as the detector's search region.
//!
//! For each frame the search region is cropped, face-api's detector + 68-point landmark net
//! (`facebench-detect`) run on the crop, the face nearest the crop's centre is chosen and its
//! box and landmarks are moved back into frame coordinates. When nothing is detected, the
//! landmark net runs inside the labelled box itself (`fallback: true`): unlike an LFW photo, a
//! YTF frame says where its face is. Aligned-layout frames (no labels) are searched whole, with
//! `facebench-detect`'s fixed centre box as the fallback.
//!
//! Records have the shape of `facebench align`'s cache (`AlignRecord`, one JSON line per
//! frame), so the extraction pipeline reads them with `facebench_extract::read_alignments`.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

use facebench_detect::{choose_central, fallback_box, AlignRecord, Detector, Face};
use image::RgbImage;
use rayon::prelude::*;

use crate::layout::LabeledFaces;
use crate::{Error, Result};

/// Frames per detector batch (decoding of the next batch overlaps inference of this one).
const BATCH: usize = 8;

/// Where to look for the face in each frame.
#[derive(Debug, Clone, Copy)]
pub enum SearchRegion<'a> {
    /// The labelled box of the frame grown by `margin` x its size on every side.
    Labelled { faces: &'a LabeledFaces, margin: f64 },
    /// The whole image (aligned crops).
    Whole,
}

/// A decoded frame and the part of it the detector sees.
struct Job {
    key: String,
    frame: RgbImage,
    /// `[x, y, w, h]` of the crop in frame pixels, and the labelled box (for the fallback).
    region: [u32; 4],
    labelled: Option<[f64; 4]>,
    crop: Option<RgbImage>,
}

fn prepare(root: &Path, key: &str, search: SearchRegion) -> Result<Job> {
    let path = root.join(key);
    let frame = image::open(&path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?.to_rgb8();
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Invalid(format!("{}: empty image", path.display())));
    }
    match search {
        SearchRegion::Whole => Ok(Job { key: key.to_string(), frame, region: [0, 0, w, h], labelled: None, crop: None }),
        SearchRegion::Labelled { faces, margin } => {
            let b = faces.get(key).ok_or_else(|| {
                Error::Invalid(format!("{key}: no labelled face box for this frame in {:?}", faces.files()))
            })?;
            let region = b.search_region(margin, w, h).ok_or_else(|| {
                Error::Invalid(format!("{key}: labelled box {:?} lies outside the {w}x{h} frame", b.xywh()))
            })?;
            let crop = image::imageops::crop_imm(&frame, region[0], region[1], region[2], region[3]).to_image();
            Ok(Job { key: key.to_string(), frame, region, labelled: Some(b.xywh()), crop: Some(crop) })
        }
    }
}

fn shift(mut f: Face, dx: f32, dy: f32) -> Face {
    f.bbox[0] += dx;
    f.bbox[1] += dy;
    for p in f.landmarks68.iter_mut().chain(f.points5.iter_mut()) {
        p[0] += dx;
        p[1] += dy;
    }
    f
}

fn record(job: &Job, faces: Vec<Face>, detector: &Detector) -> Result<AlignRecord> {
    let [x, y, w, h] = job.region;
    if let Some(chosen) = choose_central(&faces, w, h) {
        let faces = faces.into_iter().map(|f| shift(f, x as f32, y as f32)).collect();
        return Ok(AlignRecord { key: job.key.clone(), faces, chosen, fallback: false });
    }
    let (fw, fh) = job.frame.dimensions();
    let bbox = job.labelled.unwrap_or_else(|| fallback_box(fw, fh));
    let face = detector
        .landmarks_for_box(&job.frame, bbox, 0.0)
        .map_err(|e| Error::Invalid(format!("{}: {e}", job.key)))?
        .ok_or_else(|| Error::Invalid(format!("{}: fallback box {bbox:?} lies outside the {fw}x{fh} frame", job.key)))?;
    Ok(AlignRecord { key: job.key.clone(), faces: vec![face], chosen: 0, fallback: true })
}

fn prepare_all(root: &Path, keys: &[String], search: SearchRegion) -> Result<Vec<Job>> {
    keys.par_iter().map(|k| prepare(root, k, search)).collect()
}

/// Aligns `root/key` for every key, handing one record per frame to `out` in key order and
/// calling `progress` with the frames finished since its last call. Returns the keys that fell
/// back (no detection in the search region). The first unreadable frame stops the run.
pub fn align_frames(
    root: &Path,
    keys: &[String],
    search: SearchRegion,
    detector: &Detector,
    progress: impl Fn(usize),
    mut out: impl FnMut(AlignRecord) -> Result<()>,
) -> Result<Vec<String>> {
    let mut fallbacks = Vec::new();
    let chunks: Vec<&[String]> = keys.chunks(BATCH).collect();
    let mut next = match chunks.first() {
        Some(c) => Some(prepare_all(root, c, search)?),
        None => return Ok(fallbacks),
    };
    for i in 0..chunks.len() {
        let jobs = next.take().expect("prepared batch");
        let following = chunks.get(i + 1);
        let (records, prepared) = rayon::join(
            || -> Result<Vec<AlignRecord>> {
                let imgs: Vec<&RgbImage> = jobs.iter().map(|j| j.crop.as_ref().unwrap_or(&j.frame)).collect();
                let found = detector.detect_batch(&imgs).map_err(|e| Error::Invalid(format!("detector: {e}")))?;
                jobs.iter().zip(found).map(|(j, f)| record(j, f, detector)).collect()
            },
            || following.map(|c| prepare_all(root, c, search)),
        );
        for r in records? {
            if r.fallback {
                fallbacks.push(r.key.clone());
            }
            out(r)?;
        }
        progress(chunks[i].len());
        next = prepared.transpose()?;
    }
    Ok(fallbacks)
}

/// What [`align_cached`] did.
#[derive(Debug, Clone, Default)]
pub struct AlignOutcome {
    /// Frames aligned in this run.
    pub aligned: usize,
    /// Frames already in the cache.
    pub already: usize,
    /// Frames of this run without a detection (landmarks inside the fallback box).
    pub fallbacks: Vec<String>,
    pub seconds: f64,
}

impl AlignOutcome {
    pub fn frames_per_sec(&self) -> f64 {
        self.aligned as f64 / self.seconds.max(1e-9)
    }
}

/// Keys already in a JSON-lines cache. A torn last line (a crash mid-write) is cut off; any
/// other malformed line is an error naming it.
fn cached_keys(path: &Path) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    let Ok(file) = std::fs::File::open(path) else { return Ok(keys) };
    let lines: Vec<String> = std::io::BufReader::new(file).lines().collect::<std::io::Result<_>>().map_err(|e| Error::io(path, e))?;
    let mut good = 0u64;
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                let k = v["key"].as_str().ok_or_else(|| Error::Parse { path: path.into(), line: i + 1, msg: "no \"key\"".into() })?;
                keys.insert(k.to_string());
                good += line.len() as u64 + 1;
            }
            Err(_) if i + 1 == lines.len() => {
                let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
                f.set_len(good).map_err(|e| Error::io(path, e))?;
            }
            Err(e) => return Err(Error::Parse { path: path.into(), line: i + 1, msg: e.to_string() }),
        }
    }
    Ok(keys)
}

/// Aligns the keys not yet in the JSON-lines cache at `cache` and appends their records; the
/// detector is loaded (by `load`) only when there is work. A rerun after a crash keeps every
/// finished frame.
pub fn align_cached(
    root: &Path,
    keys: &[String],
    search: SearchRegion,
    cache: &Path,
    load: impl FnOnce() -> Result<Detector>,
    progress: impl Fn(usize),
) -> Result<AlignOutcome> {
    let done = cached_keys(cache)?;
    let todo: Vec<String> = keys.iter().filter(|k| !done.contains(*k)).cloned().collect();
    let already = keys.len() - todo.len();
    progress(already);
    if todo.is_empty() {
        return Ok(AlignOutcome { already, ..Default::default() });
    }
    let detector = load()?;
    if let Some(dir) = cache.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(cache).map_err(|e| Error::io(cache, e))?;
    let t0 = std::time::Instant::now();
    let fallbacks = align_frames(root, &todo, search, &detector, progress, |r| {
        let line = serde_json::to_string(&r).expect("serialisable");
        writeln!(file, "{line}").map_err(|e| Error::io(cache, e))
    })?;
    file.sync_all().map_err(|e| Error::io(cache, e))?;
    Ok(AlignOutcome { aligned: todo.len(), already, fallbacks, seconds: t0.elapsed().as_secs_f64() })
}
