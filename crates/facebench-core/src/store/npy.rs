//! numpy `.npy` matrices (format versions 1.0, 2.0, 3.0), keys in a sidecar file.
//!
//! Layout: `\x93NUMPY`, major, minor, header length (u16 LE for v1, u32 LE
//! for v2/v3), a Python dict literal `{'descr': '<f4', 'fortran_order':
//! False, 'shape': (n, d), }` padded with spaces and `\n` to a 64-byte
//! boundary, then the C-order data. Row keys live in `X.keys` next to `X.npy`.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::{file_len, read_keys, read_rows, write_f32_le, Elem};
use crate::{atomic, Embeddings, Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy refuses headers above this size unless told otherwise; so do we,
/// so a corrupt length cannot make us allocate gigabytes.
const MAX_HEADER: usize = 10_000;

/// The keys file of `X.npy`: `X.keys` in the same folder.
pub fn keys_path_for(npy: &Path) -> PathBuf {
    npy.with_extension("keys")
}

/// Reads a 2-D `<f4` or `<f8` C-order `.npy` (f64 is converted to f32) with
/// its keys from `keys` or, by default, [`keys_path_for`]`(path)`.
pub fn read_npy(path: &Path, keys: Option<&Path>) -> Result<Embeddings> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file_len(&file, path)?;
    let mut r = BufReader::new(file);
    let h = read_header(&mut r, path)?;
    let (n, d) = (h.shape[0], h.shape[1]);
    let data_len = n
        .checked_mul(d)
        .and_then(|v| v.checked_mul(h.elem.size() as u64))
        .and_then(|v| v.checked_add(h.data_offset))
        .ok_or_else(|| Error::format(path, format!("shape ({n}, {d}) overflows")))?;
    if data_len != len {
        return Err(Error::format(
            path,
            format!(
                "header says shape ({n}, {d}) of {}-byte values, which needs a {data_len}-byte file, but the file has {len} bytes",
                h.elem.size()
            ),
        ));
    }
    if d == 0 {
        return Err(Error::format(path, format!("shape ({n}, 0): rows have no values")));
    }
    let keys_path = keys.map(Path::to_path_buf).unwrap_or_else(|| keys_path_for(path));
    let keys = read_keys(&keys_path)?;
    if keys.len() as u64 != n {
        return Err(Error::format(&keys_path, format!("{} keys for the {n} rows of {}", keys.len(), path.display())));
    }
    read_rows(&mut r, path, keys, d as usize, h.elem)
}

/// Writes `e` as a v1.0 `<f4` `.npy`, byte for byte as `numpy.save` would,
/// and its keys to [`keys_path_for`]`(path)`.
pub fn write_npy(path: &Path, e: &Embeddings) -> Result<()> {
    if e.dim() == 0 {
        return Err(Error::Invalid(format!("{}: cannot store zero-width embeddings", path.display())));
    }
    let keys_path = keys_path_for(path);
    if keys_path == path {
        return Err(Error::format(path, "an .npy store needs a name ending in .npy"));
    }
    super::check_line_keys(e)?;
    // Both files are written in full before either is renamed into place, so a
    // failure (disk full) leaves the previous pair, never new data with old keys.
    let mut data = atomic::create(path)?;
    data.write_all(&header_v1(e.len(), e.dim()))
        .and_then(|_| write_f32_le(&mut data, e.data()))
        .map_err(|err| Error::io(path, err))?;
    let mut keys = atomic::create(&keys_path)?;
    e.keys()
        .iter()
        .try_for_each(|k| keys.write_all(k.as_bytes()).and_then(|_| keys.write_all(b"\n")))
        .map_err(|err| Error::io(&keys_path, err))?;
    data.sync()?;
    keys.sync()?;
    keys.commit()?;
    data.commit()
}

/// The v1.0 header numpy writes for a C-order `<f4` array of shape (n, d):
/// the dict, spare spaces so the first axis can grow in place (numpy's
/// `GROWTH_AXIS_MAX_DIGITS` = 21), then spaces and `\n` to a 64-byte boundary.
fn header_v1(n: usize, d: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    dict.push_str(&" ".repeat(21usize.saturating_sub(n.to_string().len())));
    let hlen = dict.len() + 1;
    let pad = 64 - (MAGIC.len() + 2 + 2 + hlen) % 64;
    let mut out = Vec::with_capacity(10 + hlen + pad);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

struct Header {
    elem: Elem,
    shape: [u64; 2],
    data_offset: u64,
}

fn read_header(r: &mut impl Read, path: &Path) -> Result<Header> {
    let bad = |msg: String| Error::format(path, msg);
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|_| bad("too short for an .npy header".into()))?;
    if &pre[..6] != MAGIC {
        return Err(bad("not an .npy file (missing \\x93NUMPY magic)".into()));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, data_offset) = match (major, minor) {
        (1, 0) => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| bad("truncated .npy header".into()))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        (2, 0) | (3, 0) => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| bad("truncated .npy header".into()))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        _ => return Err(bad(format!("unsupported .npy format version {major}.{minor}"))),
    };
    if hlen > MAX_HEADER {
        return Err(bad(format!("header length {hlen} exceeds {MAX_HEADER} bytes: corrupt file?")));
    }
    let mut raw = vec![0u8; hlen];
    r.read_exact(&mut raw).map_err(|_| bad("truncated .npy header".into()))?;
    // v1/v2 headers are latin-1, v3 UTF-8.
    let text: String = if major == 3 {
        String::from_utf8(raw).map_err(|_| bad("v3.0 header is not UTF-8".into()))?
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    let dict = parse_dict(&text).map_err(|m| bad(format!("header {:?}: {m}", text.trim_end())))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(bad(format!("header field '{k}' has the wrong type")))
            }
            _ => {}
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad("header lacks one of 'descr', 'fortran_order', 'shape'".into()));
    };
    let elem = match descr.as_str() {
        "<f4" => Elem::F32,
        "<f8" => Elem::F64,
        other => {
            return Err(bad(format!(
                "dtype {other:?} is not supported: expected '<f4' or '<f8' (convert with arr.astype('<f4'))"
            )))
        }
    };
    if fortran {
        return Err(bad("fortran_order=True is not supported: save a C-order array (np.ascontiguousarray)".into()));
    }
    let [n, d] = shape[..] else {
        return Err(bad(format!("shape {shape:?} is not 2-D (rows x dimension)")));
    };
    Ok(Header { elem, shape: [n, d], data_offset: data_offset + hlen as u64 })
}

#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the Python dict literal numpy writes: string keys; values are
/// strings, `True`/`False` or tuples of integers (Python 2's `3L` accepted).
fn parse_dict(s: &str) -> std::result::Result<Vec<(String, Value)>, String> {
    let mut p = Cursor { s: s.as_bytes(), i: 0 };
    p.expect(b'{')?;
    let mut out = Vec::new();
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        p.ws();
        let val = match p.peek() {
            Some(b'\'' | b'"') => Value::Str(p.string()?),
            Some(b'(') => Value::Tuple(p.tuple()?),
            Some(b'T' | b'F') => Value::Bool(p.boolean()?),
            _ => return Err(format!("unsupported value for '{key}' (structured dtypes are not supported)")),
        };
        out.push((key, val));
        p.ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the dict".into());
    }
    Ok(out)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        self.ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(v);
            }
            self.i += 1;
        }
        Err("unterminated string".into())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }
    fn tuple(&mut self) -> std::result::Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(v);
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            let num = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let n: u64 = num.parse().map_err(|_| format!("expected a dimension at byte {start}"))?;
            self.eat(b'L');
            v.push(n);
            self.ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_byte_aligned_like_numpy() {
        for (n, d) in [(0, 1), (3, 4), (1, 513), (123456789, 512)] {
            let h = header_v1(n, d);
            assert_eq!(h.len() % 64, 0, "({n}, {d})");
            assert_eq!(*h.last().unwrap(), b'\n');
            let mut r = &h[..];
            let parsed = read_header(&mut r, Path::new("x.npy")).unwrap();
            assert_eq!(parsed.shape, [n as u64, d as u64]);
            assert_eq!(parsed.data_offset, h.len() as u64);
        }
    }

    #[test]
    fn dict_parser_accepts_python2_and_rejects_structured() {
        let d = parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }").unwrap();
        assert!(matches!(&d[2].1, Value::Tuple(t) if t == &[2, 3]));
        let d = parse_dict("{\"shape\": (5,), \"descr\": \"<f4\", \"fortran_order\": True}").unwrap();
        assert!(matches!(&d[0].1, Value::Tuple(t) if t == &[5]));
        assert!(parse_dict("{'descr': [('a', '<f4')], 'shape': (2,)}").unwrap_err().contains("structured"));
        assert!(parse_dict("{'shape': (2, 3)").is_err());
    }
}
