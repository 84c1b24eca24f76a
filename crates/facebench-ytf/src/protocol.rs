//! `protocols/ytf.toml`: YTF's constants (the splits file, its header, 10 splits x 500
//! pairs, the dataset's video count) and its published rows, as data.

use std::path::{Path, PathBuf};

use facebench_metrics::{check_published, Figures, Published};
use serde::Deserialize;

use crate::splits::Splits;
use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YtfProtocol {
    pub name: String,
    pub description: String,
    pub splits: SplitsSpec,
    #[serde(default)]
    pub published: Vec<Published>,
    /// The `[data]` table `facebench fetch` reads (sources, checksums); its schema lives there.
    #[serde(default)]
    pub data: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitsSpec {
    /// `splits.txt`, relative to the data root.
    pub file: PathBuf,
    pub header: String,
    pub splits: usize,
    pub pairs_per_split: usize,
    pub dataset_videos: usize,
}

impl YtfProtocol {
    /// Reads and validates the file; [`Splits`] checks `splits.txt` against its structure.
    pub fn read(path: &Path) -> Result<YtfProtocol> {
        let fail = |msg: String| Error::Format { path: path.to_path_buf(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut p: YtfProtocol = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let s = &p.splits;
        // Cross-validation needs two or more splits.
        if s.header.trim().is_empty() || s.splits < 2 || s.pairs_per_split == 0 {
            return Err(fail(format!(
                "splits: header {:?}, {} x {} pairs: a header, two or more splits, pairs in each",
                s.header, s.splits, s.pairs_per_split
            )));
        }
        check_published(&mut p.published, &p.name, Figures::Accuracy).map_err(fail)?;
        Ok(p)
    }

    /// Reads and validates the protocol's `splits.txt` under `data_root`.
    pub fn read_splits(&self, data_root: &Path) -> Result<Splits> {
        Splits::read(&data_root.join(&self.splits.file), &self.splits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn repository_file_reads_and_its_splits_parse() {
        let p = YtfProtocol::read(&repo().join("protocols/ytf.toml")).unwrap();
        assert_eq!((p.name.as_str(), p.splits.splits * p.splits.pairs_per_split), ("ytf", 5000));
        assert_eq!(p.published.len(), 5);
        assert!(p
            .published
            .iter()
            .any(|r| r.accuracy == Some(97.6) && r.source == "CosFace paper" && r.protocol == "ytf"));
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(repo().join("../shared/data"));
        assert_eq!(p.read_splits(&data).unwrap().pairs.len(), 5000);
    }

    #[test]
    fn another_split_structure_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fb-ytf-proto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read_to_string(repo().join("protocols/ytf.toml")).unwrap();
        let path = dir.join("ytf.toml");
        for (from, to, want) in [
            ("splits = 10", "splits = 1", "1 x 500 pairs"),
            ("accuracy = 97.6", "accuracy = 976", "not a percentage"),
            ("accuracy = 97.6", "rank1 = 97.6", "MegaFace figure"),
            ("splits = 10", "splits = 10\nfolds = 10", "unknown field"),
        ] {
            std::fs::write(&path, good.replace(from, to)).unwrap();
            let e = YtfProtocol::read(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("ytf.toml"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
