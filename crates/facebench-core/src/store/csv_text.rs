//! CSV stores: one line `key,v1,...,vd` per row.
//!
//! Keys are quoted by the usual CSV rules when they contain a comma or quote.
//! Values are written in Rust's shortest round-trip form, so a write/read
//! round trip is bit-exact. On read, an optional header line (whose 2nd field
//! is not a number) is skipped. An empty file holds no rows and thus no
//! dimension: it reads as an empty store of dimension 0.

use std::io::Write;
use std::path::Path;

use super::atomic_write;
use crate::{Embeddings, Error, Result};

/// Reads a CSV store; every error names the file and its 1-based line.
pub fn read_csv(path: &Path) -> Result<Embeddings> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(1 << 20).from_reader(file);
    let mut out: Option<Embeddings> = None;
    let mut row = Vec::new();
    let mut first = true;
    let mut rec = csv::StringRecord::new();
    loop {
        let more = rdr.read_record(&mut rec).map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            let msg = e.to_string();
            match e.into_kind() {
                csv::ErrorKind::Io(io) => Error::io(path, io),
                csv::ErrorKind::Utf8 { .. } => Error::parse(path, line, "not valid UTF-8"),
                _ => Error::parse(path, line, msg),
            }
        })?;
        if !more {
            break;
        }
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let is_header = first && rec.get(1).is_some_and(|f| f.trim().parse::<f32>().is_err());
        first = false;
        if is_header {
            continue;
        }
        if rec.len() < 2 {
            return Err(Error::parse(path, line, "expected key,v1,...,vd (no values on this line)"));
        }
        let key = &rec[0];
        row.clear();
        for (j, field) in rec.iter().skip(1).enumerate() {
            let v: f32 = field.trim().parse().map_err(|_| {
                Error::parse(path, line, format!("value {} of the row ({field:?}) is not a number", j + 1))
            })?;
            row.push(v);
        }
        let e = out.get_or_insert_with(|| Embeddings::new(row.len()));
        if row.len() != e.dim() {
            return Err(Error::parse(path, line, format!("{} values, but earlier lines have {}", row.len(), e.dim())));
        }
        e.push(key.to_string(), &row).map_err(|err| Error::parse(path, line, err.to_string()))?;
    }
    Ok(out.unwrap_or_else(|| Embeddings::new(0)))
}

/// Writes `e` as `key,v1,...,vd` lines without a header.
pub fn write_csv(path: &Path, e: &Embeddings) -> Result<()> {
    if e.dim() == 0 && !e.is_empty() {
        return Err(Error::Invalid(format!("{}: cannot store zero-width embeddings", path.display())));
    }
    atomic_write(path, |w| {
        use std::fmt::Write as _;
        let mut line = String::new();
        for (i, key) in e.keys().iter().enumerate() {
            line.clear();
            push_key(&mut line, key);
            for v in e.row(i) {
                let _ = write!(line, ",{v:?}");
            }
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    })
}

/// Appends `key` as a CSV field, quoted (RFC 4180) only when it must be.
fn push_key(line: &mut String, key: &str) {
    let needs_quotes =
        key.is_empty() || key.contains([',', '"', '\n', '\r']) || key.starts_with(' ') || key.ends_with(' ');
    if needs_quotes {
        line.push('"');
        line.push_str(&key.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(key);
    }
}
