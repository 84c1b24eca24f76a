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
//! The CRC-32 (IEEE) covers `key_len`, key and values. A crash can only
//! damage the unsynced tail, so records are read up to the first bad one
//! (incomplete, checksum failure, impossible key length) and then the rest of
//! the file is searched for an intact record:
//!
//! - none after it: a **torn tail**. Readers ignore it (an extractor may still
//!   be writing), [`AppendStore::create_or_open`] truncates it away and says so
//!   in [`AppendStore::recovered_tail`]; the lost rows are extracted again.
//! - intact records after it: **corruption**, never the result of a crash.
//!   Reading and reopening are errors naming the file, byte offset and row, so
//!   intact rows are never discarded silently; [`AppendStore::repair`]
//!   truncates there on request and reports what it dropped.
//!
//! The header is created atomically (temp file + rename) and each
//! [`AppendStore::append`] is flushed with `fsync` before it returns. An open
//! store holds an exclusive file lock, so two extractors cannot interleave records.

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
/// Bytes read from the file at a time while walking records.
const WINDOW: usize = 8 << 20;

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

/// What extraction appends to a mirror store's preprocessing (`... +hflip`).
pub const MIRROR_SUFFIX: &str = " +hflip";

impl StoreMeta {
    /// Whether the store holds the features of horizontally mirrored images.
    pub fn is_mirror(&self) -> bool {
        self.preprocessing.ends_with(MIRROR_SUFFIX)
    }

    /// Why `self` is not the mirror store of `orig` (same model, weights, dimension and
    /// preprocessing, plus the mirror flag), one phrase per field; empty when it is.
    pub fn mirror_mismatches(&self, orig: &StoreMeta) -> Vec<String> {
        let mut why = Vec::new();
        for (field, mine, theirs) in
            [("model", &self.model, &orig.model), ("weights_sha256", &self.weights_sha256, &orig.weights_sha256)]
        {
            if mine != theirs {
                why.push(format!("{field} {mine:?} vs {theirs:?}"));
            }
        }
        if self.dim != orig.dim {
            why.push(format!("dim {} vs {}", self.dim, orig.dim));
        }
        match self.preprocessing.strip_suffix(MIRROR_SUFFIX) {
            None => {
                why.push(format!("preprocessing {:?} has no {MIRROR_SUFFIX:?}: not a mirror store", self.preprocessing))
            }
            Some(base) if base != orig.preprocessing => {
                why.push(format!("preprocessing {base:?} (before {MIRROR_SUFFIX:?}) vs {:?}", orig.preprocessing))
            }
            Some(_) => {}
        }
        why
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(flatten)]
    meta: StoreMeta,
}

/// The torn tail [`AppendStore::create_or_open`] removed after a crash.
/// Its `Display` is the one line a caller prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecovery {
    pub path: PathBuf,
    /// Bytes removed from the end of the file.
    pub bytes: u64,
    /// Incomplete or unverifiable rows in those bytes (they are extracted again).
    pub rows: usize,
    /// Intact rows kept before the tail.
    pub rows_kept: usize,
}

impl std::fmt::Display for TailRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: recovered from an interrupted write: dropped a torn tail of {} bytes ({} incomplete row{}), kept {} rows",
            self.path.display(),
            self.bytes,
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            self.rows_kept
        )
    }
}

/// What [`AppendStore::repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub path: PathBuf,
    /// Offset of the first bad record, where the file now ends (None: it was intact).
    pub bad_offset: Option<u64>,
    /// Intact rows before the bad record, all kept.
    pub rows_kept: usize,
    /// Intact rows after the bad record, dropped with it (0 for a torn tail).
    pub intact_rows_dropped: usize,
    pub bytes_removed: u64,
}

impl std::fmt::Display for RepairReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.bad_offset {
            None => write!(f, "{}: intact, {} rows, nothing to repair", self.path.display(), self.rows_kept),
            Some(at) => write!(
                f,
                "{}: truncated at byte {at}: kept {} rows, dropped {} intact rows after the bad record and {} bytes",
                self.path.display(),
                self.rows_kept,
                self.intact_rows_dropped,
                self.bytes_removed
            ),
        }
    }
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
    recovered: Option<TailRecovery>,
}

impl AppendStore {
    /// Opens the store at `path`, creating it with `meta` if it does not
    /// exist. An existing store must have exactly `meta` (the error names the
    /// differing field). A torn tail left by a crash is truncated away and
    /// reported by [`AppendStore::recovered_tail`]; corruption before the tail
    /// is an error and the file is left unchanged (see [`AppendStore::repair`]).
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
        let file = open_locked(path)?;
        let header_len = {
            let (stored, header_len) = read_header(&mut BufReader::new(&file), path)?;
            check_same(path, &stored, meta)?;
            header_len
        };
        let (scan, keys) = scan_keys(&file, path, header_len, meta.dim)?;
        let recovered = match scan.tail {
            Tail::Clean => None,
            Tail::Corrupt(c) => return Err(c.into_error(path)),
            Tail::Torn { bytes, rows } => {
                file.set_len(scan.end).and_then(|_| file.sync_all()).map_err(|e| Error::io(path, e))?;
                Some(TailRecovery { path: path.to_path_buf(), bytes, rows, rows_kept: scan.rows })
            }
        };
        Ok(AppendStore { path: path.to_path_buf(), file, meta: meta.clone(), keys, end: scan.end, recovered })
    }

    /// Reads a whole store without opening it for appending. An incomplete
    /// last record (a crash, or an extractor still writing) is ignored;
    /// corruption before the tail is an error naming the byte offset and row.
    pub fn read(path: &Path) -> Result<(StoreMeta, Embeddings)> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let (meta, header_len) = read_header(&mut BufReader::new(&file), path)?;
        let e = read_embeddings(&file, path, header_len, meta.dim, u64::MAX)?;
        Ok((meta, e))
    }

    /// Truncates the store at its first bad record (torn or corrupt), keeping
    /// every row before it, and reports how many intact rows after it were
    /// dropped. The explicit way out of a corruption error; an intact store is
    /// left unchanged. A key repeated among the kept rows is an error (which
    /// copy is right cannot be told), as it is for reading.
    pub fn repair(path: &Path) -> Result<RepairReport> {
        let file = open_locked(path)?;
        let (meta, header_len) = read_header(&mut BufReader::new(&file), path)?;
        let (scan, _) = scan_keys(&file, path, header_len, meta.dim)?;
        let intact_rows_dropped = match &scan.tail {
            Tail::Clean => {
                return Ok(RepairReport {
                    path: path.to_path_buf(),
                    bad_offset: None,
                    rows_kept: scan.rows,
                    intact_rows_dropped: 0,
                    bytes_removed: 0,
                })
            }
            Tail::Torn { .. } => 0,
            Tail::Corrupt(c) => c.intact_after,
        };
        let len = super::file_len(&file, path)?;
        file.set_len(scan.end).and_then(|_| file.sync_all()).map_err(|e| Error::io(path, e))?;
        Ok(RepairReport {
            path: path.to_path_buf(),
            bad_offset: Some(scan.end),
            rows_kept: scan.rows,
            intact_rows_dropped,
            bytes_removed: len - scan.end,
        })
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
    /// The torn tail opening removed (None after a clean shutdown), so a
    /// caller can print one line saying that a crash was recovered from.
    pub fn recovered_tail(&self) -> Option<&TailRecovery> {
        self.recovered.as_ref()
    }
    /// Bytes of the torn tail opening removed (0 after a clean shutdown).
    pub fn dropped_tail_bytes(&self) -> u64 {
        self.recovered.as_ref().map_or(0, |t| t.bytes)
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
        let (_, header_len) = read_header(&mut BufReader::new(&file), &self.path)?;
        read_embeddings(&file, &self.path, header_len, self.meta.dim, self.end)
    }
}

fn open_locked(path: &Path) -> Result<File> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io(path, e))?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => Error::format(path, "store is open for appending in another process"),
        std::fs::TryLockError::Error(e) => Error::io(path, e),
    })?;
    Ok(file)
}

fn create(path: &Path, meta: &StoreMeta) -> Result<()> {
    let header = Header { format: FORMAT.into(), version: VERSION, meta: meta.clone() };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut line = serde_json::to_vec(&header).expect("metadata serialises");
    line.push(b'\n');
    crate::atomic::write(path, &line)
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

/// Scans the records collecting their keys. A repeated key is an error, as reading would
/// refuse it: a rerun must not extend such a store, nor a repair leave one.
fn scan_keys(file: &File, path: &Path, start: u64, dim: usize) -> Result<(Scan, HashSet<String>)> {
    let mut keys = HashSet::new();
    let scan = scan_records(file, path, start, dim, u64::MAX, |key, _| {
        if !keys.insert(key.to_string()) {
            return Err(Error::format(path, format!("duplicate key {key:?} at row {}", keys.len())));
        }
        Ok(())
    })?;
    Ok((scan, keys))
}

fn read_embeddings(file: &File, path: &Path, start: u64, dim: usize, limit: u64) -> Result<Embeddings> {
    let mut e = Embeddings::new(dim);
    let scan = scan_records(file, path, start, dim, limit, |key, row| {
        e.push(key.to_string(), row).map_err(|err| Error::format(path, err.to_string()))
    })?;
    match scan.tail {
        Tail::Corrupt(c) => Err(c.into_error(path)),
        Tail::Clean | Tail::Torn { .. } => Ok(e),
    }
}

struct Scan {
    /// Offset just past the last good record of the leading intact run.
    end: u64,
    /// Records in that run.
    rows: usize,
    tail: Tail,
}

/// What follows the leading run of intact records.
enum Tail {
    Clean,
    /// Nothing intact after `end`: what a crash leaves.
    Torn {
        bytes: u64,
        rows: usize,
    },
    Corrupt(Corruption),
}

struct Corruption {
    offset: u64,
    row: usize,
    why: String,
    /// First intact record after the bad one, and how many intact ones follow.
    next_intact: u64,
    intact_after: usize,
}

impl Corruption {
    fn into_error(self, path: &Path) -> Error {
        Error::format(
            path,
            format!(
                "corrupt record at byte offset {at} (row {row}; the {row} rows before it are intact): {why}; \
                 {n} intact rows follow from byte {next}, so this is not a torn tail from a crash. Nothing was \
                 changed; repairing the store truncates it at byte {at} and drops those {n} rows",
                at = self.offset,
                row = self.row,
                why = self.why,
                n = self.intact_after,
                next = self.next_intact,
            ),
        )
    }
}

/// A record read at some offset.
enum Rec<'a> {
    Good {
        key: &'a str,
        values: &'a [u8],
        size: u64,
    },
    /// Extends past the end of the file.
    Incomplete,
    Bad(String),
}

/// Random access to `[0, len)` of a file through one read-ahead buffer.
struct Window<'a> {
    file: &'a File,
    len: u64,
    base: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    /// `n` bytes at `at`, or None if they reach past the end.
    fn get(&mut self, at: u64, n: usize) -> std::io::Result<Option<&[u8]>> {
        if at.checked_add(n as u64).is_none_or(|e| e > self.len) {
            return Ok(None);
        }
        if at < self.base || at + n as u64 > self.base + self.buf.len() as u64 {
            let want = (n.max(WINDOW) as u64).min(self.len - at) as usize;
            self.buf.resize(want, 0);
            let mut f = self.file;
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut self.buf)?;
            self.base = at;
        }
        let off = (at - self.base) as usize;
        Ok(Some(&self.buf[off..off + n]))
    }

    fn record(&mut self, at: u64, dim: usize) -> std::io::Result<Rec<'_>> {
        let Some(len4) = self.get(at, 4)? else {
            return Ok(Rec::Incomplete);
        };
        let klen = u32::from_le_bytes(len4.try_into().expect("4 bytes")) as usize;
        if klen == 0 || klen > MAX_KEY {
            return Ok(Rec::Bad(format!("key length {klen} is outside 1..={MAX_KEY}")));
        }
        let size = 4 + klen + 4 * dim + 4;
        let Some(rec) = self.get(at, size)? else {
            return Ok(Rec::Incomplete);
        };
        let body = size - 4;
        let crc = u32::from_le_bytes(rec[body..].try_into().expect("4 bytes"));
        if crc32fast::hash(&rec[..body]) != crc {
            return Ok(Rec::Bad("CRC-32 mismatch".into()));
        }
        match std::str::from_utf8(&rec[4..4 + klen]) {
            Ok(key) => Ok(Rec::Good { key, values: &rec[4 + klen..body], size: size as u64 }),
            Err(_) => Ok(Rec::Bad("key is not UTF-8".into())),
        }
    }

    /// First offset at or after `from` where an intact record starts.
    fn next_intact(&mut self, from: u64, dim: usize) -> std::io::Result<Option<u64>> {
        for at in from..self.len {
            if matches!(self.record(at, dim)?, Rec::Good { .. }) {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }
}

/// Walks records from offset `start` up to the end of the file (or `limit`),
/// calling `on_row` for each record of the leading intact run, then
/// classifies what follows it as clean, a torn tail or corruption.
fn scan_records(
    file: &File,
    path: &Path,
    start: u64,
    dim: usize,
    limit: u64,
    mut on_row: impl FnMut(&str, &[f32]) -> Result<()>,
) -> Result<Scan> {
    let io = |e| Error::io(path, e);
    let len = super::file_len(file, path)?.min(limit);
    let mut w = Window { file, len, base: 0, buf: Vec::new() };
    let mut end = start;
    let mut rows = 0;
    let mut vals = Vec::with_capacity(dim);
    let why = loop {
        if end >= len {
            return Ok(Scan { end, rows, tail: Tail::Clean });
        }
        match w.record(end, dim).map_err(io)? {
            Rec::Good { key, values, size } => {
                super::decode_into(values, super::Elem::F32, &mut vals);
                on_row(key, &vals)?;
                end += size;
                rows += 1;
            }
            Rec::Incomplete => break format!("an incomplete record of {} bytes", len - end),
            Rec::Bad(why) => break why,
        }
    };
    let Some(next_intact) = w.next_intact(end + 1, dim).map_err(io)? else {
        return Ok(Scan {
            end,
            rows,
            tail: Tail::Torn { bytes: len - end, rows: torn_rows(&mut w, end, dim).map_err(io)? },
        });
    };
    // Count every intact record after the bad one: what truncating would lose.
    let mut intact_after = 0;
    let mut at = Some(next_intact);
    while let Some(p) = at {
        at = match w.record(p, dim).map_err(io)? {
            Rec::Good { size, .. } => {
                intact_after += 1;
                Some(p + size).filter(|&q| q < len)
            }
            Rec::Incomplete | Rec::Bad(_) => w.next_intact(p + 1, dim).map_err(io)?,
        };
    }
    Ok(Scan { end, rows, tail: Tail::Corrupt(Corruption { offset: end, row: rows, why, next_intact, intact_after }) })
}

/// How many records a torn tail at `at` held, following plausible key lengths.
fn torn_rows(w: &mut Window, mut at: u64, dim: usize) -> std::io::Result<usize> {
    let mut rows = 0;
    while at < w.len {
        rows += 1;
        let Some(len4) = w.get(at, 4)? else { break };
        let klen = u32::from_le_bytes(len4.try_into().expect("4 bytes")) as usize;
        if klen == 0 || klen > MAX_KEY {
            break;
        }
        at += (4 + klen + 4 * dim + 4) as u64;
    }
    Ok(rows)
}
