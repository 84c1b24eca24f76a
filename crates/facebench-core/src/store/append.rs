//! The appendable, crash-safe extraction store (`.fbs`).
//!
//! Extraction of a large protocol takes hours; if it dies halfway, every
//! completed row must survive and a rerun must only compute the rest. Layout:
//!
//! ```text
//! {"format":"facebench-store","version":1,"model":..,"weights_sha256":..,"preprocessing":..,"dim":D}\n
//! record*  where record = key_len: u32 LE | key: UTF-8 bytes | D x f32 LE | crc32: u32 LE
//! ```
//!
//! The CRC-32 (IEEE) covers `key_len`, key and values. A crash can only tear
//! the unsynced tail, so reading stops at the first incomplete record or
//! checksum failure; [`AppendStore::create_or_open`] truncates the file
//! there, and the lost rows are simply extracted again. The header is
//! created atomically (temp file + rename) and each [`AppendStore::append`]
//! is flushed with `fsync` before it returns. An open store holds an
//! exclusive file lock, so two extractors cannot interleave records.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Embeddings, Error, Result};

const FORMAT: &str = "facebench-store";
const VERSION: u32 = 1;
/// Longest key accepted; a larger length field can only be a torn record.
const MAX_KEY: usize = 1 << 16;
const MAX_HEADER: u64 = 1 << 20;
/// Widest row accepted, so a corrupt header cannot ask for a huge record buffer.
const MAX_DIM: usize = 1 << 20;

/// What produced a store's embeddings. Reopening a store for appending
/// requires equal metadata, so rows of different models, weights or
/// preprocessing can never be mixed in one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMeta {
    pub model: String,
    pub weights_sha256: String,
    /// How images were turned into model input (crop, alignment, size, flip...).
    pub preprocessing: String,
    pub dim: usize,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(flatten)]
    meta: StoreMeta,
}

/// An open `.fbs` store being appended to. See the module docs for the layout.
#[derive(Debug)]
pub struct AppendStore {
    path: PathBuf,
    file: File,
    meta: StoreMeta,
    keys: HashSet<String>,
    /// Byte offset just past the last complete record.
    end: u64,
    dropped_tail: u64,
}

impl AppendStore {
    /// Opens the store at `path`, creating it with `meta` if it does not
    /// exist. An existing store must have exactly `meta` (the error names the
    /// differing field); a torn tail left by a crash is truncated away.
    pub fn create_or_open(path: &Path, meta: &StoreMeta) -> Result<AppendStore> {
        if meta.dim == 0 || meta.dim > MAX_DIM {
            return Err(Error::Invalid(format!(
                "{}: store dimension must be 1 to {MAX_DIM}, got {}",
                path.display(),
                meta.dim
            )));
        }
        if !path.exists() {
            create(path, meta)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io(path, e))?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => Error::format(path, "store is open for appending in another process"),
            std::fs::TryLockError::Error(e) => Error::io(path, e),
        })?;
        let mut r = BufReader::with_capacity(1 << 20, &file);
        let (stored, header_len) = read_header(&mut r, path)?;
        check_same(path, &stored, meta)?;
        let mut keys = HashSet::new();
        let scan = scan_records(&mut r, path, header_len, meta.dim, u64::MAX, |key, _| {
            keys.insert(key);
            Ok(())
        })?;
        drop(r);
        let len = super::file_len(&file, path)?;
        let dropped_tail = len - scan.end;
        if dropped_tail > 0 {
            file.set_len(scan.end).and_then(|_| file.sync_all()).map_err(|e| Error::io(path, e))?;
        }
        Ok(AppendStore { path: path.to_path_buf(), file, meta: meta.clone(), keys, end: scan.end, dropped_tail })
    }

    /// Reads a whole store without opening it for appending. An incomplete
    /// last record (a crash, or an extractor still writing) is ignored.
    pub fn read(path: &Path) -> Result<(StoreMeta, Embeddings)> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let (meta, header_len) = read_header(&mut r, path)?;
        let e = read_embeddings(&mut r, path, header_len, meta.dim, u64::MAX)?;
        Ok((meta, e))
    }

    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Number of complete rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
    /// Bytes of a torn tail that opening removed (0 after a clean shutdown),
    /// so a caller can say that a crash was recovered from.
    pub fn dropped_tail_bytes(&self) -> u64 {
        self.dropped_tail
    }

    /// Appends `rows` and syncs them to disk before returning: once this
    /// returns Ok, a crash loses none of them. The batch is checked first
    /// (width, finite values, keys new and unique) and on any error nothing
    /// is written; a failed write is rolled back to the previous end.
    pub fn append(&mut self, rows: &[(String, Vec<f32>)]) -> Result<()> {
        let d = self.meta.dim;
        let mut batch = HashSet::new();
        for (i, (key, row)) in rows.iter().enumerate() {
            let at = || format!("{}: batch row {i} ({key:?})", self.path.display());
            if row.len() != d {
                return Err(Error::Invalid(format!("{}: has {} values, store dimension is {d}", at(), row.len())));
            }
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!("{}: value {j} is {}", at(), row[j])));
            }
            if key.is_empty() || key.len() > MAX_KEY {
                return Err(Error::Invalid(format!("{}: key must have 1 to {MAX_KEY} bytes", at())));
            }
            if self.keys.contains(key) || !batch.insert(key.as_str()) {
                return Err(Error::Invalid(format!("{}: key is already in the store", at())));
            }
        }
        let mut buf = Vec::with_capacity(rows.iter().map(|(k, _)| 8 + k.len() + 4 * d).sum());
        for (key, row) in rows {
            let start = buf.len();
            buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buf.extend_from_slice(key.as_bytes());
            for v in row {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            let crc = crc32fast::hash(&buf[start..]);
            buf.extend_from_slice(&crc.to_le_bytes());
        }
        let res = (&self.file)
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| (&self.file).write_all(&buf))
            .and_then(|_| self.file.sync_data());
        if let Err(err) = res {
            let _ = self.file.set_len(self.end);
            return Err(Error::io(&self.path, err));
        }
        self.end += buf.len() as u64;
        self.keys.extend(rows.iter().map(|(k, _)| k.clone()));
        Ok(())
    }

    /// All complete rows, in the order they were appended.
    pub fn to_embeddings(&self) -> Result<Embeddings> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let (_, header_len) = read_header(&mut r, &self.path)?;
        read_embeddings(&mut r, &self.path, header_len, self.meta.dim, self.end)
    }
}

fn create(path: &Path, meta: &StoreMeta) -> Result<()> {
    let header = Header { format: FORMAT.into(), version: VERSION, meta: meta.clone() };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut line = serde_json::to_vec(&header).expect("metadata serialises");
    line.push(b'\n');
    super::atomic_write(path, |w| w.write_all(&line))?;
    // Make the new directory entry durable too (best effort: not every
    // platform can open a directory).
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Parses the header line; returns the metadata and the header's byte length.
fn read_header(r: &mut impl BufRead, path: &Path) -> Result<(StoreMeta, u64)> {
    let mut line = Vec::new();
    r.take(MAX_HEADER).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
    if line.last() != Some(&b'\n') {
        return Err(Error::format(path, "not a facebench store: no header line"));
    }
    let h: Header = serde_json::from_slice(&line)
        .map_err(|e| Error::format(path, format!("not a facebench store: bad header: {e}")))?;
    if h.format != FORMAT {
        return Err(Error::format(path, format!("header format is {:?}, not {FORMAT:?}", h.format)));
    }
    if h.version != VERSION {
        return Err(Error::format(
            path,
            format!("store version {} is not supported (this build reads {VERSION})", h.version),
        ));
    }
    if h.meta.dim == 0 || h.meta.dim > MAX_DIM {
        return Err(Error::format(path, format!("header dimension {} is outside 1..={MAX_DIM}", h.meta.dim)));
    }
    Ok((h.meta, line.len() as u64))
}

fn check_same(path: &Path, stored: &StoreMeta, want: &StoreMeta) -> Result<()> {
    let fields = [
        ("model", stored.model.clone(), want.model.clone()),
        ("weights_sha256", stored.weights_sha256.clone(), want.weights_sha256.clone()),
        ("preprocessing", stored.preprocessing.clone(), want.preprocessing.clone()),
        ("dim", stored.dim.to_string(), want.dim.to_string()),
    ];
    for (name, have, asked) in fields {
        if have != asked {
            return Err(Error::format(
                path,
                format!(
                    "metadata differs: {name} is {have:?} in the store but {asked:?} was requested; \
                     refusing to mix embeddings (use a new store file)"
                ),
            ));
        }
    }
    Ok(())
}

fn read_embeddings(r: &mut impl Read, path: &Path, start: u64, dim: usize, limit: u64) -> Result<Embeddings> {
    let mut e = Embeddings::new(dim);
    scan_records(r, path, start, dim, limit, |key, row| {
        e.push(key, row).map_err(|err| Error::format(path, err.to_string()))
    })?;
    Ok(e)
}

struct Scan {
    /// Offset just past the last good record.
    end: u64,
}

/// Walks records from offset `start` until EOF, `limit`, or the first torn
/// or corrupt record, calling `on_row` for each good one.
fn scan_records(
    r: &mut impl Read,
    path: &Path,
    start: u64,
    dim: usize,
    limit: u64,
    mut on_row: impl FnMut(String, &[f32]) -> Result<()>,
) -> Result<Scan> {
    let mut end = start;
    let mut rec = Vec::new();
    let mut vals = Vec::with_capacity(dim);
    while end < limit {
        let mut len4 = [0u8; 4];
        if !read_full(r, &mut len4).map_err(|e| Error::io(path, e))? {
            break;
        }
        let klen = u32::from_le_bytes(len4) as usize;
        if klen == 0 || klen > MAX_KEY {
            break;
        }
        let size = 4 + klen + 4 * dim + 4;
        rec.clear();
        rec.extend_from_slice(&len4);
        rec.resize(size, 0);
        if !read_full(r, &mut rec[4..]).map_err(|e| Error::io(path, e))? {
            break;
        }
        let body = size - 4;
        let crc = u32::from_le_bytes(rec[body..].try_into().expect("4 bytes"));
        if crc32fast::hash(&rec[..body]) != crc {
            break;
        }
        let Ok(key) = std::str::from_utf8(&rec[4..4 + klen]) else {
            break;
        };
        super::decode_into(&rec[4 + klen..body], super::Elem::F32, &mut vals);
        on_row(key.to_string(), &vals)?;
        end += size as u64;
    }
    Ok(Scan { end })
}

/// Fills `buf` completely; false if EOF comes first (a torn record).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
