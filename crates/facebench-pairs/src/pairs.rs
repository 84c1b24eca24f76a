//! LFW pair lists: `pairs.txt` (View 2) and `pairsDevTrain.txt` / `pairsDevTest.txt` (View 1).
//!
//! Format (README of LFW): an optional header, then blocks of matched lines
//! `Name\ti\tj` followed by mismatched lines `Name1\ti\tName2\tj`. View 2's header is
//! `10\t300` (10 folds of 300 matched + 300 mismatched); View 1's is a single count.
//! Some copies drop the header, so it is detected (a line of one or two integers),
//! never assumed. Without a header, each maximal run "matched lines, then mismatched
//! lines" is one fold, which is what the file order means in both views.
//!
//! Checked as YTF's splits are: the same pair twice, a matched pair naming one image twice
//! (`Name i i`) and a mismatched pair naming one person twice are errors naming the line.
//! [`Pairs::parse_list`] reads the image-pair lists of CALFW, CPLFW, SLLFW and XQLFW.

use std::collections::HashMap;
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

/// The same pair (in either order) twice is an error naming both lines.
fn check_duplicates(path: &Path, pairs: &[Pair]) -> Result<()> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(pairs.len());
    for p in pairs {
        let key =
            if p.left <= p.right { (p.left.as_str(), p.right.as_str()) } else { (p.right.as_str(), p.left.as_str()) };
        if let Some(first) = seen.insert(key, p.line) {
            return Err(Error::parse(path, p.line, format!("the pair {} / {} of line {first} again", p.left, p.right)));
        }
    }
    Ok(())
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
                [name, i, j] => {
                    let (i, j) = (idx(i)?, idx(j)?);
                    if i == j {
                        return Err(Error::parse(path, n, format!("matched pair names image {i} of {name} twice")));
                    }
                    (image_key(name, i), image_key(name, j), true)
                }
                [a, i, b, j] => {
                    if a == b {
                        return Err(Error::parse(path, n, format!("mismatched pair names one person, {a}, twice")));
                    }
                    (image_key(a, idx(i)?), image_key(b, idx(j)?), false)
                }
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
        check_duplicates(path, &pairs)?;

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

    pub fn read_list(path: &Path, folds: usize) -> Result<Pairs> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse_list(&text, path, folds)
    }

    /// An image-pair list with labels, cut into `folds` contiguous equal folds in file order.
    /// Two layouts, one per file (fields separated by blanks or tabs, blank lines ignored,
    /// images named relative to the protocol's image root):
    /// - `imgA imgB label` a line, label `1` = same person, `0` = different (SLLFW-style lists);
    /// - `img label` a line, two consecutive lines making one pair (CALFW's `pairs_CALFW.txt`,
    ///   CPLFW's `pairs_CPLFW.txt`): both lines carry the pair's label, `0` = different and a
    ///   positive number = same.
    ///
    /// A pair naming one image twice, the same pair twice, a lone last line and a pair count
    /// that is not a multiple of `folds` are errors naming the file (and line).
    pub fn parse_list(text: &str, path: &Path, folds: usize) -> Result<Pairs> {
        let lines: Vec<(usize, Vec<&str>)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split_whitespace().collect::<Vec<_>>()))
            .filter(|(_, f)| !f.is_empty())
            .collect();
        let label = |n: usize, s: &str| -> Result<u64> {
            s.parse::<u64>().map_err(|_| Error::parse(path, n, format!("label {s:?} is not 0 or a positive number")))
        };
        let width = lines.first().map_or(0, |(_, f)| f.len());
        let mut raw = Vec::new(); // (left, right, is_same, line)
        match width {
            3 => {
                for (n, f) in &lines {
                    let [a, b, l] = f.as_slice() else {
                        return Err(Error::parse(
                            path,
                            *n,
                            format!("expected `imgA imgB label` like line 1, got {} fields", f.len()),
                        ));
                    };
                    let is_same = match label(*n, l)? {
                        0 => false,
                        1 => true,
                        v => return Err(Error::parse(path, *n, format!("label {v}: 1 (same) or 0 (different)"))),
                    };
                    raw.push((a.to_string(), b.to_string(), is_same, *n));
                }
            }
            2 => {
                if lines.len() % 2 == 1 {
                    let n = lines.last().map_or(0, |l| l.0);
                    return Err(Error::parse(path, n, "a lone image line: pairs are two consecutive lines"));
                }
                for two in lines.chunks(2) {
                    let [(n, a), (m, b)] = two else { unreachable!("chunks of 2 of an even count") };
                    let (&[ia, la], &[ib, lb]) = (a.as_slice(), b.as_slice()) else {
                        let (k, f) = if a.len() != 2 { (n, a) } else { (m, b) };
                        return Err(Error::parse(
                            path,
                            *k,
                            format!("expected `img label` like line 1, got {} fields", f.len()),
                        ));
                    };
                    let (la, lb) = (label(*n, la)?, label(*m, lb)?);
                    if (la == 0) != (lb == 0) {
                        return Err(Error::parse(
                            path,
                            *m,
                            format!("label {lb} differs from line {n}'s {la} (one pair)"),
                        ));
                    }
                    raw.push((ia.to_string(), ib.to_string(), la > 0, *n));
                }
            }
            0 => return Err(Error::format(path, "no pairs")),
            w => {
                return Err(Error::parse(
                    path,
                    lines[0].0,
                    format!("{w} fields: expected `imgA imgB label` or `img label`"),
                ))
            }
        }
        let n = raw.len();
        if folds == 0 || !n.is_multiple_of(folds) {
            return Err(Error::format(path, format!("{n} pairs cannot be cut into {folds} equal contiguous folds")));
        }
        let mut pairs = Vec::with_capacity(n);
        for (i, (left, right, is_same, line)) in raw.into_iter().enumerate() {
            if left == right {
                return Err(Error::parse(path, line, format!("the pair names {left} twice")));
            }
            pairs.push(Pair { left, right, is_same, fold: i / (n / folds), line });
        }
        check_duplicates(path, &pairs)?;
        Ok(Pairs { path: path.to_path_buf(), pairs, n_folds: folds })
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
    fn pairs_validation_names_the_line() {
        let err = p("1\t2\nA\t1\t2\nA\t3\t3\nB\t1\tC\t1\nD\t1\tE\t1\n").unwrap_err().to_string();
        assert!(err.starts_with("pairs.txt:3:") && err.contains("image 3 of A twice"), "{err}");
        let err = p("1\t2\nA\t1\t2\nA\t1\t3\nB\t1\tB\t2\nD\t1\tE\t1\n").unwrap_err().to_string();
        assert!(err.starts_with("pairs.txt:4:") && err.contains("one person, B, twice"), "{err}");
        // The same pair again, in the other order.
        let err = p("1\t2\nA\t1\t2\nA\t2\t1\nB\t1\tC\t1\nD\t1\tE\t1\n").unwrap_err().to_string();
        assert!(err.starts_with("pairs.txt:3:") && err.contains("of line 2 again"), "{err}");
    }

    #[test]
    fn real_view1_and_view2_files_pass_the_checks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let data = std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or(root.join("../shared/data"));
        for (name, n, folds) in [("pairs.txt", 6000, 10), ("pairsDevTrain.txt", 2200, 1), ("pairsDevTest.txt", 1000, 1)]
        {
            let ps = Pairs::read(&data.join("lfw").join(name)).unwrap();
            assert_eq!((ps.len(), ps.n_folds), (n, folds), "{name}");
        }
    }

    #[test]
    fn image_pair_lists_in_both_layouts() {
        let path = Path::new("list.txt");
        let three = "a/1.jpg a/2.jpg 1\n\nb/1.jpg c/1.jpg 0\nd/1.jpg\td/2.jpg\t1\ne/1.jpg f/1.jpg 0\n";
        let ps = Pairs::parse_list(three, path, 2).unwrap();
        assert_eq!((ps.n_folds, ps.folds(), ps.labels()), (2, vec![0, 0, 1, 1], vec![true, false, true, false]));
        assert_eq!((ps.pairs[2].left.as_str(), ps.pairs[2].line), ("d/1.jpg", 4));
        // CALFW/CPLFW: two lines a pair, positive label = same, 0 = different.
        let two = "A_0001.jpg 1\nA_0002.jpg 1\nB_0001.jpg 0\nC_0001.jpg 0\n";
        let ps = Pairs::parse_list(two, path, 1).unwrap();
        assert_eq!((ps.len(), ps.labels()), (2, vec![true, false]));
        assert_eq!(
            (ps.pairs[1].left.as_str(), ps.pairs[1].right.as_str(), ps.pairs[1].line),
            ("B_0001.jpg", "C_0001.jpg", 3)
        );
        for (text, folds, want) in [
            ("a b 1\nc d 2\n", 1, "list.txt:2: label 2"),
            ("a b 1\nc d\n", 1, "list.txt:2: expected `imgA imgB label`"),
            ("a b 1\nc c 0\n", 1, "list.txt:2: the pair names c twice"),
            ("a b 1\nb a 1\n", 1, "list.txt:2: the pair b / a of line 1 again"),
            ("a b 1\nc d 0\ne f 1\n", 2, "3 pairs cannot be cut into 2"),
            ("a 1\nb 1\nc 0\n", 1, "list.txt:3: a lone image line"),
            ("a 1\nb 0\n", 1, "list.txt:2: label 0 differs from line 1's 1"),
            ("a 1\nb x\n", 1, "list.txt:2: label \"x\""),
            ("a b c d\n", 1, "list.txt:1: 4 fields"),
            ("\n", 1, "no pairs"),
        ] {
            let e = Pairs::parse_list(text, path, folds).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
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
