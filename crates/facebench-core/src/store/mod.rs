//! On-disk embedding stores.
//!
//! Extraction and scoring are separate steps joined by these files, so one
//! model's embeddings are computed once and re-scored under any protocol, and
//! embeddings computed by other tools can be evaluated without a model.
//!
//! | extension      | layout                                                   | read | write |
//! |----------------|----------------------------------------------------------|------|-------|
//! | `.npy`         | numpy 2-D `<f4`/`<f8` matrix + `X.keys` (one key a line)  | yes  | yes   |
//! | `.csv`         | `key,v1,...,vd` lines                                     | yes  | yes   |
//! | `.safetensors` | tensor `embeddings` [n, d] + keys in the metadata        | yes  | yes   |
//! | `.fbs`         | [`AppendStore`]: crash-safe, appendable extraction output | yes  | via [`AppendStore`] |
//!
//! MegaFace devkit feature files (one small file per image) are read and
//! written with [`read_devkit_feature`], [`write_devkit_feature`] and
//! [`read_devkit_features`].
//!
//! [`diagnose_keys`] explains why a protocol's keys are missing from a store
//! (empty store, absolute or `./` keys, backslashes, a removable prefix).
//!
//! Every writer writes through [`crate::atomic`] (temporary file + fsync +
//! rename), so an interrupted or failed write never leaves a half-written
//! store under the final name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::atomic::{self, AtomicFile};
use crate::{Embeddings, Error, Result};

mod append;
mod csv_text;
mod devkit;
mod npy;
mod safetensors_fmt;

pub use append::{AppendStore, RepairReport, StoreMeta, TailRecovery, MIRROR_SUFFIX};
pub use csv_text::{read_csv, write_csv};
pub use devkit::{read_devkit_feature, read_devkit_features, write_devkit_feature};
pub use npy::{keys_path_for, read_npy, write_npy};
pub use safetensors_fmt::{read_safetensors, write_safetensors};

/// The store formats [`read`] and [`write`] dispatch on, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Npy,
    Csv,
    Safetensors,
    /// The appendable extraction store ([`AppendStore`]); read-only here.
    Fbs,
}

impl Format {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "npy" => Ok(Format::Npy),
            "csv" => Ok(Format::Csv),
            "safetensors" => Ok(Format::Safetensors),
            "fbs" => Ok(Format::Fbs),
            _ => Err(Error::format(
                path,
                format!("unknown embedding store extension {ext:?}: expected .npy, .csv, .safetensors or .fbs"),
            )),
        }
    }
}

/// Reads an embedding store, choosing the format by extension.
///
/// `keys_override` replaces the keys file of a `.npy` (default `X.keys`) or
/// the keys stored in a `.safetensors`; CSV and `.fbs` keep their keys inline,
/// so an override there is an error rather than silently ignored.
pub fn read(path: &Path, keys_override: Option<&Path>) -> Result<Embeddings> {
    let format = Format::from_path(path)?;
    match (format, keys_override) {
        (Format::Npy, k) => read_npy(path, k),
        (Format::Safetensors, k) => read_safetensors(path, k),
        (Format::Csv, None) => read_csv(path),
        (Format::Fbs, None) => AppendStore::read(path).map(|(_, e)| e),
        (_, Some(k)) => Err(Error::format(
            path,
            format!(
                "a keys file ({}) can only be given for .npy and .safetensors stores; this format stores its keys inline",
                k.display()
            ),
        )),
    }
}

/// Writes `e` in the format named by `path`'s extension (`.npy` also writes `X.keys`).
/// `.fbs` stores are written through [`AppendStore`], which needs model metadata.
pub fn write(path: &Path, e: &Embeddings) -> Result<()> {
    match Format::from_path(path)? {
        Format::Npy => write_npy(path, e),
        Format::Csv => write_csv(path, e),
        Format::Safetensors => write_safetensors(path, e),
        Format::Fbs => {
            Err(Error::format(path, "an .fbs store records model metadata: create it with AppendStore::create_or_open"))
        }
    }
}

/// Why keys a protocol asks for are not in a store, as one message for an
/// error: `None` when every key of `wanted` is in `store`. Otherwise how many
/// were found and, where it can tell, why the rest are not: an empty store,
/// keys that look absolute, `./`-prefixed or with backslashes, or keys that
/// match once a common folder prefix is removed, e.g.
/// `0 of 7,701 keys found; the store's keys look absolute (e.g. "/data/lfw/A/A_0001.jpg"), keys must be
/// relative to the dataset root like "A/A_0001.jpg"; they match after removing "/data/lfw/"`.
pub fn diagnose_keys(store: &Embeddings, wanted: &[impl AsRef<str>]) -> Option<String> {
    let missing: Vec<&str> = wanted.iter().map(AsRef::as_ref).filter(|k| store.index_of(k).is_none()).collect();
    let first_missing = *missing.first()?;
    let n = wanted.len();
    let mut msg =
        format!("{} of {} keys found", crate::thousands((n - missing.len()) as u64), crate::thousands(n as u64));
    if store.is_empty() {
        msg.push_str("; the store is empty");
        return Some(msg);
    }
    let keys = store.keys();
    let share = |f: fn(&str) -> bool| keys.iter().filter(|k| f(k)).count() * 2 > keys.len();
    let sample = &keys[0];
    let form = if share(|k| k.starts_with('/') || k.get(1..3) == Some(":\\") || k.get(1..3) == Some(":/")) {
        Some("look absolute")
    } else if share(|k| k.starts_with("./") || k.starts_with(".\\")) {
        Some("start with \"./\"")
    } else if share(|k| k.contains('\\')) {
        Some("use backslashes")
    } else {
        None
    };
    if let Some(form) = form {
        msg.push_str(&format!(
            "; the store's keys {form} (e.g. {sample:?}), keys must be relative to the dataset root with `/` \
             like {first_missing:?}"
        ));
    } else {
        msg.push_str(&format!("; first missing {first_missing:?}, the store has keys like {sample:?}"));
    }
    let wanted_form = first_missing.replace('\\', "/");
    let prefix = keys.iter().find_map(|k| {
        let k = k.replace('\\', "/");
        let p = k.strip_suffix(wanted_form.as_str())?;
        (p.is_empty() || p.ends_with('/')).then(|| p.to_string())
    });
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        msg.push_str(&format!("; they match after removing {p:?}"));
    }
    Some(msg)
}

/// Element type of a binary matrix on disk (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    F64,
}

impl Elem {
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
        }
    }
}

/// Decodes little-endian `elem` values from `bytes` into `out` (f64 narrowed to f32).
pub(crate) fn decode_into(bytes: &[u8], elem: Elem, out: &mut Vec<f32>) {
    out.clear();
    match elem {
        Elem::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        Elem::F64 => out.extend(
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32),
        ),
    }
}

/// Streams `keys.len()` rows of width `dim` from `r` into an [`Embeddings`],
/// a block at a time, so a large file is never held twice in memory.
/// Row errors (NaN, duplicate key) are reported against `path`.
pub(crate) fn read_rows(
    r: &mut impl Read,
    path: &Path,
    keys: Vec<String>,
    dim: usize,
    elem: Elem,
) -> Result<Embeddings> {
    let mut e = Embeddings::new(dim);
    let row_bytes = dim * elem.size();
    let rows_per_block = (1 << 20) / row_bytes.max(1) + 1;
    let mut bytes = vec![0u8; rows_per_block.min(keys.len().max(1)) * row_bytes];
    let mut vals = Vec::new();
    let mut keys = keys.into_iter();
    let mut left = keys.len();
    while left > 0 {
        let take = left.min(rows_per_block);
        let buf = &mut bytes[..take * row_bytes];
        r.read_exact(buf).map_err(|err| Error::io(path, err))?;
        decode_into(buf, elem, &mut vals);
        for i in 0..take {
            let key = keys.next().expect("one key per row");
            e.push(key, &vals[i * dim..(i + 1) * dim]).map_err(|err| Error::format(path, err.to_string()))?;
        }
        left -= take;
    }
    Ok(e)
}

/// Reads a keys file: one UTF-8 key per line, `\n` or `\r\n` endings.
/// An empty line is an error (it would be an empty key, surely a mistake).
pub fn read_keys(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        Error::parse(path, line, "key is not valid UTF-8")
    })?;
    let mut keys = Vec::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        let key = line.strip_suffix('\r').unwrap_or(line);
        if key.is_empty() {
            return Err(Error::parse(path, i + 1, "empty key"));
        }
        keys.push(key.to_string());
    }
    Ok(keys)
}

/// Checks that every key can be written one per line and read back unchanged.
pub(crate) fn check_line_keys(e: &Embeddings) -> Result<()> {
    for (i, k) in e.keys().iter().enumerate() {
        if k.is_empty() || k.contains(['\n', '\r']) {
            return Err(Error::Invalid(format!(
                "row {i} ({k:?}): a key must be non-empty and contain no line break to be stored one per line"
            )));
        }
    }
    Ok(())
}

/// Writes `path` atomically with `f` streaming its content ([`crate::atomic`]).
pub(crate) fn atomic_write(path: &Path, f: impl FnOnce(&mut AtomicFile) -> std::io::Result<()>) -> Result<()> {
    let mut file = atomic::create(path)?;
    f(&mut file).map_err(|err| Error::io(path, err))?;
    file.commit()
}

/// Writes `data` as little-endian f32, a block at a time.
pub(crate) fn write_f32_le(w: &mut impl Write, data: &[f32]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for block in data.chunks(1 << 14) {
        buf.clear();
        for v in block {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Length of the file at `path`, with the usual error.
pub(crate) fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata().map(|m| m.len()).map_err(|e| Error::io(path, e))
}
