//! Where a cache folder keeps what the stages computed. Every path under a cache is made here.
//!
//! ```text
//! <cache>/align.jsonl                      alignments of still images (LFW)
//! <cache>/align-<tag>.jsonl                alignments of YTF frames, per layout and search
//! <cache>/<model>/<align>.fbs              embeddings (+ <align>.flip.fbs, the mirrors)
//! <cache>/<model>/<tag>.fbs                embeddings of YTF frames
//! <cache>/<model>/tune.json                the View-1 choice
//! <cache>/stages.json                      what computing each stage cost (see stages.rs)
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct CacheLayout {
    pub root: PathBuf,
}

/// A name safe as a file name: ASCII letters and digits kept, everything else `_`
/// (`centre:112` -> `centre_112`); `keep` names extra characters to keep.
fn safe(s: &str, keep: &[char]) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || keep.contains(&c) { c } else { '_' }).collect()
}

impl CacheLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheLayout { root: root.into() }
    }

    pub fn align(&self) -> PathBuf {
        self.root.join("align.jsonl")
    }

    /// A model's store for one `--align` value.
    pub fn store(&self, model: &str, align: &str) -> PathBuf {
        self.root.join(model).join(format!("{}.fbs", safe(align, &[])))
    }

    pub fn tune(&self, model: &str) -> PathBuf {
        self.root.join(model).join("tune.json")
    }

    pub fn stages(&self) -> PathBuf {
        self.root.join("stages.json")
    }

    /// YTF frame alignments for a layout/search tag (`frames-landmarks-m0.3-c2`).
    pub fn frame_align(&self, tag: &str) -> PathBuf {
        self.root.join(format!("align-{}.jsonl", safe(tag, &['.'])))
    }

    /// YTF frame embeddings for a tag.
    pub fn frame_store(&self, model: &str, tag: &str) -> PathBuf {
        self.root.join(model).join(format!("{}.fbs", safe(tag, &['.'])))
    }

    /// A tag part made of a user's `--align` value, as the frame file names spell it.
    pub fn tag_part(s: &str) -> String {
        safe(s, &['.'])
    }
}

/// `<stem>.flip.fbs` beside a store: the mirror images' features.
pub fn flip_path(store: &Path) -> PathBuf {
    store.with_extension("flip.fbs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_their_old_names() {
        let c = CacheLayout::new("c");
        assert_eq!(c.store("m", "centre:112"), Path::new("c/m/centre_112.fbs"));
        assert_eq!(flip_path(&c.store("m", "landmarks")), Path::new("c/m/landmarks.flip.fbs"));
        assert_eq!(c.frame_align("frames-landmarks-m0.3-c2"), Path::new("c/align-frames_landmarks_m0.3_c2.jsonl"));
        assert_eq!(c.frame_store("m", "aligned-centre:100-c2"), Path::new("c/m/aligned_centre_100_c2.fbs"));
    }
}
