//! Which images a command works on: an explicit list, or a protocol's images.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use facebench_lfw::Pairs;

/// The image set of a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolImages {
    /// LFW View 2: the 7,701 images named by pairs.txt.
    Lfw,
    /// LFW View 1: the images of pairsDevTrain.txt and pairsDevTest.txt.
    LfwView1,
    /// YouTube Faces: every frame of the videos named by <data-root>/ytf/splits.txt that exist
    /// under --root (default <data-root>/ytf/frame_images_DB, else frame_images_DB_subset),
    /// layout <Name>/<video>/<video>.<frame>.jpg; prints how many of the named videos it found.
    Ytf,
    /// MegaFace Challenge 1: the FaceScrub probes and the distractors of every devkit list
    /// in <data-root>/megaface/templatelists (images under --root).
    Megaface,
}

/// `--list FILE | --protocol NAME`, with the image root.
#[derive(Args, Debug, Clone)]
pub struct ImageSet {
    /// Image root; keys are paths relative to it [default for LFW: <data-root>/lfw/lfw-deepfunneled].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// File of image keys, one path (relative to --root) per line.
    #[arg(long, conflicts_with = "protocol")]
    pub list: Option<PathBuf>,
    /// A protocol's images instead of a list.
    #[arg(long)]
    pub protocol: Option<ProtocolImages>,
}

impl ImageSet {
    /// The image root and the keys, in a stable order.
    pub fn resolve(&self, data_root: &Path) -> Result<(PathBuf, Vec<String>), Box<dyn std::error::Error>> {
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
                let seen: std::collections::HashSet<String> = keys.iter().cloned().collect();
                let test = Pairs::read(&lfw.join("pairsDevTest.txt"))?.image_keys();
                keys.extend(test.into_iter().filter(|k| !seen.contains(k)));
                keys
            }
            (None, Some(ProtocolImages::Ytf)) => ytf_frames(&ytf.join("splits.txt"), &root)?,
            (None, Some(ProtocolImages::Megaface)) => {
                if self.root.is_none() {
                    return Err("--protocol megaface needs --root (the folder of FaceScrub and MegaFace images)".into());
                }
                let lists = data_root.join("megaface/templatelists");
                let mut keys = facebench_megaface::read_probe_list(&lists.join("facescrub_features_list.json"))?.paths;
                let mut seen: std::collections::HashSet<String> = keys.iter().cloned().collect();
                let mut names: Vec<_> = std::fs::read_dir(&lists)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("megaface_features_list.json_"))
                    })
                    .collect();
                names.sort();
                for p in names {
                    for k in facebench_megaface::read_distractor_list(&p)? {
                        if seen.insert(k.clone()) {
                            keys.push(k);
                        }
                    }
                }
                keys
            }
            (None, None) => return Err("give --list FILE or --protocol NAME".into()),
        };
        Ok((root, keys))
    }
}

/// Frames of the videos `splits.txt` names found under `root`, read and checked by the YTF
/// crate (header, labels, 10 x 500 pairs), in the layout the folder's name says.
fn ytf_frames(splits: &Path, root: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let splits = facebench_ytf::Splits::read(splits)?;
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
        return Err(
            format!("no frames of the videos named by {} under {}", splits.path.display(), root.display()).into()
        );
    }
    Ok(keys)
}

/// One key per line; blank lines are ignored, duplicates are an error naming the line.
pub fn read_list(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = std::collections::HashMap::new();
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let k = line.trim();
        if k.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(k.to_string(), i + 1) {
            return Err(format!("{}:{}: duplicate key {k:?} (first at line {first})", path.display(), i + 1).into());
        }
        keys.push(k.to_string());
    }
    Ok(keys)
}

/// A progress bar with rate and ETA on stderr.
pub fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    pb
}
