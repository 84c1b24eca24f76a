//! Which images a command works on: an explicit list, or a protocol's images.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use facebench_pairs::Pairs;

use crate::{io, Error, Result};

/// The image set of a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolImages {
    /// LFW View 2: the images named by pairs.txt.
    Lfw,
    /// LFW View 1: the images of pairsDevTrain.txt and pairsDevTest.txt.
    LfwView1,
    /// YouTube Faces: every frame of the videos splits.txt names that exist under the root.
    Ytf,
    /// MegaFace Challenge 1: the FaceScrub probes and every devkit list's distractors.
    Megaface,
}

/// `--list FILE | --protocol NAME`, with the image root.
#[derive(Debug, Clone, Default)]
pub struct ImageSet {
    /// Image root; keys are relative to it [default for LFW: <data-root>/lfw/lfw-deepfunneled].
    pub root: Option<PathBuf>,
    /// File of image keys, one per line.
    pub list: Option<PathBuf>,
    pub protocol: Option<ProtocolImages>,
}

impl ImageSet {
    /// The image root and the keys, in a stable order.
    pub fn resolve(&self, data_root: &Path) -> Result<(PathBuf, Vec<String>)> {
        let lfw = data_root.join("lfw");
        let ytf = data_root.join("ytf");
        let default_root = match self.protocol {
            Some(ProtocolImages::Ytf) if ytf.join("frame_images_DB").is_dir() => ytf.join("frame_images_DB"),
            Some(ProtocolImages::Ytf) => ytf.join("frame_images_DB_subset"),
            _ => lfw.join("lfw-deepfunneled"),
        };
        let root = self.root.clone().unwrap_or(default_root);
        let keys = match (&self.list, self.protocol) {
            (Some(list), _) => read_list(list)?,
            (None, Some(ProtocolImages::Lfw)) => Pairs::read(&lfw.join("pairs.txt"))?.image_keys(),
            (None, Some(ProtocolImages::LfwView1)) => {
                let mut keys = Pairs::read(&lfw.join("pairsDevTrain.txt"))?.image_keys();
                let seen: HashSet<String> = keys.iter().cloned().collect();
                let test = Pairs::read(&lfw.join("pairsDevTest.txt"))?.image_keys();
                keys.extend(test.into_iter().filter(|k| !seen.contains(k)));
                keys
            }
            (None, Some(ProtocolImages::Ytf)) => ytf_frames(&ytf.join("splits.txt"), &root)?,
            (None, Some(ProtocolImages::Megaface)) => {
                if self.root.is_none() {
                    return Err("--protocol megaface needs --root (the folder of FaceScrub and MegaFace images)".into());
                }
                megaface_images(&data_root.join("megaface/templatelists"))?
            }
            (None, None) => return Err("give --list FILE or --protocol NAME".into()),
        };
        Ok((root, keys))
    }
}

/// The FaceScrub probe list's paths, then every devkit distractor list's (first seen wins).
fn megaface_images(lists: &Path) -> Result<Vec<String>> {
    let mut keys = facebench_megaface::read_probe_list(&lists.join("facescrub_features_list.json"))?.paths;
    let mut seen: HashSet<String> = keys.iter().cloned().collect();
    let mut names: Vec<_> = std::fs::read_dir(lists)
        .map_err(io(lists))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("megaface_features_list.json_")))
        .collect();
    names.sort();
    for p in names {
        for k in facebench_megaface::read_distractor_list(&p)? {
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
    }
    Ok(keys)
}

/// Frames of the videos `splits.txt` names found under `root`, read and checked by the YTF
/// crate (header, labels, 10 x 500 pairs), in the layout the folder's name says.
fn ytf_frames(splits: &Path, root: &Path) -> Result<Vec<String>> {
    let proto = facebench_ytf::YtfProtocol::read(&facebench_pairs::published::default_dir().join("ytf.toml"))?;
    let splits = facebench_ytf::Splits::read(splits, &proto.splits)?;
    let layout = facebench_ytf::Layout::of_folder(root).unwrap_or(facebench_ytf::Layout::Frames);
    let videos = splits.videos();
    let index = facebench_ytf::VideoIndex::scan(root, layout, &videos)?;
    let all = facebench_ytf::FrameSelection::default();
    let keys: Vec<String> = videos.iter().flat_map(|v| index.selected_keys(v, &all)).collect();
    eprintln!(
        "ytf: found {} of the {} videos splits.txt names under {} ({} frames)",
        index.videos.len(),
        videos.len(),
        root.display(),
        keys.len()
    );
    if keys.is_empty() {
        return Err(Error::Invalid(format!(
            "no frames of the videos named by {} under {}",
            splits.path.display(),
            root.display()
        )));
    }
    Ok(keys)
}

/// One key per line; blank lines are ignored, duplicates are an error naming the line.
fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut seen = HashMap::new();
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let k = line.trim();
        if k.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(k.to_string(), i + 1) {
            return Err(Error::Invalid(format!(
                "{}:{}: duplicate key {k:?} (first at line {first})",
                path.display(),
                i + 1
            )));
        }
        keys.push(k.to_string());
    }
    Ok(keys)
}
