//! Published results: the `[[published]]` rows of the protocol files, the only place
//! published numbers are written, as [`Published`] rows (facebench-metrics, which every
//! protocol crate reads them with). Reports show them beside measured rows, labelled as
//! published.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use facebench_core::{Error, Result};
use facebench_metrics::{check_published, Figures, Published};

/// `$FACEBENCH_PROTOCOLS`, else the repository's `protocols/` (where the published rows are).
pub fn default_dir() -> PathBuf {
    match std::env::var_os("FACEBENCH_PROTOCOLS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols"),
    }
}

/// The protocol files of `dir`, sorted: every `*.toml` directly in it except the model
/// registry (`models.toml`, not a protocol). Fragments under `common/` are read through the
/// files that include them.
pub(crate) fn protocol_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let toml = path.extension().is_some_and(|x| x == "toml");
        if toml && path.is_file() && path.file_name().is_some_and(|n| n != "models.toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every published row of every protocol file in `protocols_dir`, in file-name order and
/// then file order. A row that several files share through one fragment (the LFW rows of
/// `lfw.toml` and `lfw_bin.toml`) is returned once; the same protocol, source and setting
/// with different numbers in two files is an error naming both. Each row is checked as its
/// protocol reads it: MegaFace's (a file with `[lists]`) give its four figures, every other
/// protocol's an accuracy.
pub fn all(protocols_dir: &Path) -> Result<Vec<Published>> {
    let mut rows: Vec<Published> = Vec::new();
    let mut seen: HashMap<(String, String, String), (usize, PathBuf)> = HashMap::new();
    for path in protocol_files(protocols_dir)? {
        let mut table = crate::include::read_merged(&path)?.table;
        let name = match table.get("name") {
            Some(toml::Value::String(s)) => s.clone(),
            _ => return Err(Error::format(&path, "no `name` string")),
        };
        let figures = if table.contains_key("lists") { Figures::Megaface } else { Figures::Accuracy };
        let Some(published) = table.remove("published") else { continue };
        let mut file_rows: Vec<Published> =
            published.try_into().map_err(|e| Error::format(&path, format!("[[published]]: {e}")))?;
        check_published(&mut file_rows, &name, figures).map_err(|msg| Error::format(&path, msg))?;
        for row in file_rows {
            let key = (name.clone(), row.source.clone(), row.setting.clone());
            match seen.get(&key) {
                Some((i, _)) if rows[*i] == row => {}
                Some((_, first)) => {
                    return Err(Error::format(
                        &path,
                        format!(
                            "published row {:?} / {:?} of {name} differs from the one in {}",
                            row.source,
                            row.setting,
                            first.display()
                        ),
                    ))
                }
                None => {
                    seen.insert(key, (rows.len(), path.clone()));
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PairsFormat, PairsProtocol};
    use std::collections::HashSet;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every file under protocols/ (found by walking the folder, not from a list) parses and
    /// validates with its reader; fragments under common/ are checked through the files that
    /// include them, and each must be included by one.
    #[test]
    fn every_protocol_file_parses_and_validates() {
        let dir = repo().join("protocols");
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(repo().join("../shared/data"));
        let mut included = HashSet::new();
        let files = protocol_files(&dir).unwrap();
        // models.toml (the model registry) is not a protocol: protocol_files skips it by name.
        assert!(files.iter().all(|f| f.file_name().unwrap() != "models.toml"));
        for path in &files {
            included.extend(includes_of(path));
            let t = &crate::include::read_merged(path).unwrap().table;
            if t.contains_key("pairs") {
                let (p, _) = PairsProtocol::read(path).unwrap_or_else(|e| panic!("{e}"));
                match p.pairs.format {
                    PairsFormat::Lfw => {
                        p.verify(&data).unwrap();
                        p.read_pairs(&data).unwrap();
                        p.read_tune_pairs(&data).unwrap();
                    }
                    PairsFormat::List => list_protocol_reads_a_generated_list(&p, path),
                    PairsFormat::Bin => assert!(p.image_size.is_some(), "{}", path.display()),
                }
            } else if t.contains_key("splits") {
                facebench_ytf::YtfProtocol::read(path).unwrap_or_else(|e| panic!("{e}"));
            } else if t.contains_key("lists") {
                facebench_megaface::MegafaceProtocol::read(path).unwrap_or_else(|e| panic!("{e}"));
            } else {
                panic!("{}: neither [pairs], [splits] (YTF) nor [lists] (MegaFace)", path.display());
            }
        }
        assert!(files.len() >= 9, "{files:?}");
        let fragments: Vec<PathBuf> =
            std::fs::read_dir(dir.join("common")).unwrap().map(|f| f.unwrap().path().canonicalize().unwrap()).collect();
        for f in &fragments {
            included.extend(includes_of(f));
        }
        for f in &fragments {
            assert!(included.contains(f), "{} is included by no protocol file", f.display());
        }
    }

    /// The files `path` names in its `include` array, canonical.
    fn includes_of(path: &Path) -> Vec<PathBuf> {
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let names = t.get("include").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        names.iter().map(|n| path.parent().unwrap().join(n.as_str().unwrap()).canonicalize().unwrap()).collect()
    }

    /// No list-format data is in the data root: a generated list of the protocol's size and
    /// folds (CALFW's layout, two lines a pair) under a temporary data root.
    fn list_protocol_reads_a_generated_list(p: &PairsProtocol, path: &Path) {
        let root = std::env::temp_dir().join(format!("fb-list-{}-{}", p.name, std::process::id()));
        let file = root.join(&p.pairs.file);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut text = String::new();
        for i in 0..p.pairs.count {
            let same = i % 2 == 0;
            let (a, b) = if same {
                (format!("P{i}_0001.jpg"), format!("P{i}_0002.jpg"))
            } else {
                (format!("P{i}_0001.jpg"), format!("Q{i}_0001.jpg"))
            };
            let label = if same { i + 1 } else { 0 };
            text += &format!("{a} {label}\n{b} {label}\n");
        }
        std::fs::write(&file, text).unwrap();
        let pairs = p.read_pairs(&root).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((pairs.len(), pairs.n_folds), (p.pairs.count, p.pairs.folds));
        std::fs::remove_dir_all(&root).ok();
    }

    /// The rows facebench-report held in code before the protocol files became their only home:
    /// (source, setting, LFW, YTF, MegaFace rank-1 raw, R, TAR@1e-6 raw, R).
    #[allow(clippy::type_complexity)]
    const REPORT_ROWS: &[(&str, &str, Option<f64>, Option<f64>, [Option<f64>; 4])] = &[
        (
            "CosFace paper",
            "large data, single model, 64-layer CNN, s=64, m=0.35",
            Some(99.73),
            Some(97.6),
            [Some(82.72), None, Some(96.65), None],
        ),
        ("CosFace paper", "large data, 3-patch ensemble", None, None, [Some(84.26), None, Some(97.96), None]),
        (
            "CosFace paper",
            "CASIA-WebFace (small protocol), LMCL",
            Some(99.33),
            Some(96.1),
            [Some(77.11), None, Some(89.88), None],
        ),
        (
            "CosFace paper",
            "CASIA-WebFace, Softmax baseline",
            Some(97.88),
            Some(93.1),
            [Some(54.85), None, Some(65.92), None],
        ),
        (
            "CosFace paper",
            "CASIA-WebFace, A-Softmax (SphereFace)",
            Some(99.42),
            Some(95.0),
            [Some(72.72), None, Some(85.56), None],
        ),
        (
            "ArcFace paper",
            "R100 MS1MV2, CosFace loss",
            None,
            None,
            [Some(80.56), Some(97.91), Some(96.56), Some(97.91)],
        ),
        (
            "ArcFace paper",
            "R100 MS1MV2, ArcFace loss",
            Some(99.83),
            Some(98.02),
            [Some(81.03), Some(98.35), Some(96.98), Some(98.48)],
        ),
        ("InsightFace model zoo", "MobileFaceNet, MS1M, ArcFace", Some(99.50), None, [None, None, None, None]),
    ];

    #[test]
    fn all_published_rows_are_the_reports_rows_once() {
        let rows = all(&repo().join("protocols")).unwrap();
        let find = |protocol: &str, source: &str, setting: &str| {
            let hits: Vec<&Published> =
                rows.iter().filter(|r| r.protocol == protocol && r.source == source && r.setting == setting).collect();
            assert!(hits.len() <= 1, "{protocol} {source} {setting}: {hits:?}");
            hits.first().copied()
        };
        let mut expected = 0;
        for &(source, setting, lfw, ytf, mf) in REPORT_ROWS {
            assert_eq!(find("lfw", source, setting).and_then(|r| r.accuracy), lfw, "{setting}");
            assert_eq!(find("ytf", source, setting).and_then(|r| r.accuracy), ytf, "{setting}");
            let m =
                find("megaface", source, setting).map(|r| [r.rank1, r.rank1_r, r.tar_at_far_1e6, r.tar_at_far_1e6_r]);
            assert_eq!(m.unwrap_or([None; 4]), mf, "{setting}");
            expected +=
                usize::from(lfw.is_some()) + usize::from(ytf.is_some()) + usize::from(mf.iter().any(Option::is_some));
        }
        assert_eq!(rows.len(), expected, "no other published rows: {rows:?}");
    }

    #[test]
    fn conflicting_rows_are_an_error_naming_both_files() {
        let dir = std::env::temp_dir().join(format!("fb-published-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row =
            |acc: f64| format!("name = \"x\"\n[[published]]\nsource = \"s\"\nsetting = \"t\"\naccuracy = {acc}\n");
        std::fs::write(dir.join("a.toml"), row(99.0)).unwrap();
        std::fs::write(dir.join("b.toml"), row(99.0)).unwrap();
        std::fs::write(dir.join("models.toml"), "not = \"a protocol\"\n").unwrap();
        assert_eq!(all(&dir).unwrap().len(), 1, "the same row twice is one row");
        std::fs::write(dir.join("b.toml"), row(98.0)).unwrap();
        let e = all(&dir).unwrap_err().to_string();
        assert!(e.contains("b.toml: published row") && e.contains("a.toml"), "{e}");
        // Each file's rows are checked as its protocol reads them: MegaFace's (`[lists]`) give
        // its own figures, no accuracy.
        std::fs::remove_file(dir.join("b.toml")).unwrap();
        std::fs::write(dir.join("mf.toml"), format!("{}[lists]\n", row(99.0).replace("\"x\"", "\"mf\""))).unwrap();
        let e = all(&dir).unwrap_err().to_string();
        assert!(e.contains("mf.toml: published row") && e.contains("not a MegaFace figure"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
