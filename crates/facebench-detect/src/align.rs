//! The `align` pass: detection + landmarks over a list of images, in parallel, one record per
//! image, choosing the face nearest the image centre (protocols with one face per image).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use facebench_core::overlap::pipelined;
use facebench_image::{Decoder, FaceAnnotation};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::{Detector, Error, Face, Result};

/// Images per batch: the unit of decode/inference overlap and of landmark-net batching (on the
/// CPU the detector then runs these images in parallel, one per pass; on a GPU in one pass).
const BATCH: usize = 8;

/// The fallback box `[x, y, w, h]` as fractions of the image's width and height: the median
/// face-api box of the chosen faces on the first 200 LFW deep-funneled images (x 75.5, y 70.2,
/// w 98.4, h 118.1 of 250), rounded. Horizontally centred, slightly below the middle.
const FALLBACK_FRACTIONS: [f64; 4] = [0.30, 0.28, 0.40, 0.47];

/// One cached line of `align`: every face found, which one the protocol uses, and whether it is
/// the fixed centre-box fallback. JSON: `{"key": ..., "faces": [...], "chosen": i, "fallback": b}`.
/// Written with detector [`Face`]s; read back for cropping as [`FaceAnnotation`]s (f64 read
/// straight from the JSON text, so crops see the same numbers whoever reads the cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignRecord<F = Face> {
    /// The image's key (its path relative to the image root).
    pub key: String,
    /// All faces found, in detector order; when nothing was found, the single fallback face.
    pub faces: Vec<F>,
    /// Index into `faces` of the face to embed.
    pub chosen: usize,
    /// True when no face was found and `faces[0]` is the fixed centre box.
    #[serde(default)]
    pub fallback: bool,
}

/// The chosen face per key of an alignment cache, plus the keys that fell back to the centre
/// box. A malformed line names the file and line.
pub fn read_alignments(path: &Path) -> Result<(HashMap<String, FaceAnnotation>, Vec<String>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::CacheIo { path: path.to_path_buf(), source: e })?;
    let mut faces = HashMap::new();
    let mut fallbacks = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let err = |msg: String| Error::CacheLine { path: path.to_path_buf(), line: i + 1, msg };
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: AlignRecord<FaceAnnotation> = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
        let face = rec
            .faces
            .get(rec.chosen)
            .cloned()
            .ok_or_else(|| err(format!("chosen face {} of {} faces", rec.chosen, rec.faces.len())))?;
        if rec.fallback {
            fallbacks.push(rec.key.clone());
        }
        faces.insert(rec.key, face);
    }
    Ok((faces, fallbacks))
}

/// Counts of one `align_images` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlignSummary {
    pub images: usize,
    /// Faces found over all images (fallbacks not counted).
    pub faces: usize,
    /// Keys of the images where no face was found, in input order.
    pub fallbacks: Vec<String>,
}

/// The JSON-lines alignment cache (`facebench align --out`, and the caches of `eval lfw`,
/// `eval ytf`, ...): one [`AlignRecord`] per line, appended as images are aligned.
///
/// Opening reads which keys are done. A torn last line (a crash mid-write) is cut off so the
/// file stays valid JSON lines; any other malformed line is an error naming it. The file and
/// its folder are created on the first append, so a fully cached run writes nothing.
pub struct AlignCache {
    path: PathBuf,
    done: HashSet<String>,
    file: Option<std::fs::File>,
}

impl AlignCache {
    pub fn open(path: &Path) -> Result<AlignCache> {
        let io = |source| Error::CacheIo { path: path.to_path_buf(), source };
        let mut done = HashSet::new();
        if let Ok(file) = std::fs::File::open(path) {
            let lines: Vec<String> =
                std::io::BufReader::new(file).lines().collect::<std::io::Result<_>>().map_err(io)?;
            let mut good_bytes = 0u64;
            for (i, line) in lines.iter().enumerate() {
                let bad = |msg: String| Error::CacheLine { path: path.to_path_buf(), line: i + 1, msg };
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(v) => {
                        let key = v["key"].as_str().ok_or_else(|| bad("no \"key\"".into()))?;
                        done.insert(key.to_string());
                        good_bytes += line.len() as u64 + 1;
                    }
                    Err(_) if i + 1 == lines.len() => {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(path)
                            .and_then(|f| f.set_len(good_bytes))
                            .map_err(io)?;
                    }
                    Err(e) => return Err(bad(e.to_string())),
                }
            }
        }
        Ok(AlignCache { path: path.to_path_buf(), done, file: None })
    }

    /// The keys of `keys` not in the cache, in order.
    pub fn missing(&self, keys: &[String]) -> Vec<String> {
        keys.iter().filter(|k| !self.done.contains(*k)).cloned().collect()
    }

    /// Appends one record (creating the file and its folder the first time).
    pub fn append(&mut self, record: &AlignRecord) -> Result<()> {
        let io = |source| Error::CacheIo { path: self.path.clone(), source };
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            self.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?);
        }
        let line = serde_json::to_string(record).expect("an AlignRecord serialises");
        writeln!(self.file.as_mut().expect("opened above"), "{line}").map_err(io)?;
        self.done.insert(record.key.clone());
        Ok(())
    }

    /// Flushes appended records to disk.
    pub fn sync(&mut self) -> Result<()> {
        match &self.file {
            Some(f) => f.sync_all().map_err(|source| Error::CacheIo { path: self.path.clone(), source }),
            None => Ok(()),
        }
    }
}

/// What one (possibly resumed) pass over an [`AlignCache`] did.
#[derive(Debug, Clone, Default)]
pub struct AlignOutcome {
    /// Images aligned in this run.
    pub aligned: usize,
    /// Images already in the cache.
    pub already: usize,
    /// Images of this run without a detection (landmarks inside the fallback box).
    pub fallbacks: Vec<String>,
    pub seconds: f64,
}

impl AlignOutcome {
    /// Images (or frames) aligned per second in this run.
    pub fn per_second(&self) -> f64 {
        self.aligned as f64 / self.seconds.max(1e-9)
    }
}

/// Index of the face whose box centre is nearest the image centre (the first one on ties);
/// None for no faces.
pub fn choose_central(faces: &[Face], width: u32, height: u32) -> Option<usize> {
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let dist = |f: &Face| {
        let [x, y] = f.center();
        (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)
    };
    (0..faces.len()).min_by(|&a, &b| dist(&faces[a]).total_cmp(&dist(&faces[b])))
}

/// The fixed box used when no face is found, `[x, y, w, h]` in pixels: `[0.30 W, 0.28 H, 0.40 W,
/// 0.47 H]`, where a face-api detection typically lies on an LFW image (for 250x250:
/// `[75, 70, 100, 117.5]`). The landmark net is run inside it, so a face that the detector
/// missed but that sits there still gets usable landmarks.
pub fn fallback_box(width: u32, height: u32) -> [f64; 4] {
    let (w, h) = (width as f64, height as f64);
    let [fx, fy, fw, fh] = FALLBACK_FRACTIONS;
    [fx * w, fy * h, fw * w, fh * h]
}

/// The record of one decoded image: the central face, or the fallback box with the landmarks
/// the landmark net finds inside it (score 0), so that every record can be aligned the same way.
fn record(key: &str, img: &RgbImage, faces: Vec<Face>, detector: &Detector) -> Result<AlignRecord> {
    if let Some(chosen) = choose_central(&faces, img.width(), img.height()) {
        return Ok(AlignRecord { key: key.to_string(), faces, chosen, fallback: false });
    }
    let bbox = fallback_box(img.width(), img.height());
    let face = detector.landmarks_for_box(img, bbox, 0.0)?.ok_or_else(|| Error::Image {
        path: key.into(),
        msg: format!("fallback box {bbox:?} lies outside the {}x{} image", img.width(), img.height()),
    })?;
    Ok(AlignRecord { key: key.to_string(), faces: vec![face], chosen: 0, fallback: true })
}

fn decode(root: &Path, key: &str, decoder: Decoder) -> Result<RgbImage> {
    let path = root.join(key);
    // The error of facebench-image already names the file.
    let img = facebench_image::decode_file_with(&path, decoder)
        .map_err(|e| Error::Image { path: path.clone(), msg: e.to_string() })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::Image { path, msg: "empty image".into() });
    }
    Ok(img)
}

fn decode_all(root: &Path, keys: &[String], decoder: Decoder) -> Result<Vec<RgbImage>> {
    use rayon::prelude::*;
    keys.par_iter().map(|k| decode(root, k, decoder)).collect()
}

/// Runs detection + landmarks on `root/key` for every key and hands one [`AlignRecord`] per
/// image to `out`, in key order. Decoding runs in parallel (rayon) and overlaps the inference of
/// the previous batch; inference runs in batches. `progress` is called with the number of images
/// finished since its previous call. The first unreadable image stops the run with an error
/// naming it.
pub fn align_images(
    root: &Path,
    keys: &[String],
    detector: &Detector,
    progress: impl Fn(usize) + Sync,
    out: impl FnMut(AlignRecord),
) -> Result<AlignSummary> {
    align_images_with(root, keys, detector, Decoder::Image, progress, out)
}

/// [`align_images`] with a choice of JPEG decoder: [`Decoder::JpegJs`] decodes as face-api's
/// reference did, which makes boxes and landmarks agree with face-api's to 1e-4 px instead of
/// ~1 px.
pub fn align_images_with(
    root: &Path,
    keys: &[String],
    detector: &Detector,
    decoder: Decoder,
    progress: impl Fn(usize) + Sync,
    mut out: impl FnMut(AlignRecord),
) -> Result<AlignSummary> {
    let mut summary = AlignSummary::default();
    // A decode error of the next batch is reported after this batch's records are handed
    // out, so a resumable cache keeps every finished image.
    pipelined(
        keys,
        BATCH,
        |start, chunk| decode_all(root, chunk, decoder).map(|images| (start, images)),
        |(start, images): (usize, Vec<RgbImage>)| -> Result<()> {
            let chunk = &keys[start..start + images.len()];
            let refs: Vec<&RgbImage> = images.iter().collect();
            let faces = detector.detect_batch(&refs)?;
            for ((k, img), f) in chunk.iter().zip(&images).zip(faces) {
                let r = record(k, img, f, detector)?;
                summary.images += 1;
                if r.fallback {
                    summary.fallbacks.push(r.key.clone());
                } else {
                    summary.faces += r.faces.len();
                }
                out(r);
            }
            progress(chunk.len());
            Ok(())
        },
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, w: f32, h: f32) -> Face {
        Face { bbox: [x, y, w, h], score: 0.9, landmarks68: vec![[0.0, 0.0]; 68], points5: [[0.0; 2]; 5] }
    }

    #[test]
    fn central_face_is_nearest_box_centre() {
        assert_eq!(choose_central(&[], 100, 100), None);
        // centres (15, 15), (55, 45), (90, 50): the second is 5 from (50, 50)
        let faces = [face(10.0, 10.0, 10.0, 10.0), face(50.0, 40.0, 10.0, 10.0), face(80.0, 40.0, 20.0, 20.0)];
        assert_eq!(choose_central(&faces, 100, 100), Some(1));
        // a non-square image moves the centre
        assert_eq!(choose_central(&faces, 180, 100), Some(2));
        // ties: the first
        let faces = [face(40.0, 40.0, 10.0, 10.0), face(50.0, 50.0, 10.0, 10.0)];
        assert_eq!(choose_central(&faces, 100, 100), Some(0));
    }

    #[test]
    fn fallback_box_is_centred() {
        let close = |a: [f64; 4], b: [f64; 4]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-9);
        assert!(close(fallback_box(250, 250), [75.0, 70.0, 100.0, 117.5]));
        assert!(close(fallback_box(400, 200), [120.0, 56.0, 160.0, 94.0]));
        // horizontally centred
        let b = fallback_box(333, 100);
        assert!((b[0] + b[2] / 2.0 - 333.0 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn record_json_has_the_cache_shape() {
        let mut f = face(1.5, 2.0, 3.0, 4.0);
        f.landmarks68 = (0..68).map(|i| [i as f32, 0.5]).collect();
        f.points5 = [[1.0, 2.0]; 5];
        let r = AlignRecord { key: "A/A_0001.jpg".into(), faces: vec![f], chosen: 0, fallback: false };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["chosen", "faces", "fallback", "key"]);
        assert_eq!(v["key"], "A/A_0001.jpg");
        assert_eq!(v["chosen"], 0);
        assert_eq!(v["fallback"], false);
        let fj = v["faces"][0].as_object().unwrap();
        let mut keys: Vec<_> = fj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["box", "landmarks68", "points5", "score"]);
        assert_eq!(v["faces"][0]["box"], serde_json::json!([1.5, 2.0, 3.0, 4.0]));
        assert_eq!(v["faces"][0]["landmarks68"].as_array().unwrap().len(), 68);
        assert_eq!(v["faces"][0]["landmarks68"][3], serde_json::json!([3.0, 0.5]));
        assert_eq!(v["faces"][0]["points5"].as_array().unwrap().len(), 5);
        // round trip
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        // field order as documented: key, faces, chosen, fallback; face: box, score, landmarks68, points5
        assert!(
            line.starts_with(r#"{"key":"A/A_0001.jpg","faces":[{"box":[1.5,2.0,3.0,4.0],"score":0.9,"landmarks68":"#),
            "{line}"
        );
        assert!(line.ends_with(r#"]}],"chosen":0,"fallback":false}"#), "{line}");
        assert_eq!(serde_json::from_str::<AlignRecord>(&line).unwrap(), r);
    }

    #[test]
    fn cache_resumes_cuts_a_torn_tail_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("fb-align-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/align.jsonl");
        let rec =
            |k: &str| AlignRecord { key: k.into(), faces: vec![face(1.0, 2.0, 3.0, 4.0)], chosen: 0, fallback: false };
        // Opening a missing cache creates nothing; the first append creates folder and file.
        let mut c = AlignCache::open(&path).unwrap();
        c.sync().unwrap();
        assert!(!dir.exists());
        c.append(&rec("a.jpg")).unwrap();
        c.append(&rec("b.jpg")).unwrap();
        c.sync().unwrap();
        drop(c);
        let keys = ["a.jpg".to_string(), "b.jpg".into(), "c.jpg".into()];
        assert_eq!(AlignCache::open(&path).unwrap().missing(&keys), ["c.jpg"]);
        // A torn last line is cut off, and appending goes on from a clean line.
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{whole}{{\"key\": \"c.j")).unwrap();
        let mut c = AlignCache::open(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        c.append(&rec("c.jpg")).unwrap();
        drop(c);
        assert!(AlignCache::open(&path).unwrap().missing(&keys).is_empty());
        // A bad line that is not the last is an error naming file and line.
        std::fs::write(&path, format!("not json\n{whole}")).unwrap();
        let e = AlignCache::open(&path).err().unwrap().to_string();
        assert!(e.contains("align.jsonl:1:"), "{e}");
        std::fs::write(&path, format!("{{\"faces\": []}}\n{whole}")).unwrap();
        let e = AlignCache::open(&path).err().unwrap().to_string();
        assert!(e.contains("align.jsonl:1: no \"key\""), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
