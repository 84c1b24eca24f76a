//! `splits.txt`: the 5,000 video pairs of YTF in 10 splits of 500.
//!
//! Format (YTF's `meta_and_splits`, as text): the header line
//! `split number, pair number in split, first name, second name, is same:`, then one line per
//! pair, `1, 1, Sadie_Frost/1, Sadie_Frost/5, 1`: split (1-10), pair in split (1-500), the two
//! videos as `<Name>/<video number>`, and the label in the FIFTH field (1 = same person). The
//! header is checked, the label is read from its own field (never "the last one"), and every
//! split must hold pairs 1..500 exactly once.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::protocol::SplitsSpec;
use crate::{Error, Result};

/// One video: `<Name>/<video number>`, e.g. `Alek_Wek/4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct VideoId {
    pub name: String,
    pub video: u32,
}

impl VideoId {
    /// Parses `Name/3`; None unless the name is non-empty without `/`, `\` or blanks and the
    /// video number is a whole number.
    pub fn parse(s: &str) -> Option<VideoId> {
        let (name, video) = s.split_once('/')?;
        let bad = |c: char| c == '/' || c == '\\' || c.is_whitespace();
        if name.is_empty() || name.contains(bad) || video.is_empty() || !video.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(VideoId { name: name.to_string(), video: video.parse().ok()? })
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.video)
    }
}

/// One line of `splits.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoPair {
    /// 1-based split number (the fold).
    pub split: usize,
    /// 1-based pair number within the split.
    pub pair: usize,
    pub left: VideoId,
    pub right: VideoId,
    pub is_same: bool,
    /// 1-based line in `splits.txt`, for messages.
    pub line: usize,
}

/// A parsed `splits.txt`: 5,000 pairs in file order, and the structure it was checked against.
#[derive(Debug, Clone)]
pub struct Splits {
    pub path: PathBuf,
    pub pairs: Vec<VideoPair>,
    pub spec: SplitsSpec,
}

impl Splits {
    /// Reads `path` and checks it against `spec` (the protocol file's header and split structure).
    pub fn read(path: &Path, spec: &SplitsSpec) -> Result<Splits> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, spec)
    }

    /// Parses and validates the text of a `splits.txt` (`path` is only used in messages).
    pub fn parse(text: &str, path: &Path, spec: &SplitsSpec) -> Result<Splits> {
        let (header, n_splits, per_split) = (spec.header.as_str(), spec.splits, spec.pairs_per_split);
        let err = |line: usize, msg: String| Error::Parse { path: path.to_path_buf(), line, msg };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        match lines.next() {
            Some((_, h)) if h.trim() == header => {}
            Some((n, h)) => return Err(err(n, format!("expected the header {header:?}, found {h:?}"))),
            None => return Err(err(1, format!("empty file; expected the header and {} pairs", n_splits * per_split))),
        }
        let mut pairs = Vec::with_capacity(n_splits * per_split);
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for (n, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() != 5 {
                return Err(err(n, format!("expected 5 comma-separated fields, found {}: {line:?}", f.len())));
            }
            let number = |i: usize, what: &str, max: usize| -> Result<usize> {
                match f[i].parse::<usize>() {
                    Ok(v) if (1..=max).contains(&v) => Ok(v),
                    _ => Err(err(
                        n,
                        format!("field {} ({what}) must be a number from 1 to {max}, found {:?}", i + 1, f[i]),
                    )),
                }
            };
            let split = number(0, "split number", n_splits)?;
            let pair = number(1, "pair number in split", per_split)?;
            let video = |i: usize| {
                VideoId::parse(f[i])
                    .ok_or_else(|| err(n, format!("field {} must be a video <Name>/<number>, found {:?}", i + 1, f[i])))
            };
            let (left, right) = (video(2)?, video(3)?);
            let is_same = match f[4] {
                "1" => true,
                "0" => false,
                other => return Err(err(n, format!("field 5 (is same) must be 0 or 1, found {other:?}"))),
            };
            if is_same != (left.name == right.name) {
                let what = if is_same {
                    "labelled same but names two people"
                } else {
                    "labelled different but names one person"
                };
                return Err(err(n, format!("{left} vs {right}: {what}")));
            }
            if left == right {
                return Err(err(n, format!("pairs {left} with itself")));
            }
            if let Some(first) = seen.insert((split, pair), n) {
                return Err(err(n, format!("split {split} pair {pair} again (first at line {first})")));
            }
            pairs.push(VideoPair { split, pair, left, right, is_same, line: n });
        }
        for s in 1..=n_splits {
            let count = pairs.iter().filter(|p| p.split == s).count();
            if count != per_split {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    msg: format!("split {s} has {count} pairs; YTF has {n_splits} splits of {per_split}"),
                });
            }
        }
        Ok(Splits { path: path.to_path_buf(), pairs, spec: spec.clone() })
    }

    /// Every video named by a pair, sorted and without repeats (3,226 in the official file).
    pub fn videos(&self) -> Vec<VideoId> {
        let set: BTreeSet<&VideoId> = self.pairs.iter().flat_map(|p| [&p.left, &p.right]).collect();
        set.into_iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's `protocols/ytf.toml` structure.
    fn spec() -> SplitsSpec {
        crate::YtfProtocol::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/ytf.toml"))
            .unwrap()
            .splits
    }

    fn text(lines: &[String]) -> String {
        let mut s = format!("{}\n", spec().header);
        for l in lines {
            s += l;
            s.push('\n');
        }
        s
    }

    /// A valid file: pairs 1-250 same (A_k/0 vs A_k/1), 251-500 different.
    fn valid() -> Vec<String> {
        let mut v = Vec::new();
        for s in 1..=spec().splits {
            for p in 1..=spec().pairs_per_split {
                if p <= 250 {
                    v.push(format!("{s}, {p}, P{s}_{p}/0, P{s}_{p}/1, 1"));
                } else {
                    v.push(format!("{s}, {p}, P{s}_{p}/0, Q{s}_{p}/2, 0"));
                }
            }
        }
        v
    }

    #[test]
    fn valid_file_parses_with_crlf() {
        let t = text(&valid()).replace('\n', "\r\n");
        let s = Splits::parse(&t, Path::new("x.txt"), &spec()).unwrap();
        assert_eq!(s.pairs.len(), 5000);
        assert_eq!(s.pairs[0].line, 2);
        assert_eq!(s.pairs[260].left.to_string(), "P1_261/0");
        assert!(!s.pairs[260].is_same);
    }

    #[test]
    fn errors_name_the_line() {
        let path = Path::new("splits.txt");
        let e = Splits::parse("split, pair\n", path, &spec()).unwrap_err().to_string();
        assert!(e.contains("splits.txt:1") && e.contains("header"), "{e}");
        let mut v = valid();
        v[2] = "1, 3, A/0, A/1".into();
        let e = Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string();
        assert!(e.contains("splits.txt:4") && e.contains("5 comma-separated"), "{e}");
        let mut v = valid();
        v[2] = "1, 3, A/0, A/1, yes".into();
        let e = Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string();
        assert!(e.contains(":4:") && e.contains("field 5"), "{e}");
        let mut v = valid();
        v[2] = "1, 3, A/0, B/1, 1".into();
        assert!(Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string().contains("labelled same"));
        let mut v = valid();
        v[2] = "1, 3, A/x, A/1, 1".into();
        assert!(Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string().contains("field 3"));
        let mut v = valid();
        v[2] = "1, 2, A/0, A/1, 1".into();
        assert!(Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string().contains("again (first at line 3)"));
        let mut v = valid();
        v.pop();
        let e = Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string();
        assert!(e.contains("split 10 has 499 pairs"), "{e}");
        let mut v = valid();
        v[0] = "11, 1, A/0, A/1, 1".into();
        assert!(Splits::parse(&text(&v), path, &spec()).unwrap_err().to_string().contains("from 1 to 10"));
    }

    #[test]
    fn video_ids() {
        assert_eq!(VideoId::parse("Alek_Wek/4"), Some(VideoId { name: "Alek_Wek".into(), video: 4 }));
        for bad in ["Alek_Wek", "/4", "A/", "A/4/1", "A B/1", "A/-1"] {
            assert_eq!(VideoId::parse(bad), None, "{bad}");
        }
    }
}
