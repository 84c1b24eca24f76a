//! The devkit's template lists and InsightFace's noise lists.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// The probe list `facescrub_features_list.json`: one identity name and one relative image
/// path per probe image, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeList {
    pub ids: Vec<String>,
    pub paths: Vec<String>,
}

#[derive(Deserialize)]
struct ProbeJson {
    id: Vec<String>,
    path: Vec<String>,
}

#[derive(Deserialize)]
struct DistractorJson {
    path: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::file(path, format!("line {}, column {}: not a {what}: {e}", e.line(), e.column())))
}

/// Rejects empty and repeated paths, naming the index of the repeat.
fn check_paths(path: &Path, paths: &[String]) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        if p.is_empty() {
            return Err(Error::file(path, format!("entry {i} of \"path\" is empty")));
        }
        if let Some(j) = seen.insert(p, i) {
            return Err(Error::file(path, format!("path {p:?} is listed twice (entries {j} and {i})")));
        }
    }
    Ok(())
}

/// Reads a probe list (`{"id": [...], "path": [...]}`); the two arrays must have equal length.
pub fn read_probe_list(path: &Path) -> Result<ProbeList> {
    let j: ProbeJson = read_json(path, "probe list {\"id\": [...], \"path\": [...]}")?;
    if j.id.len() != j.path.len() {
        return Err(Error::file(path, format!("\"id\" has {} entries but \"path\" has {}", j.id.len(), j.path.len())));
    }
    if j.path.is_empty() {
        return Err(Error::file(path, "the probe list is empty"));
    }
    if let Some(i) = j.id.iter().position(|s| s.is_empty()) {
        return Err(Error::file(path, format!("entry {i} of \"id\" is empty")));
    }
    check_paths(path, &j.path)?;
    Ok(ProbeList { ids: j.id, paths: j.path })
}

/// Reads a distractor list (`{"path": [...]}`), order kept.
pub fn read_distractor_list(path: &Path) -> Result<Vec<String>> {
    let j: DistractorJson = read_json(path, "distractor list {\"path\": [...]}")?;
    check_paths(path, &j.path)?;
    Ok(j.path)
}

/// The devkit's file name for the distractor list of `size` in set `set`:
/// `<dir>/megaface_features_list.json_<size>_<set>`.
pub fn distractor_list_path(dir: &Path, size: usize, set: usize) -> PathBuf {
    dir.join(format!("megaface_features_list.json_{size}_{set}"))
}

/// Reads the devkit lists of every size in `sizes` (set `set`) from `dir`, as
/// `(size, paths)` in the order given.
pub fn read_distractor_lists(dir: &Path, sizes: &[usize], set: usize) -> Result<Vec<(usize, Vec<String>)>> {
    sizes.iter().map(|&s| Ok((s, read_distractor_list(&distractor_list_path(dir, s, set))?))).collect()
}

/// Per-size lists made of the first N paths of one list (for a single distractor list such
/// as the devkit's 1M list, or a stand-in), in the order of `sizes`.
pub fn first_n_lists(list: &[String], sizes: &[usize]) -> Result<Vec<(usize, Vec<String>)>> {
    sizes
        .iter()
        .map(|&s| {
            if s == 0 || s > list.len() {
                return Err(Error::Invalid(format!(
                    "distractor size {s} is not between 1 and the {} paths of the list",
                    list.len()
                )));
            }
            Ok((s, list[..s].to_vec()))
        })
        .collect()
}

/// An InsightFace noise list (`facescrub_noises.txt` / `megaface_noises.txt`): one image a
/// line, `#` comment lines and blank lines ignored.
///
/// FaceScrub entries are bare file names (`Aaron_Eckhart_136.png`) and cover the whole of
/// FaceScrub, so probes match by the file name of their list path; MegaFace entries are list
/// paths (`375/37531198@N00/4174611825_0.jpg`) and match exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseList {
    entries: HashSet<String>,
}

impl NoiseList {
    /// Reads a noise list. Repeated entries are harmless (InsightFace's own MegaFace list has
    /// some) and count once.
    pub fn read(path: &Path) -> Result<NoiseList> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
        let entries =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
        Ok(NoiseList { entries })
    }

    /// A list from entries given in code (tests, other noise sources).
    pub fn from_entries<I: IntoIterator<Item = S>, S: Into<String>>(entries: I) -> NoiseList {
        NoiseList { entries: entries.into_iter().map(Into::into).collect() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a probe image (relative list path) is on the list: matched by its file name.
    pub fn has_probe(&self, rel_path: &str) -> bool {
        let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
        self.entries.contains(name)
    }

    /// Whether a distractor image (relative list path) is on the list: matched exactly.
    pub fn has_distractor(&self, rel_path: &str) -> bool {
        self.entries.contains(rel_path)
    }
}
