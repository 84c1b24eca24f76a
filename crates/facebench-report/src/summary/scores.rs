//! `pairs_scores.csv` checked against the results.json beside it: the header exactly as its
//! writer writes it for that result, every row's column count and field types, fold numbers
//! within the result's folds, the row count equal to the result's pair count, and (YTF, when
//! the result lists its pairs) every row equal to its listed pair. A file cut short by a full
//! disk, or one from another run, is an error naming the file, line and column.

use std::path::Path;

use facebench_core::thousands;
use serde::Deserialize;

use crate::{Error, Result};

/// One pair as a YTF results.json lists it (`results.pairs`).
#[derive(Debug, Deserialize)]
pub struct YtfPair {
    split: usize,
    pair: usize,
    left: String,
    right: String,
    is_same: bool,
    frames_left: usize,
    frames_right: usize,
}

/// Which writer's columns the CSV has.
pub enum Layout<'a> {
    /// `LfwResults::write_pair_scores_csv` (facebench-pairs: LFW, pairs lists, `.bin` packs):
    /// `fold,left,right,is_same,cosine` and `<rule>_score` per rule; histograms use `cosine`.
    Pairs { rules: Vec<&'a str> },
    /// `YtfResults::write_pair_scores_csv`: `split,pair,left,right,is_same,frames_left,
    /// frames_right` and one column per scoring mode; histograms use the headline mode's.
    Ytf { modes: Vec<&'a str>, headline: &'a str, pairs: Option<&'a [YtfPair]> },
}

/// What the results.json says the CSV holds.
pub struct Expected<'a> {
    /// The results.json, for messages.
    pub results: &'a Path,
    pub layout: Layout<'a>,
    pub n_pairs: u64,
    /// The results field `n_pairs` came from (`n_pairs`, YTF's `pairs_evaluated`).
    pub count_field: &'static str,
    /// Folds (YTF: splits) when the result says; fold numbers are 1-based.
    pub n_folds: Option<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Fold,
    /// A 1-based number (YTF's pair within its split).
    Index,
    Count,
    Name,
    Label,
    Score,
}

/// A checked cell.
#[derive(PartialEq)]
enum Cell<'t> {
    Int(usize),
    Text(&'t str),
    Label(bool),
    Score(f64),
}

impl Expected<'_> {
    fn columns(&self) -> Vec<(String, Kind)> {
        let fixed = |cols: &[(&str, Kind)]| cols.iter().map(|(n, k)| (n.to_string(), *k)).collect::<Vec<_>>();
        match &self.layout {
            Layout::Pairs { rules } => {
                let mut c = fixed(&[
                    ("fold", Kind::Fold),
                    ("left", Kind::Name),
                    ("right", Kind::Name),
                    ("is_same", Kind::Label),
                    ("cosine", Kind::Score),
                ]);
                c.extend(rules.iter().map(|r| (format!("{r}_score"), Kind::Score)));
                c
            }
            Layout::Ytf { modes, .. } => {
                let mut c = fixed(&[
                    ("split", Kind::Fold),
                    ("pair", Kind::Index),
                    ("left", Kind::Name),
                    ("right", Kind::Name),
                    ("is_same", Kind::Label),
                    ("frames_left", Kind::Count),
                    ("frames_right", Kind::Count),
                ]);
                c.extend(modes.iter().map(|m| (m.to_string(), Kind::Score)));
                c
            }
        }
    }

    fn score_column(&self) -> String {
        match &self.layout {
            Layout::Pairs { .. } => "cosine".into(),
            Layout::Ytf { headline, .. } => headline.to_string(),
        }
    }
}

fn at(path: &Path, line: usize, message: String) -> Error {
    Error::Invalid { path: path.to_path_buf(), line: Some(line), message }
}

/// Reads and checks `path` against `e`; returns the (genuine, impostor) scores of its
/// histogram column.
pub fn read(path: &Path, e: &Expected) -> Result<(Vec<f64>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::Io { path: path.to_path_buf(), source: err })?;
    let columns = e.columns();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header != names.join(",") {
        let got: Vec<&str> = header.split(',').collect();
        let first = (0..names.len().max(got.len())).find(|&i| names.get(i) != got.get(i)).unwrap_or(0);
        let show = |s: Option<&&str>| s.map_or("nothing".to_string(), |s| format!("`{s}`"));
        return Err(at(
            path,
            1,
            format!(
                "header column {} is {}, expected {} (the header for {} is `{}`)",
                first + 1,
                show(got.get(first)),
                show(names.get(first)),
                e.results.display(),
                names.join(",")
            ),
        ));
    }
    let label = names.iter().position(|&n| n == "is_same").expect("both layouts have is_same");
    let score_name = e.score_column();
    let score = names.iter().position(|n| *n == score_name).ok_or_else(|| Error::Invalid {
        path: e.results.to_path_buf(),
        line: None,
        message: format!("field `results.mode`: `{score_name}` is not one of `results.modes`"),
    })?;
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut rows: u64 = 0;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let raw: Vec<&str> = line.split(',').collect();
        if raw.len() != columns.len() {
            return Err(at(path, n, format!("{} columns, the header has {}", raw.len(), columns.len())));
        }
        let cells = raw
            .iter()
            .zip(&columns)
            .map(|(s, (name, kind))| cell(s, *kind, e).map_err(|why| at(path, n, format!("column {name}: {why}"))))
            .collect::<Result<Vec<Cell>>>()?;
        if let Layout::Ytf { pairs: Some(pairs), .. } = &e.layout {
            if let Some(p) = pairs.get(i) {
                same_as_listed(p, &cells).map_err(|(c, got, want)| {
                    at(
                        path,
                        n,
                        format!(
                            "column {}: {got}, but {} lists pair {} with {want}",
                            names[c],
                            e.results.display(),
                            i + 1
                        ),
                    )
                })?;
            }
        }
        let (Cell::Label(same), Cell::Score(s)) = (&cells[label], &cells[score]) else {
            unreachable!("the columns' kinds")
        };
        if *same {
            genuine.push(*s);
        } else {
            impostor.push(*s);
        }
        rows += 1;
    }
    if rows != e.n_pairs {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            line: None,
            message: format!(
                "{} rows, {} says {} = {}",
                thousands(rows),
                e.results.display(),
                e.count_field,
                thousands(e.n_pairs)
            ),
        });
    }
    Ok((genuine, impostor))
}

/// One field, checked by its column's kind; the error says why (without the line).
fn cell<'t>(s: &'t str, kind: Kind, e: &Expected) -> std::result::Result<Cell<'t>, String> {
    let whole = || s.parse::<usize>().map_err(|_| format!("\"{s}\" is not a whole number"));
    Ok(match kind {
        Kind::Fold => {
            let f = whole()?;
            match e.n_folds {
                Some(n) if f == 0 || f > n => {
                    return Err(format!("{f} is not a fold number 1..={n} (the results have {n} folds)"))
                }
                None if f == 0 => return Err("0 is not a fold number (they count from 1)".into()),
                _ => Cell::Int(f),
            }
        }
        Kind::Index => match whole()? {
            0 => return Err("0: numbers here count from 1".into()),
            v => Cell::Int(v),
        },
        Kind::Count => Cell::Int(whole()?),
        Kind::Name if s.is_empty() => return Err("empty".into()),
        Kind::Name => Cell::Text(s),
        Kind::Label => match s {
            "1" => Cell::Label(true),
            "0" => Cell::Label(false),
            _ => return Err(format!("\"{s}\" is neither 0 nor 1")),
        },
        Kind::Score => {
            let v: f64 = s.parse().map_err(|_| format!("\"{s}\" is not a number"))?;
            if !v.is_finite() {
                return Err(format!("\"{s}\" is not a finite number"));
            }
            Cell::Score(v)
        }
    })
}

/// The first of a YTF row's pair columns that differs from the listed pair: (column, the
/// row's value, the listed value).
fn same_as_listed(p: &YtfPair, cells: &[Cell]) -> std::result::Result<(), (usize, String, String)> {
    let listed = [
        Cell::Int(p.split),
        Cell::Int(p.pair),
        Cell::Text(&p.left),
        Cell::Text(&p.right),
        Cell::Label(p.is_same),
        Cell::Int(p.frames_left),
        Cell::Int(p.frames_right),
    ];
    let show = |c: &Cell| match c {
        Cell::Int(v) => v.to_string(),
        Cell::Text(t) => t.to_string(),
        Cell::Label(b) => u8::from(*b).to_string(),
        Cell::Score(v) => v.to_string(),
    };
    match listed.iter().zip(cells).position(|(a, b)| a != b) {
        Some(c) => Err((c, show(&cells[c]), show(&listed[c]))),
        None => Ok(()),
    }
}
