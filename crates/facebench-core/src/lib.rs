//! facebench-core: the embedding matrix every other crate works on.
//!
//! An [`Embeddings`] is an `n x d` row-major f32 matrix with one key per row
//! (the image path relative to its dataset root, kept exactly as given).
//! [`store`] reads and writes it in the formats face-recognition tools use.

use std::collections::HashMap;
use std::path::PathBuf;

pub mod atomic;

/// An error and its causes on one line, outermost first, each cause once (a cause whose text
/// its wrapper already quotes is not repeated).
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line += &format!(": {text}");
        }
        source = s.source();
    }
    line
}

pub mod overlap;
pub mod rng;
pub mod store;

/// Errors name the file, line or row at fault, so a user can fix the input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed line or record in a text file; `line` is 1-based.
    #[error("{path}:{line}: {msg}")]
    Parse { path: PathBuf, line: usize, msg: String },
    /// A file whose content disagrees with its own header or format.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// Invalid data (NaN rows, duplicate keys, dimension mismatch, ...).
    #[error("{0}")]
    Invalid(String),
    /// A lower layer's error (scoring, metrics), kept whole so its cause chain survives.
    #[error(transparent)]
    Cause(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `1000000` as `1,000,000`: counts as people read them in messages and reports.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn parse(path: impl Into<PathBuf>, line: usize, msg: impl Into<String>) -> Self {
        Error::Parse { path: path.into(), line, msg: msg.into() }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.into(), msg: msg.into() }
    }
    pub fn cause(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Cause(Box::new(e))
    }
}

/// An `n x d` f32 matrix, one key per row, keys unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    keys: Vec<String>,
    index: HashMap<String, usize>,
}

impl Embeddings {
    /// An empty matrix of row width `dim`.
    pub fn new(dim: usize) -> Self {
        Embeddings { dim, data: Vec::new(), keys: Vec::new(), index: HashMap::new() }
    }

    /// Builds a matrix from keys and row-major data, checking the shape,
    /// that keys are unique, and that every value is finite.
    pub fn from_rows(keys: Vec<String>, data: Vec<f32>, dim: usize) -> Result<Self> {
        if data.len() != keys.len() * dim {
            return Err(Error::Invalid(format!(
                "{} keys x dimension {} needs {} values, got {}",
                keys.len(),
                dim,
                keys.len() * dim,
                data.len()
            )));
        }
        let mut e = Embeddings::new(dim);
        e.data.reserve(data.len());
        e.keys.reserve(keys.len());
        for (i, key) in keys.into_iter().enumerate() {
            e.push(key, &data[i * dim..(i + 1) * dim])?;
        }
        Ok(e)
    }

    /// Appends one row; rejects a duplicate key, a wrong width or a non-finite value.
    pub fn push(&mut self, key: String, row: &[f32]) -> Result<()> {
        if row.len() != self.dim {
            return Err(Error::Invalid(format!(
                "row {} ({key}): has {} values, expected dimension {}",
                self.keys.len(),
                row.len(),
                self.dim
            )));
        }
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "row {} ({key}): value {} of {} is {} (NaN or Inf)",
                self.keys.len(),
                j + 1,
                self.dim,
                row[j]
            )));
        }
        if let Some(&prev) = self.index.get(&key) {
            return Err(Error::Invalid(format!("duplicate key {key:?} at rows {prev} and {}", self.keys.len())));
        }
        self.index.insert(key.clone(), self.keys.len());
        self.keys.push(key);
        self.data.extend_from_slice(row);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
    /// Row-major `len() x dim()` values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
    /// The row of `key`, or an error naming the key.
    pub fn get(&self, key: &str) -> Result<&[f32]> {
        self.index_of(key)
            .map(|i| self.row(i))
            .ok_or_else(|| Error::Invalid(format!("{key}: not in the embedding store")))
    }

    /// Scales every row to unit L2 norm. A zero row is an error naming it:
    /// its cosine to anything is undefined.
    pub fn l2_normalize(&mut self) -> Result<()> {
        let d = self.dim;
        for (i, row) in self.data.chunks_mut(d.max(1)).enumerate() {
            if !normalize_row(row) {
                return Err(Error::Invalid(format!("row {i} ({}): zero vector cannot be L2-normalised", self.keys[i])));
            }
        }
        Ok(())
    }

    /// Flip fusion as InsightFace does it: `normalize(orig + flip)` per key.
    /// `flip` must hold every key of `self` with the same dimension.
    pub fn fuse_flip_sum(&self, flip: &Embeddings) -> Result<Embeddings> {
        self.fuse_with(flip, self.dim, |a, b, out| {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = x + y;
            }
        })
        .and_then(|mut e| {
            e.l2_normalize()?;
            Ok(e)
        })
    }

    /// Flip fusion as the SphereFace/CosFace Matlab code does it: `[orig, flip]`,
    /// a `2d`-wide row, not normalised (the protocol normalises after mean subtraction).
    pub fn fuse_flip_concat(&self, flip: &Embeddings) -> Result<Embeddings> {
        let d = self.dim;
        self.fuse_with(flip, 2 * d, |a, b, out| {
            out[..d].copy_from_slice(a);
            out[d..].copy_from_slice(b);
        })
    }

    fn fuse_with(
        &self,
        flip: &Embeddings,
        out_dim: usize,
        f: impl Fn(&[f32], &[f32], &mut [f32]),
    ) -> Result<Embeddings> {
        if flip.dim != self.dim {
            return Err(Error::Invalid(format!(
                "flip store has dimension {}, original store has {}",
                flip.dim, self.dim
            )));
        }
        let mut out = Embeddings::new(out_dim);
        let mut buf = vec![0f32; out_dim];
        for (i, key) in self.keys.iter().enumerate() {
            let b = flip
                .index_of(key)
                .ok_or_else(|| Error::Invalid(format!("{key}: in the original store but not in the flip store")))?;
            f(self.row(i), flip.row(b), &mut buf);
            out.push(key.clone(), &buf)?;
        }
        Ok(out)
    }
}

/// Scales `row` to unit L2 norm (accumulating in f64); false if it is zero.
pub fn normalize_row(row: &mut [f32]) -> bool {
    let n = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    for v in row.iter_mut() {
        *v = (*v as f64 / n) as f32;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i}")).collect()
    }

    #[test]
    fn rejects_bad_rows() {
        let err = Embeddings::from_rows(keys(2), vec![1.0, 2.0, f32::NAN, 1.0], 2).unwrap_err();
        assert!(err.to_string().contains("row 1 (k1)"), "{err}");
        let err = Embeddings::from_rows(vec!["a".into(), "a".into()], vec![1.0; 4], 2).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert!(Embeddings::from_rows(keys(2), vec![1.0; 3], 2).is_err());
    }

    #[test]
    fn flip_fusion() {
        let a = Embeddings::from_rows(keys(1), vec![3.0, 0.0], 2).unwrap();
        let b = Embeddings::from_rows(keys(1), vec![0.0, 4.0], 2).unwrap();
        let s = a.fuse_flip_sum(&b).unwrap();
        assert!((s.row(0)[0] - 0.6).abs() < 1e-7 && (s.row(0)[1] - 0.8).abs() < 1e-7);
        let c = a.fuse_flip_concat(&b).unwrap();
        assert_eq!(c.row(0), &[3.0, 0.0, 0.0, 4.0]);
        let missing = Embeddings::from_rows(vec!["x".into()], vec![1.0, 1.0], 2).unwrap();
        assert!(a.fuse_flip_sum(&missing).unwrap_err().to_string().contains("k0"));
    }

    #[test]
    fn zero_row_cannot_normalise() {
        let mut a = Embeddings::from_rows(keys(2), vec![1.0, 1.0, 0.0, 0.0], 2).unwrap();
        assert!(a.l2_normalize().unwrap_err().to_string().contains("row 1 (k1)"));
    }
}
