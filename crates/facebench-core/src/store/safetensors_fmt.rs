//! safetensors stores.
//!
//! Layout (standard safetensors, written with the `safetensors` crate):
//! `u64 LE header length`, a JSON header, then the tensor bytes. The header
//! holds one tensor `embeddings` of dtype `F32` (`F64` also read, converted to
//! f32) and shape `[n, d]`, row-major, and `__metadata__` with
//! `"keys"`: the row keys as a JSON array *string*
//! (safetensors metadata values must be strings), e.g.
//! `{"__metadata__":{"keys":"[\"a/1.jpg\",\"b/2.jpg\"]"},"embeddings":{"dtype":"F32","shape":[2,512],"data_offsets":[0,4096]}}`.
//! Other tensors in the file are ignored. The crate caps the header at
//! 100 MB, so this format holds up to about 2M keys of ~40 characters.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use safetensors::tensor::Metadata;
use safetensors::{Dtype, View};

use super::{file_len, read_keys, read_rows, Elem};
use crate::{Embeddings, Error, Result};

const TENSOR: &str = "embeddings";
const KEYS: &str = "keys";
const MAX_HEADER: u64 = 100_000_000;

/// Reads tensor `embeddings` and its keys (from `keys` if given, one key a
/// line, else from the metadata). Streams the data: the file is never held
/// in memory twice.
pub fn read_safetensors(path: &Path, keys: Option<&Path>) -> Result<Embeddings> {
    let bad = |msg: String| Error::format(path, msg);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file_len(&file, path)?;
    let mut r = BufReader::new(file);
    let mut n8 = [0u8; 8];
    r.read_exact(&mut n8).map_err(|_| bad("too short for a safetensors file".into()))?;
    let hlen = u64::from_le_bytes(n8);
    if hlen > MAX_HEADER || 8 + hlen > len {
        return Err(bad(format!("header length {hlen} does not fit the {len}-byte file: not a safetensors file?")));
    }
    let mut header = vec![0u8; hlen as usize];
    r.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let meta: Metadata =
        serde_json::from_slice(&header).map_err(|e| bad(format!("invalid safetensors header: {e}")))?;
    // The crate's own rule: tensors tile the data area exactly.
    let data_end = meta.tensors().values().map(|t| t.data_offsets.1 as u64).max().unwrap_or(0);
    if (8 + hlen).checked_add(data_end) != Some(len) {
        return Err(bad(format!("header describes {data_end} data bytes but the file holds {}", len - 8 - hlen)));
    }
    let info = meta.info(TENSOR).ok_or_else(|| bad(format!("no tensor named {TENSOR:?}")))?;
    let elem = match info.dtype {
        Dtype::F32 => Elem::F32,
        Dtype::F64 => Elem::F64,
        other => return Err(bad(format!("tensor {TENSOR:?} has dtype {other:?}; expected F32 or F64"))),
    };
    let [n, d] = info.shape[..] else {
        return Err(bad(format!("tensor {TENSOR:?} has shape {:?}; expected [n, d]", info.shape)));
    };
    if d == 0 {
        return Err(bad(format!("tensor {TENSOR:?} has shape [{n}, 0]: rows have no values")));
    }
    let (start, end) = info.data_offsets;
    let nbytes = n.checked_mul(d).and_then(|v| v.checked_mul(elem.size()));
    if end < start || nbytes != Some(end - start) {
        return Err(bad(format!("tensor {TENSOR:?}: shape [{n}, {d}] disagrees with data offsets [{start}, {end}]")));
    }
    let keys = match keys {
        Some(k) => read_keys(k)?,
        None => {
            let json = meta
                .metadata()
                .as_ref()
                .and_then(|m| m.get(KEYS))
                .ok_or_else(|| bad(format!("no \"{KEYS}\" entry in __metadata__ (give a keys file)")))?;
            serde_json::from_str::<Vec<String>>(json)
                .map_err(|e| bad(format!("metadata \"{KEYS}\" is not a JSON array of strings: {e}")))?
        }
    };
    if keys.len() != n {
        return Err(bad(format!("{} keys for the {n} rows of tensor {TENSOR:?}", keys.len())));
    }
    r.seek(SeekFrom::Start(8 + hlen + start as u64)).map_err(|e| Error::io(path, e))?;
    read_rows(&mut r, path, keys, d, elem)
}

/// Writes `e` as an `F32` tensor `embeddings` with its keys in the metadata.
pub fn write_safetensors(path: &Path, e: &Embeddings) -> Result<()> {
    if e.dim() == 0 {
        return Err(Error::Invalid(format!("{}: cannot store zero-width embeddings", path.display())));
    }
    let keys = serde_json::to_string(e.keys()).expect("strings serialise");
    let meta = Some(HashMap::from([(KEYS.to_string(), keys)]));
    let view = HeaderOnly { shape: [e.len(), e.dim()], nbytes: e.data().len() * 4 };
    super::atomic_write(path, |w| {
        let header = safetensors::serialize([(TENSOR, view)], &meta).map_err(std::io::Error::other)?;
        std::io::Write::write_all(w, &header)?;
        super::write_f32_le(w, e.data())
    })
}

/// Describes a tensor to `safetensors::serialize` without copying its bytes:
/// `data()` is empty, so the crate emits the exact header (length, JSON,
/// alignment padding) and we stream the data after it ourselves.
struct HeaderOnly {
    shape: [usize; 2],
    nbytes: usize,
}

impl View for HeaderOnly {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&[])
    }
    fn data_len(&self) -> usize {
        self.nbytes
    }
}
