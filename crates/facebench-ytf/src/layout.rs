//! Video folders on disk, in either YTF layout, and the labelled face boxes of full frames.
//!
//! * `aligned_images_DB/<Name>/<vid>/aligned_detect_<vid>.<frame>.jpg`: aligned crops;
//! * `frame_images_DB/<Name>/<vid>/<vid>.<frame>.jpg`: full frames, with one labelled face
//!   box per frame in `frame_images_DB/<Name>.labeled_faces.txt` (the official layout) or in
//!   per-video files `<Name>/<Name><vid>.labeled_faces.txt` (how the subset under the data root
//!   was published); both are read.
//!
//! Frame keys are paths relative to the layout's root (`Alek_Wek/4/4.74.jpg`), the key
//! convention of embedding stores and alignment caches.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::splits::VideoId;
use crate::{Error, Result};

/// Which of the two YTF frame layouts a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `aligned_images_DB`: `aligned_detect_<vid>.<frame>.jpg`, already cropped around the face.
    Aligned,
    /// `frame_images_DB`: `<vid>.<frame>.jpg`, full frames with labelled face boxes.
    Frames,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Aligned => "aligned",
            Layout::Frames => "frames",
        }
    }

    /// The layout a folder's name says it holds: `aligned_images_DB*` or `frame_images_DB*`
    /// (so `frame_images_DB_subset` is the frames layout).
    pub fn of_folder(path: &Path) -> Option<Layout> {
        let name = path.file_name()?.to_string_lossy();
        if name.starts_with("aligned_images_DB") {
            Some(Layout::Aligned)
        } else if name.starts_with("frame_images_DB") {
            Some(Layout::Frames)
        } else {
            None
        }
    }

    /// The folder of this layout under `<data-root>/ytf`: `aligned_images_DB`, or
    /// `frame_images_DB` falling back to `frame_images_DB_subset` when only that exists.
    pub fn default_root(self, ytf_dir: &Path) -> PathBuf {
        match self {
            Layout::Aligned => ytf_dir.join("aligned_images_DB"),
            Layout::Frames => {
                let full = ytf_dir.join("frame_images_DB");
                let subset = ytf_dir.join("frame_images_DB_subset");
                if !full.is_dir() && subset.is_dir() {
                    subset
                } else {
                    full
                }
            }
        }
    }

    /// File name of a frame of video `video`.
    pub fn frame_file(self, video: u32, frame: u32) -> String {
        match self {
            Layout::Aligned => format!("aligned_detect_{video}.{frame}.jpg"),
            Layout::Frames => format!("{video}.{frame}.jpg"),
        }
    }

    /// The frame number of a file name of video `video`; None for any other name.
    fn parse_frame(self, file: &str, video: u32) -> Option<u32> {
        let rest = match self {
            Layout::Aligned => file.strip_prefix("aligned_detect_")?,
            Layout::Frames => file,
        };
        let rest = rest.strip_suffix(".jpg")?;
        let (v, f) = rest.split_once('.')?;
        if v.parse::<u32>().ok()? != video || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        f.parse().ok()
    }
}

/// The frames of every video found under a layout's root, frame numbers ascending.
#[derive(Debug, Clone)]
pub struct VideoIndex {
    pub root: PathBuf,
    pub layout: Layout,
    pub videos: BTreeMap<VideoId, Vec<u32>>,
}

impl VideoIndex {
    /// Looks for each wanted video's folder `<root>/<Name>/<vid>`; a video without a folder is
    /// simply absent (the caller decides what missing videos mean). A folder with no frame, or
    /// with a `.jpg` not named as the layout names frames, is an error naming it.
    pub fn scan(root: &Path, layout: Layout, wanted: &[VideoId]) -> Result<VideoIndex> {
        if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "{}: no such folder (the YTF {} layout)",
                root.display(),
                layout.name()
            )));
        }
        let mut videos = BTreeMap::new();
        for id in wanted {
            let dir = root.join(&id.name).join(id.video.to_string());
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut frames = Vec::new();
            for e in entries {
                let e = e.map_err(|e| Error::io(&dir, e))?;
                let file = e.file_name().to_string_lossy().into_owned();
                if !file.to_ascii_lowercase().ends_with(".jpg") {
                    continue;
                }
                let frame = layout.parse_frame(&file, id.video).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: not a frame name of the {} layout (expected {})",
                        dir.join(&file).display(),
                        layout.name(),
                        layout.frame_file(id.video, 123)
                    ))
                })?;
                frames.push(frame);
            }
            if frames.is_empty() {
                return Err(Error::Invalid(format!("{}: video folder without frames", dir.display())));
            }
            frames.sort_unstable();
            videos.insert(id.clone(), frames);
        }
        Ok(VideoIndex { root: root.to_path_buf(), layout, videos })
    }

    /// Key of a frame relative to the root: `<Name>/<vid>/<file>`.
    pub fn frame_key(&self, id: &VideoId, frame: u32) -> String {
        format!("{}/{}/{}", id.name, id.video, self.layout.frame_file(id.video, frame))
    }

    /// Keys of the selected frames of `id` (empty if the video was not found).
    pub fn selected_keys(&self, id: &VideoId, sel: &FrameSelection) -> Vec<String> {
        self.videos.get(id).map(|f| sel.apply(f).iter().map(|&fr| self.frame_key(id, fr)).collect()).unwrap_or_default()
    }
}

/// Which frames of a video are used: every `stride`-th frame (in frame-number order, from the
/// first), then at most the first `max_frames` of those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameSelection {
    pub stride: usize,
    pub max_frames: Option<usize>,
}

impl Default for FrameSelection {
    fn default() -> Self {
        FrameSelection { stride: 1, max_frames: None }
    }
}

impl FrameSelection {
    /// `frames[0::stride][..max_frames]`.
    pub fn apply<T: Clone>(&self, frames: &[T]) -> Vec<T> {
        let cap = self.max_frames.unwrap_or(usize::MAX);
        frames.iter().step_by(self.stride.max(1)).take(cap).cloned().collect()
    }

    /// In words, for reports.
    pub fn describe(&self) -> String {
        let mut s = match self.stride {
            0 | 1 => "every frame".to_string(),
            k => format!("every {k}th frame"),
        };
        if let Some(n) = self.max_frames {
            s += &format!(", at most the first {n}");
        }
        s
    }
}

/// A labelled face: centre and size in pixels of the full frame (YTF's `x,y,width,height`,
/// where x,y is the centre).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceBox {
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
}

impl FaceBox {
    /// `[x, y, w, h]` (top-left corner and size).
    pub fn xywh(&self) -> [f64; 4] {
        [self.cx - self.w / 2.0, self.cy - self.h / 2.0, self.w, self.h]
    }

    /// The box grown by `margin` times its width/height on every side, clipped to a
    /// `width x height` image, in whole pixels `[x, y, w, h]`; None if nothing is left.
    pub fn search_region(&self, margin: f64, width: u32, height: u32) -> Option<[u32; 4]> {
        let (hw, hh) = (self.w * (0.5 + margin), self.h * (0.5 + margin));
        let x0 = (self.cx - hw).floor().max(0.0);
        let y0 = (self.cy - hh).floor().max(0.0);
        let x1 = (self.cx + hw).ceil().min(width as f64);
        let y1 = (self.cy + hh).ceil().min(height as f64);
        if x1 - x0 < 1.0 || y1 - y0 < 1.0 {
            return None;
        }
        Some([x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32])
    }
}

/// Labelled face boxes by frame key (`Name/vid/vid.frame.jpg`).
#[derive(Debug, Clone, Default)]
pub struct LabeledFaces {
    boxes: HashMap<String, FaceBox>,
    files: Vec<PathBuf>,
}

impl LabeledFaces {
    /// Reads the label files of every person in `names`: `<root>/<Name>.labeled_faces.txt`
    /// and any `<root>/<Name>/*.labeled_faces.txt`. A person with videos but no label file
    /// is an error naming the places looked at.
    pub fn read_for<'a>(root: &Path, names: impl IntoIterator<Item = &'a str>) -> Result<LabeledFaces> {
        let mut out = LabeledFaces::default();
        let mut done = std::collections::HashSet::new();
        for name in names {
            if !done.insert(name.to_string()) {
                continue;
            }
            let mut files = Vec::new();
            let person_file = root.join(format!("{name}.labeled_faces.txt"));
            if person_file.is_file() {
                files.push(person_file.clone());
            }
            if let Ok(entries) = std::fs::read_dir(root.join(name)) {
                let mut inner: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.to_string_lossy().ends_with(".labeled_faces.txt"))
                    .collect();
                inner.sort();
                files.extend(inner);
            }
            if files.is_empty() {
                return Err(Error::Invalid(format!(
                    "no labelled face boxes for {name}: neither {} nor {}/<Name><video>.labeled_faces.txt exists",
                    person_file.display(),
                    root.join(name).display()
                )));
            }
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
                out.parse_into(&text, &f)?;
            }
        }
        Ok(out)
    }

    /// Adds the lines of one label file: `filename,ignore,x_center,y_center,width,height,ignore,ignore`
    /// with backslash paths (`Alek_Wek\1\1.189.jpg`). The same frame labelled twice with
    /// different boxes is an error naming both files.
    pub fn parse_into(&mut self, text: &str, path: &Path) -> Result<()> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let err = |msg: String| Error::Parse { path: path.to_path_buf(), line: i + 1, msg };
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 8 {
                return Err(err(format!("expected 8 comma-separated fields, found {}: {line:?}", f.len())));
            }
            let key = f[0].replace('\\', "/");
            if key.split('/').count() != 3 {
                return Err(err(format!("field 1 must be <Name>\\<video>\\<file>, found {:?}", f[0])));
            }
            let num = |j: usize| -> Result<f64> {
                f[j].parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| err(format!("field {} must be a number, found {:?}", j + 1, f[j])))
            };
            let b = FaceBox { cx: num(2)?, cy: num(3)?, w: num(4)?, h: num(5)? };
            if b.w <= 0.0 || b.h <= 0.0 {
                return Err(err(format!("face box of {key} has width {} and height {}", b.w, b.h)));
            }
            if let Some(old) = self.boxes.insert(key.clone(), b) {
                if old != b {
                    return Err(err(format!(
                        "{key} is labelled again with another box (files read: {:?})",
                        self.files
                    )));
                }
            }
        }
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// The labelled box of a frame key.
    pub fn get(&self, key: &str) -> Option<&FaceBox> {
        self.boxes.get(key)
    }

    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// The label files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names() {
        assert_eq!(Layout::Frames.parse_frame("4.74.jpg", 4), Some(74));
        assert_eq!(Layout::Frames.parse_frame("3.74.jpg", 4), None);
        assert_eq!(Layout::Aligned.parse_frame("aligned_detect_4.1074.jpg", 4), Some(1074));
        assert_eq!(Layout::Aligned.parse_frame("4.74.jpg", 4), None);
        assert_eq!(Layout::Frames.frame_file(4, 74), "4.74.jpg");
        assert_eq!(Layout::of_folder(Path::new("/d/ytf/frame_images_DB_subset")), Some(Layout::Frames));
        assert_eq!(Layout::of_folder(Path::new("aligned_images_DB")), Some(Layout::Aligned));
        assert_eq!(Layout::of_folder(Path::new("faces")), None);
    }

    #[test]
    fn selection_is_stride_then_first_n() {
        let f: Vec<u32> = (0..10).collect();
        assert_eq!(FrameSelection::default().apply(&f), f);
        assert_eq!(FrameSelection { stride: 3, max_frames: None }.apply(&f), vec![0, 3, 6, 9]);
        assert_eq!(FrameSelection { stride: 3, max_frames: Some(2) }.apply(&f), vec![0, 3]);
        assert_eq!(FrameSelection { stride: 1, max_frames: Some(4) }.apply(&f), vec![0, 1, 2, 3]);
    }

    #[test]
    fn search_region_grows_and_clips() {
        let b = FaceBox { cx: 50.0, cy: 40.0, w: 20.0, h: 10.0 };
        assert_eq!(b.xywh(), [40.0, 35.0, 20.0, 10.0]);
        assert_eq!(b.search_region(0.0, 100, 100), Some([40, 35, 20, 10]));
        assert_eq!(b.search_region(0.5, 100, 100), Some([30, 30, 40, 20]));
        assert_eq!(b.search_region(2.0, 100, 60), Some([0, 15, 100, 45]));
        let off = FaceBox { cx: 500.0, cy: 40.0, w: 20.0, h: 10.0 };
        assert_eq!(off.search_region(0.5, 100, 100), None);
    }

    #[test]
    fn label_lines() {
        let mut l = LabeledFaces::default();
        let p = Path::new("A.labeled_faces.txt");
        l.parse_into("A\\1\\1.189.jpg,0,335,88,51,51,0.0,1\r\n\n", p).unwrap();
        assert_eq!(l.get("A/1/1.189.jpg"), Some(&FaceBox { cx: 335.0, cy: 88.0, w: 51.0, h: 51.0 }));
        // the same line again is fine, another box is not
        l.parse_into("A\\1\\1.189.jpg,0,335,88,51,51,0.0,1\n", p).unwrap();
        let e = l.parse_into("x\nA\\1\\1.189.jpg,0,336,88,51,51,0.0,1\n", p).unwrap_err().to_string();
        assert!(e.contains("A.labeled_faces.txt:1") && e.contains("8 comma-separated"), "{e}");
        let e = l.parse_into("A\\1\\1.189.jpg,0,336,88,51,51,0.0,1\n", p).unwrap_err().to_string();
        assert!(e.contains("labelled again"), "{e}");
        let e = l.parse_into("A\\1\\1.19.jpg,0,3,8,zero,51,0.0,1\n", p).unwrap_err().to_string();
        assert!(e.contains("field 5"), "{e}");
    }
}
