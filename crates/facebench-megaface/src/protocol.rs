//! `protocols/megaface.toml`: MegaFace Challenge 1's constants (list names and folders,
//! distractor sizes, the probe set's size, the noise lists) and its published rows, as data.

use std::path::{Path, PathBuf};

use facebench_metrics::{check_published, Figures, Published};
use serde::Deserialize;

use crate::lists::{distractor_list_path, read_probe_list, ProbeList};
use crate::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MegafaceProtocol {
    pub name: String,
    pub description: String,
    pub lists: Lists,
    pub noises: Noises,
    #[serde(default)]
    pub published: Vec<Published>,
    /// The `[data]` table `facebench fetch` reads (sources, checksums); its schema lives there.
    #[serde(default)]
    pub data: Option<toml::Table>,
}

/// Paths relative to the data root.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lists {
    /// The devkit's probe list (`facescrub_features_list.json`).
    pub probe: PathBuf,
    pub probe_identities: usize,
    pub probe_images: usize,
    /// Folder of the distractor lists `megaface_features_list.json_<size>_<set>`.
    pub distractors: PathBuf,
    /// Distractor set sizes, ascending (10 to 1M).
    pub sizes: Vec<usize>,
    pub set: usize,
}

/// InsightFace's noise lists for the noise-cleaned ("R") variant, relative to the data root.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noises {
    pub probe: PathBuf,
    pub distractor: PathBuf,
}

impl MegafaceProtocol {
    pub fn read(path: &Path) -> Result<MegafaceProtocol> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
        let mut p: MegafaceProtocol = toml::from_str(&text).map_err(|e| Error::file(path, e.to_string()))?;
        let l = &p.lists;
        if l.sizes.is_empty() || l.sizes.contains(&0) || !l.sizes.is_sorted_by(|a, b| a < b) {
            return Err(Error::file(path, format!("lists.sizes {:?}: positive and ascending", l.sizes)));
        }
        if l.probe_identities == 0 || l.probe_images < 2 * l.probe_identities {
            return Err(Error::file(
                path,
                format!("{} probe images of {} identities: two or more each", l.probe_images, l.probe_identities),
            ));
        }
        check_published(&mut p.published, &p.name, Figures::Megaface).map_err(|msg| Error::file(path, msg))?;
        Ok(p)
    }

    /// Reads the probe list under `data_root` and checks its size against the protocol's.
    pub fn read_probe_list(&self, data_root: &Path) -> Result<ProbeList> {
        let path = data_root.join(&self.lists.probe);
        let list = read_probe_list(&path)?;
        let ids = list.ids.iter().collect::<std::collections::HashSet<_>>().len();
        let l = &self.lists;
        if (list.paths.len(), ids) != (l.probe_images, l.probe_identities) {
            return Err(Error::file(
                &path,
                format!(
                    "{} images of {ids} identities; protocol {} declares {} of {}",
                    list.paths.len(),
                    self.name,
                    l.probe_images,
                    l.probe_identities
                ),
            ));
        }
        Ok(list)
    }

    /// The devkit list of distractor size `size` (of the protocol's set) under `data_root`.
    pub fn distractor_list_path(&self, data_root: &Path, size: usize) -> PathBuf {
        distractor_list_path(&data_root.join(&self.lists.distractors), size, self.lists.set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn repository_file_reads_and_names_the_data() {
        let p = MegafaceProtocol::read(&repo().join("protocols/megaface.toml")).unwrap();
        assert_eq!(p.lists.sizes, [10, 100, 1000, 10_000, 100_000, 1_000_000]);
        assert_eq!(
            (p.lists.probe_identities, p.lists.probe_images),
            (crate::FACESCRUB_IDENTITIES, crate::FACESCRUB_IMAGES)
        );
        assert_eq!(p.published.len(), 7);
        let arc = p.published.iter().find(|r| r.setting == "R100 MS1MV2, ArcFace loss").unwrap();
        let figures = [arc.rank1, arc.rank1_r, arc.tar_at_far_1e6, arc.tar_at_far_1e6_r];
        assert_eq!(
            (arc.protocol.as_str(), figures),
            ("megaface", [Some(81.03), Some(98.35), Some(96.98), Some(98.48)])
        );
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(repo().join("../shared/data"));
        assert_eq!(p.read_probe_list(&data).unwrap().paths.len(), 3530);
        // The 1M list is not in the data root (over 4 MiB); the others are.
        for &s in &p.lists.sizes[..5] {
            let list = crate::read_distractor_list(&p.distractor_list_path(&data, s)).unwrap();
            assert_eq!(list.len(), s);
        }
        assert!(data.join(&p.noises.probe).is_file() && data.join(&p.noises.distractor).is_file());
    }

    #[test]
    fn bad_values_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("fb-mf-proto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read_to_string(repo().join("protocols/megaface.toml")).unwrap();
        let path = dir.join("megaface.toml");
        for (from, to, want) in [
            ("sizes = [10, 100,", "sizes = [100, 10,", "ascending"),
            ("probe_images = 3530", "probe_images = 100", "two or more each"),
            ("rank1 = 84.26\ntar_at_far_1e6 = 97.96\n", "", "at least one"),
            ("rank1 = 84.26", "rank1 = 842.6", "percentages"),
            ("rank1 = 84.26", "rank_1 = 84.26", "unknown field"),
            ("rank1 = 84.26", "accuracy = 84.26", "not a MegaFace figure"),
        ] {
            assert!(good.contains(from), "{from}");
            std::fs::write(&path, good.replace(from, to)).unwrap();
            let e = MegafaceProtocol::read(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("megaface.toml"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
