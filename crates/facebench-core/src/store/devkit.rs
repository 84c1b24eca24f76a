//! MegaFace devkit feature files (the devkit's `matio` layout), one per image.
//!
//! A 16-byte header of four little-endian i32 `rows, cols, bytes_per_row,
//! cv_type` (OpenCV type: 5 = f32, 6 = f64), then the row-major data. The
//! devkit and InsightFace write a D-dim feature as `(D, 1, 4, 5)` + D f32;
//! some tools write `(1, D, 4D, 5)`; both are read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rayon::prelude::*;

use super::{decode_into, file_len, Elem};
use crate::{Embeddings, Error, Result};

/// Files read per parallel block; also the granularity of `progress` calls.
const BLOCK: usize = 2048;
/// How many missing files an error lists by name.
const SHOW_MISSING: usize = 5;

/// Reads one devkit feature file as a vector. The header is checked against
/// the file size before anything is allocated, so a corrupt header is an
/// error naming the file, never a huge allocation.
pub fn read_devkit_feature(path: &Path) -> Result<Vec<f32>> {
    let bad = |msg: String| Error::format(path, msg);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file_len(&file, path)?;
    let mut r = BufReader::new(file);
    let mut h = [0u8; 16];
    r.read_exact(&mut h).map_err(|_| bad(format!("{len} bytes is too short for the 16-byte devkit header")))?;
    let f = |i: usize| i32::from_le_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]]) as i64;
    let (rows, cols, stride, cv_type) = (f(0), f(1), f(2), f(3));
    let elem = match cv_type {
        5 => Elem::F32,
        6 => Elem::F64,
        t => return Err(bad(format!("cv_type {t} is not supported: expected 5 (f32) or 6 (f64)"))),
    };
    if rows < 1 || cols < 1 {
        return Err(bad(format!("header shape {rows} x {cols} is empty or negative")));
    }
    if rows != 1 && cols != 1 {
        return Err(bad(format!("header shape {rows} x {cols} is a matrix, not a D x 1 or 1 x D feature")));
    }
    if stride != cols * elem.size() as i64 {
        return Err(bad(format!(
            "header bytes_per_row {stride} disagrees with {cols} columns of {} bytes",
            elem.size()
        )));
    }
    // i32 x i32 fits i64: no overflow possible here.
    let expected = 16 + rows * stride;
    if expected as u64 != len {
        return Err(bad(format!(
            "header says {rows} x {cols} values ({expected} bytes with the header) but the file has {len} bytes"
        )));
    }
    let mut bytes = vec![0u8; (rows * stride) as usize];
    r.read_exact(&mut bytes).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    decode_into(&bytes, elem, &mut out);
    Ok(out)
}

/// Writes `feature` as the devkit does: header `(D, 1, 4, 5)` then D f32.
/// Creates missing parent folders (devkit feature trees mirror image trees).
/// Written to a temporary file and renamed, so a killed writer never leaves a
/// half-written feature under the final name.
pub fn write_devkit_feature(path: &Path, feature: &[f32]) -> Result<()> {
    if feature.is_empty() || feature.len() > i32::MAX as usize / 4 {
        return Err(Error::Invalid(format!(
            "{}: a devkit feature needs 1 to {} values, got {}",
            path.display(),
            i32::MAX / 4,
            feature.len()
        )));
    }
    if let Some(j) = feature.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!("{}: value {j} is {}", path.display(), feature[j])));
    }
    let mut buf = Vec::with_capacity(16 + 4 * feature.len());
    for v in [feature.len() as i32, 1, 4, 5] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for v in feature {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    // Atomic but not fsynced: a devkit tree holds up to a million files.
    crate::atomic::write_unsynced(path, &buf)
}

/// Reads the features of many images in parallel: file `root/<p><ending>`
/// for every `p` in `rel_paths`, keyed by `p`, rows in list order.
///
/// All files are checked for existence first: if any is missing the error
/// gives how many and the first few names, so a partial feature set can never
/// be evaluated by accident. All features must share one dimension.
/// `progress(k)` is called from the calling thread after each block of `k`
/// files is read (sum the calls for a running total).
pub fn read_devkit_features(
    root: &Path,
    rel_paths: &[String],
    ending: &str,
    progress: impl Fn(usize) + Sync,
) -> Result<Embeddings> {
    let file_of = |p: &String| root.join(format!("{p}{ending}"));
    let missing: Vec<&String> = rel_paths.par_iter().filter(|p| !file_of(p).is_file()).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(SHOW_MISSING).map(|s| s.as_str()).collect();
        return Err(Error::format(
            root,
            format!(
                "{} of {} feature files (ending {ending:?}) are missing, first: {}",
                missing.len(),
                rel_paths.len(),
                shown.join(", ")
            ),
        ));
    }
    let mut out: Option<Embeddings> = None;
    let mut first_file = None;
    for block in rel_paths.chunks(BLOCK) {
        let feats: Vec<Result<Vec<f32>>> = block.par_iter().map(|p| read_devkit_feature(&file_of(p))).collect();
        for (p, feat) in block.iter().zip(feats) {
            let feat = feat?;
            let e = out.get_or_insert_with(|| {
                first_file = Some(file_of(p));
                Embeddings::new(feat.len())
            });
            if feat.len() != e.dim() {
                return Err(Error::format(
                    file_of(p),
                    format!(
                        "feature has dimension {}, but {} has {}",
                        feat.len(),
                        first_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default(),
                        e.dim()
                    ),
                ));
            }
            e.push(p.clone(), &feat).map_err(|err| Error::format(file_of(p), err.to_string()))?;
        }
        progress(block.len());
    }
    Ok(out.unwrap_or_else(|| Embeddings::new(0)))
}
