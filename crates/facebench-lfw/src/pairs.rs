//! LFW pair lists: `pairs.txt` (View 2) and `pairsDevTrain.txt` / `pairsDevTest.txt` (View 1).
//!
//! Format (README of LFW): an optional header, then blocks of matched lines
//! `Name\ti\tj` followed by mismatched lines `Name1\ti\tName2\tj`. View 2's header is
//! `10\t300` (10 folds of 300 matched + 300 mismatched); View 1's is a single count.
//! Some copies drop the header, so it is detected (a line of one or two integers),
//! never assumed. Without a header, each maximal run "matched lines, then mismatched
//! lines" is one fold, which is what the file order means in both views.

use std::path::{Path, PathBuf};

use facebench_core::{Error, Result};

/// One pair of images, keys relative to the dataset root (`Name/Name_0001.jpg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub left: String,
    pub right: String,
    pub is_same: bool,
    /// 0-based fold in file order.
    pub fold: usize,
    /// 1-based line number in the pairs file, for error messages.
    pub line: usize,
}

/// A parsed pairs file.
#[derive(Debug, Clone)]
pub struct Pairs {
    pub path: PathBuf,
    pub pairs: Vec<Pair>,
    pub n_folds: usize,
}

/// The key of image `index` (1-based) of `name`, as LFW names its files.
pub fn image_key(name: &str, index: u32) -> String {
    format!("{name}/{name}_{index:04}.jpg")
}

impl Pairs {
    pub fn read(path: &Path) -> Result<Pairs> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Pairs> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty())
            .peekable();

        // Header: one or two integers, and nothing else on the line.
        let mut header: Option<(usize, usize)> = None; // (folds, matched per fold)
        if let Some(&(n, first)) = lines.peek() {
            let f: Vec<&str> = first.split_whitespace().collect();
            let ints: Option<Vec<usize>> = f.iter().map(|s| s.parse().ok()).collect();
            match (f.len(), ints) {
                (1, Some(v)) => header = Some((1, v[0])),
                (2, Some(v)) => header = Some((v[0], v[1])),
                (1 | 2, None) => return Err(Error::parse(path, n, format!("not a header nor a pair: {first:?}"))),
                _ => {}
            }
            if let Some((folds, per)) = header {
                if folds == 0 || per == 0 {
                    return Err(Error::parse(path, n, "header counts must be positive"));
                }
                lines.next();
            }
        }

        let mut pairs = Vec::new();
        let mut fold = 0usize;
        let mut prev_same: Option<bool> = None;
        for (n, line) in lines {
            let f: Vec<&str> = line.split('\t').map(str::trim).collect();
            let f: Vec<&str> = if f.len() == 1 { line.split_whitespace().collect() } else { f };
            let idx = |s: &str| -> Result<u32> {
                s.parse::<u32>()
                    .ok()
                    .filter(|&i| i >= 1)
                    .ok_or_else(|| Error::parse(path, n, format!("bad image number {s:?}")))
            };
            let (left, right, is_same) = match f.as_slice() {
                [name, i, j] => (image_key(name, idx(i)?), image_key(name, idx(j)?), true),
                [a, i, b, j] => (image_key(a, idx(i)?), image_key(b, idx(j)?), false),
                _ => {
                    return Err(Error::parse(
                        path,
                        n,
                        format!(
                            "expected `Name i j` or `Name1 i Name2 j` (tab-separated), got {} fields: {line:?}",
                            f.len()
                        ),
                    ))
                }
            };
            if header.is_none() && prev_same == Some(false) && is_same {
                fold += 1; // a new matched run starts a new fold
            }
            prev_same = Some(is_same);
            pairs.push(Pair { left, right, is_same, fold, line: n });
        }

        if let Some((folds, per)) = header {
            // With a header the fold of pair p is p / (2 * per); check the
            // matched-then-mismatched layout it promises.
            let expected = folds * per * 2;
            if pairs.len() != expected {
                return Err(Error::format(
                    path,
                    format!("header promises {folds} fold(s) x {per} matched + {per} mismatched = {expected} pairs, file has {}", pairs.len()),
                ));
            }
            for (p, pair) in pairs.iter_mut().enumerate() {
                pair.fold = p / (2 * per);
                let should_be_same = p % (2 * per) < per;
                if pair.is_same != should_be_same {
                    return Err(Error::parse(
                        path,
                        pair.line,
                        format!(
                            "expected a {} pair here (fold {} of the header's layout)",
                            if should_be_same { "matched" } else { "mismatched" },
                            pair.fold + 1
                        ),
                    ));
                }
            }
            return Ok(Pairs { path: path.to_path_buf(), pairs, n_folds: folds });
        }
        if pairs.is_empty() {
            return Err(Error::format(path, "no pairs"));
        }
        let n_folds = fold + 1;
        Ok(Pairs { path: path.to_path_buf(), pairs, n_folds })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
    /// Every image the pairs name, each once, in first-use order.
    pub fn image_keys(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in &self.pairs {
            for k in [&p.left, &p.right] {
                if seen.insert(k.as_str()) {
                    out.push(k.clone());
                }
            }
        }
        out
    }
    pub fn folds(&self) -> Vec<usize> {
        self.pairs.iter().map(|p| p.fold).collect()
    }
    pub fn labels(&self) -> Vec<bool> {
        self.pairs.iter().map(|p| p.is_same).collect()
    }
    /// View 1 as a two-fold problem: fold 0 = `train` (pairsDevTrain), fold 1 = `test`
    /// (pairsDevTest), so fold 1's accuracy is DevTest scored with the DevTrain threshold.
    pub fn view1(train: &Pairs, test: &Pairs) -> Pairs {
        let mut pairs: Vec<Pair> = train
            .pairs
            .iter()
            .cloned()
            .map(|mut p| {
                p.fold = 0;
                p
            })
            .collect();
        pairs.extend(test.pairs.iter().cloned().map(|mut p| {
            p.fold = 1;
            p
        }));
        Pairs { path: test.path.clone(), pairs, n_folds: 2 }
    }

    /// Pairs that come from somewhere other than a pairs file (an InsightFace `.bin` pack,
    /// named by `path`): pair `i` is `keys[i]` with label `labels[i]` in fold `folds[i]`
    /// (0-based, every fold `0..max` used); its `line` is `i + 1`, the pair's number.
    pub fn from_labels(path: &Path, keys: Vec<(String, String)>, labels: &[bool], folds: &[usize]) -> Result<Pairs> {
        if keys.len() != labels.len() || keys.len() != folds.len() {
            return Err(Error::format(
                path,
                format!("{} pairs, {} labels and {} fold ids", keys.len(), labels.len(), folds.len()),
            ));
        }
        let n_folds = folds.iter().max().map_or(0, |m| m + 1);
        if keys.is_empty() {
            return Err(Error::format(path, "no pairs"));
        }
        if let Some(k) = (0..n_folds).find(|k| !folds.contains(k)) {
            return Err(Error::format(path, format!("fold {} of {n_folds} has no pairs", k + 1)));
        }
        let pairs = keys
            .into_iter()
            .zip(labels.iter().zip(folds))
            .enumerate()
            .map(|(i, ((left, right), (&is_same, &fold)))| Pair { left, right, is_same, fold, line: i + 1 })
            .collect();
        Ok(Pairs { path: path.to_path_buf(), pairs, n_folds })
    }

    /// Keeps only the pairs of the given folds (renumbered from 0 in order).
    pub fn select_folds(&self, keep: &[usize]) -> Pairs {
        let mut pairs = Vec::new();
        for (new, &k) in keep.iter().enumerate() {
            pairs.extend(self.pairs.iter().filter(|p| p.fold == k).cloned().map(|mut p| {
                p.fold = new;
                p
            }));
        }
        Pairs { path: self.path.clone(), pairs, n_folds: keep.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Pairs> {
        Pairs::parse(text, Path::new("pairs.txt"))
    }

    #[test]
    fn view2_header() {
        let text = "2\t1\nA\t1\t2\nB\t1\tC\t3\nD\t2\t4\nE\t10\tF\t1\n";
        let ps = p(text).unwrap();
        assert_eq!(ps.n_folds, 2);
        assert_eq!(ps.folds(), vec![0, 0, 1, 1]);
        assert_eq!(ps.labels(), vec![true, false, true, false]);
        assert_eq!(ps.pairs[1].right, "C/C_0003.jpg");
        assert_eq!(ps.pairs[3].left, "E/E_0010.jpg");
        assert_eq!(ps.pairs[2].line, 4);
    }

    #[test]
    fn headerless_folds_from_runs() {
        let text = "A\t1\t2\nA\t1\t3\nB\t1\tC\t3\nD\t2\t4\nE\t1\tF\t1\nE\t1\tG\t1\n";
        let ps = p(text).unwrap();
        assert_eq!(ps.n_folds, 2);
        assert_eq!(ps.folds(), vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn view1_header_single_count() {
        let ps = p("1\nA\t1\t2\nB\t1\tC\t1\n").unwrap();
        assert_eq!((ps.n_folds, ps.len()), (1, 2));
    }

    #[test]
    fn from_labels_keeps_order_labels_and_folds() {
        let keys = (0..4).map(|i| (format!("{}", 2 * i), format!("{}", 2 * i + 1))).collect();
        let ps = Pairs::from_labels(Path::new("x.bin"), keys, &[true, false, false, true], &[0, 0, 1, 1]).unwrap();
        assert_eq!((ps.n_folds, ps.len()), (2, 4));
        assert_eq!(ps.labels(), vec![true, false, false, true]);
        assert_eq!(ps.folds(), vec![0, 0, 1, 1]);
        assert_eq!((ps.pairs[3].left.as_str(), ps.pairs[3].right.as_str(), ps.pairs[3].line), ("6", "7", 4));
        let keys = || vec![("a".to_string(), "b".to_string()); 2];
        let e = Pairs::from_labels(Path::new("x.bin"), keys(), &[true], &[0, 1]).unwrap_err().to_string();
        assert!(e.contains("2 pairs, 1 labels"), "{e}");
        let e = Pairs::from_labels(Path::new("x.bin"), keys(), &[true, true], &[0, 2]).unwrap_err().to_string();
        assert!(e.contains("fold 2 of 3 has no pairs"), "{e}");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = p("1\t1\nA\t1\t2\nB\t1\tC\n").unwrap_err().to_string();
        assert!(err.starts_with("pairs.txt:3:"), "{err}");
        let err = p("1\t1\nA\t1\t0\nB\t1\tC\t1\n").unwrap_err().to_string();
        assert!(err.contains("pairs.txt:2:") && err.contains("image number"), "{err}");
        // header promising more pairs than the file has
        let err = p("1\t2\nA\t1\t2\nB\t1\tC\t1\n").unwrap_err().to_string();
        assert!(err.contains("header promises"), "{err}");
        // a mismatched pair where the header's layout wants a matched one
        let err = p("1\t1\nB\t1\tC\t1\nA\t1\t2\n").unwrap_err().to_string();
        assert!(err.contains("pairs.txt:2:") && err.contains("matched"), "{err}");
    }
}
