//! Devkit-compatible result files and our `results.json`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::{MegafaceResults, SizeResults};
use crate::{Error, Result};

/// The name parts of a devkit result file
/// `cmc_<probe>_<distractor>_<alg>_<size>_<set>.json`.
#[derive(Debug, Clone)]
pub struct DevkitNames {
    /// `facescrub` (or `fgnet`).
    pub probe: String,
    /// `megaface`.
    pub distractor: String,
    /// The algorithm name, e.g. the feature ending without `_` and `.bin`. Add an `R`-style
    /// suffix for cleaned results: the devkit file format has no place to say it.
    pub alg: String,
    pub set: usize,
}

impl DevkitNames {
    /// The file name for one distractor size.
    pub fn file_name(&self, size: usize) -> String {
        format!("cmc_{}_{}_{}_{}_{}.json", self.probe, self.distractor, self.alg, size, self.set)
    }
}

#[derive(Serialize)]
struct DevkitJson<'a> {
    cmc: (Vec<u64>, &'a [f64]),
    roc: (&'a [f64], &'a [f64]),
}

/// The devkit JSON of one size: `{"cmc": [[0-based ranks], [rates]], "roc": [[fpr], [tpr]]}`.
pub fn devkit_json(size: &SizeResults) -> String {
    let j =
        DevkitJson { cmc: (size.cmc_curve.ranks.clone(), &size.cmc_curve.rates), roc: (&size.roc.fpr, &size.roc.tpr) };
    serde_json::to_string_pretty(&j).expect("plain numbers always serialise")
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| Error::file(path, e.to_string()))
}

/// Writes one devkit result file per size into `dir` (created if missing); returns the paths.
pub fn write_devkit_results(dir: &Path, names: &DevkitNames, results: &MegafaceResults) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e.to_string()))?;
    results
        .sizes
        .iter()
        .map(|s| {
            let path = dir.join(names.file_name(s.size));
            write_atomic(&path, &devkit_json(s))?;
            Ok(path)
        })
        .collect()
}
