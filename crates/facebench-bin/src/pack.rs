//! The pack itself: `(images, issame)` as InsightFace's `load_bin` reads it, and its writer.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pickle::{self, Handle, Obj, Pickle};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a pickle this reader accepts: the offset is the byte in the file.
    #[error("{path}: {source}")]
    Pickle { path: PathBuf, source: pickle::PickleError },
    /// A well-formed pickle that is not a verification pack, or a pack that breaks a rule.
    #[error("{path}: {msg}")]
    Pack { path: PathBuf, msg: String },
    /// A protocol file that does not describe a pack.
    #[error("{path}: {msg}")]
    Protocol { path: PathBuf, msg: String },
    /// The pack's pairs broke a rule of the pairs crate.
    #[error(transparent)]
    Pairs(#[from] facebench_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An InsightFace verification pack: `images[2i]` and `images[2i+1]` are pair `i`, encoded
/// as stored (JPEG or PNG file contents); `issame[i]` says whether they show one person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerificationPack {
    pub images: Vec<Vec<u8>>,
    pub issame: Vec<bool>,
}

/// How [`write_pack`] writes the pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteProtocol {
    /// Protocol 2 with images as `str` (`SHORT_BINSTRING`/`BINSTRING`), as Python 2 wrote
    /// the published packs.
    Py2,
    /// Protocol 4 with images as `bytes` (`SHORT_BINBYTES`/`BINBYTES`/`BINBYTES8`), as
    /// Python 3's `pickle.HIGHEST_PROTOCOL` writes them.
    Py3,
}

impl WriteProtocol {
    /// The protocol number written (2 or 4).
    pub fn number(self) -> u8 {
        match self {
            WriteProtocol::Py2 => 2,
            WriteProtocol::Py3 => 4,
        }
    }
    /// 2 -> [`WriteProtocol::Py2`], 4 -> [`WriteProtocol::Py3`].
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            2 => Some(WriteProtocol::Py2),
            4 => Some(WriteProtocol::Py3),
            _ => None,
        }
    }
}

impl VerificationPack {
    pub fn n_pairs(&self) -> usize {
        self.issame.len()
    }

    /// The two images of pair `i`.
    pub fn pair(&self, i: usize) -> (&[u8], &[u8]) {
        (&self.images[2 * i], &self.images[2 * i + 1])
    }

    /// Checks that there are two images per pair and at least one pair.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.issame.is_empty() {
            return Err("no pairs".into());
        }
        if self.images.len() != 2 * self.issame.len() {
            return Err(format!(
                "{} images for {} pairs: a pack holds exactly two images per pair",
                self.images.len(),
                self.issame.len()
            ));
        }
        Ok(())
    }

    /// The fold (0-based) of every pair: `k` contiguous blocks of equal size, as
    /// InsightFace's `calculate_roc` splits with `KFold(n_splits=k, shuffle=False)`. A pair
    /// count that `k` does not divide is an error (KFold would make uneven folds; no
    /// published pack has one).
    pub fn folds(&self, k: usize) -> std::result::Result<Vec<usize>, String> {
        let n = self.n_pairs();
        if k < 2 || n == 0 || !n.is_multiple_of(k) {
            return Err(format!("{n} pairs cannot be split into {k} equal contiguous folds"));
        }
        facebench_metrics::kfold_ids(n, k).map_err(|e| e.to_string())
    }
}

/// Reads a pack from `path` (see [`parse_pack`]).
pub fn read_pack(path: &Path) -> Result<VerificationPack> {
    let data = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    parse_pack(&data, path)
}

/// Parses the bytes of a pack file; `path` names it in errors. Accepts pickle protocols 0-5,
/// images as Python 2 `str`, Python 3 `bytes` (also the `_codecs.encode` form of protocols
/// 0-2), `bytearray` or 1-D `uint8` numpy arrays, and labels as a list (or tuple) of bools
/// or a 1-D numpy bool array.
pub fn parse_pack(data: &[u8], path: &Path) -> Result<VerificationPack> {
    let p = pickle::parse(data).map_err(|source| Error::Pickle { path: path.to_path_buf(), source })?;
    let bad = |msg: String| Error::Pack { path: path.to_path_buf(), msg };
    let (bins, issame) = match p.get(p.root) {
        Obj::Tuple(v) | Obj::List(v) if v.len() == 2 => (v[0], v[1]),
        o => {
            return Err(bad(format!(
                "the pickle holds a {} (made at byte {}), not the 2-tuple (images, issame) of a verification pack",
                describe(&p, o),
                p.offset(p.root)
            )))
        }
    };
    let images: Vec<Vec<u8>> = match p.get(bins) {
        Obj::List(v) | Obj::Tuple(v) => v
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                image_bytes(&p, h).map_err(|what| {
                    bad(format!("image {i} (made at byte {}) is {what}, expected encoded image bytes", p.offset(h)))
                })
            })
            .collect::<Result<_>>()?,
        o => return Err(bad(format!("the first item is a {}, expected the list of images", describe(&p, o)))),
    };
    let issame: Vec<bool> = match p.get(issame) {
        Obj::List(v) | Obj::Tuple(v) => v
            .iter()
            .enumerate()
            .map(|(i, &h)| match p.get(h) {
                Obj::Bool(b) => Ok(*b),
                o => Err(bad(format!(
                    "issame entry {i} (made at byte {}) is a {}, expected a bool",
                    p.offset(h),
                    describe(&p, o)
                ))),
            })
            .collect::<Result<_>>()?,
        Obj::Reduce { .. } => {
            let a = ndarray(&p, issame).map_err(|m| bad(format!("issame: {m}")))?;
            if !matches!(a.dtype.as_str(), "b1" | "?") || a.shape.len() != 1 {
                return Err(bad(format!(
                    "issame is a numpy array of dtype {:?} and shape {:?}, expected a 1-D bool array",
                    a.dtype, a.shape
                )));
            }
            a.data
                .iter()
                .enumerate()
                .map(|(i, &b)| match b {
                    0 => Ok(false),
                    1 => Ok(true),
                    v => Err(bad(format!("issame: element {i} of the bool array is byte {v}, not 0 or 1"))),
                })
                .collect::<Result<_>>()?
        }
        o => return Err(bad(format!("the second item is a {}, expected the list of issame bools", describe(&p, o)))),
    };
    let pack = VerificationPack { images, issame };
    pack.validate().map_err(bad)?;
    Ok(pack)
}

/// A short description of an object, naming a reduced object's callable.
fn describe(p: &Pickle, o: &Obj) -> String {
    match o {
        Obj::Reduce { callable, .. } => match p.get(*callable) {
            Obj::Global { module, name } => format!("{module}.{name}(...) object"),
            _ => "reduced object".into(),
        },
        Obj::Global { module, name } => format!("global {module}.{name}"),
        Obj::List(v) => format!("list of {}", v.len()),
        Obj::Tuple(v) => format!("tuple of {}", v.len()),
        o => o.type_name().to_string(),
    }
}

fn image_bytes(p: &Pickle, h: Handle) -> std::result::Result<Vec<u8>, String> {
    match p.get(h) {
        Obj::Bytes(b) => Ok(b.clone()),
        Obj::Reduce { .. } => {
            let a = ndarray(p, h)?;
            if a.dtype != "u1" || a.shape.len() != 1 {
                return Err(format!("a numpy array of dtype {:?} and shape {:?}", a.dtype, a.shape));
            }
            Ok(a.data)
        }
        o => Err(format!("a {}", describe(p, o))),
    }
}

/// A numpy array read from its pickled form (never by calling numpy).
struct NdArray {
    /// The dtype code without byte order, e.g. `b1`, `u1`.
    dtype: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

const NUMPY_MODULES: [&str; 4] =
    ["numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric"];

fn global_name(p: &Pickle, h: Handle) -> Option<(&str, &str)> {
    match p.get(h) {
        Obj::Global { module, name } => Some((module, name)),
        _ => None,
    }
}

fn tuple(p: &Pickle, h: Handle) -> Option<&[Handle]> {
    match p.get(h) {
        Obj::Tuple(v) => Some(v),
        _ => None,
    }
}

fn text(p: &Pickle, h: Handle) -> Option<String> {
    match p.get(h) {
        Obj::Str(s) => Some(s.clone()),
        Obj::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

fn shape(p: &Pickle, h: Handle) -> std::result::Result<Vec<usize>, String> {
    let items = tuple(p, h).ok_or("numpy shape is not a tuple")?;
    items
        .iter()
        .map(|&d| match p.get(d) {
            Obj::Int(v) if *v >= 0 => Ok(*v as usize),
            _ => Err("numpy shape holds a non-integer".to_string()),
        })
        .collect()
}

/// `numpy.dtype(code, False, True)` with its `BUILD` state `(3, byteorder, ...)`: the code.
fn dtype(p: &Pickle, h: Handle) -> std::result::Result<String, String> {
    let Obj::Reduce { callable, args, .. } = p.get(h) else {
        return Err("numpy dtype expected".into());
    };
    match global_name(p, *callable) {
        Some(("numpy", "dtype")) => {}
        _ => return Err(format!("{} where a numpy dtype was expected", describe(p, p.get(h)))),
    }
    let code =
        tuple(p, *args).and_then(|a| a.first()).and_then(|&c| text(p, c)).ok_or("numpy dtype without a type code")?;
    Ok(code.trim_start_matches(['<', '>', '|', '=']).to_string())
}

fn ndarray(p: &Pickle, h: Handle) -> std::result::Result<NdArray, String> {
    let Obj::Reduce { callable, args, state } = p.get(h) else {
        return Err("not a numpy array".into());
    };
    let Some((module, name)) = global_name(p, *callable) else {
        return Err("not a numpy array".into());
    };
    let unsupported = || format!("{module}.{name}(...) object (only numpy arrays and lists are read)");
    if !NUMPY_MODULES.contains(&module) {
        return Err(unsupported());
    }
    let (dtype, shape, raw) = match name {
        // ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b') + BUILD (version, shape, dtype, fortran, data).
        "_reconstruct" => {
            let st = state.and_then(|s| tuple(p, s)).ok_or("numpy array without its state")?;
            let st = match st.len() {
                5 => &st[1..],
                4 => st,
                n => return Err(format!("numpy array state of {n} items")),
            };
            if !matches!(p.get(st[2]), Obj::Bool(false)) && !matches!(p.get(st[2]), Obj::Int(0)) {
                return Err("Fortran-ordered numpy arrays are not read".into());
            }
            (dtype(p, st[1])?, shape(p, st[0])?, st[3])
        }
        // Protocol 5: _frombuffer(buffer, dtype, shape, order).
        "_frombuffer" => {
            let a = tuple(p, *args).filter(|a| a.len() == 4).ok_or("numpy _frombuffer with unexpected arguments")?;
            (dtype(p, a[1])?, shape(p, a[2])?, a[0])
        }
        _ => return Err(unsupported()),
    };
    let Obj::Bytes(data) = p.get(raw) else {
        return Err(format!("numpy array data is a {}, not raw bytes", describe(p, p.get(raw))));
    };
    let width = match dtype.as_str() {
        "b1" | "?" | "u1" | "i1" => 1,
        d => return Err(format!("numpy arrays of dtype {d:?} are not read (bool and uint8 are)")),
    };
    let n: usize = shape.iter().product();
    if n * width != data.len() {
        return Err(format!("numpy array of shape {shape:?} with {} data bytes", data.len()));
    }
    Ok(NdArray { dtype, shape, data: data.clone() })
}

/// The pickle bytes of `pack` (see [`WriteProtocol`]); a pack that breaks
/// [`VerificationPack::validate`] is refused.
pub fn pack_to_bytes(pack: &VerificationPack, protocol: WriteProtocol) -> std::result::Result<Vec<u8>, String> {
    pack.validate()?;
    let size: usize = pack.images.iter().map(|i| i.len() + 9).sum::<usize>() + 2 * pack.issame.len() + 64;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[0x80, protocol.number()]);
    out.push(b']'); // EMPTY_LIST
                    // APPENDS in batches of 1000, as Python's pickler does.
    for chunk in pack.images.chunks(1000) {
        out.push(b'('); // MARK
        for img in chunk {
            let n = img.len();
            match protocol {
                WriteProtocol::Py2 if n < 256 => out.extend_from_slice(&[b'U', n as u8]),
                WriteProtocol::Py2 if n <= i32::MAX as usize => {
                    out.push(b'T');
                    out.extend_from_slice(&(n as u32).to_le_bytes());
                }
                WriteProtocol::Py2 => return Err(format!("an image of {n} bytes does not fit a protocol-2 string")),
                WriteProtocol::Py3 if n < 256 => out.extend_from_slice(&[b'C', n as u8]),
                WriteProtocol::Py3 if n <= u32::MAX as usize => {
                    out.push(b'B');
                    out.extend_from_slice(&(n as u32).to_le_bytes());
                }
                WriteProtocol::Py3 => {
                    out.push(0x8e);
                    out.extend_from_slice(&(n as u64).to_le_bytes());
                }
            }
            out.extend_from_slice(img);
        }
        out.push(b'e'); // APPENDS
    }
    out.push(b']');
    for chunk in pack.issame.chunks(1000) {
        out.push(b'(');
        out.extend(chunk.iter().map(|&b| if b { 0x88 } else { 0x89 }));
        out.push(b'e');
    }
    out.extend_from_slice(&[0x86, b'.']); // TUPLE2, STOP
    Ok(out)
}

/// Writes `pack` to `path` (see [`pack_to_bytes`]).
pub fn write_pack(path: &Path, pack: &VerificationPack, protocol: WriteProtocol) -> Result<()> {
    let bytes = pack_to_bytes(pack, protocol).map_err(|msg| Error::Pack { path: path.to_path_buf(), msg })?;
    let io = |e| Error::Io { path: path.to_path_buf(), source: e };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> VerificationPack {
        VerificationPack {
            images: (0..2 * n).map(|i| vec![i as u8; if i == 3 { 300 } else { i + 1 }]).collect(),
            issame: (0..n).map(|i| i % 3 == 0).collect(),
        }
    }

    #[test]
    fn writer_round_trips_both_protocols() {
        let pack = sample(10);
        for proto in [WriteProtocol::Py2, WriteProtocol::Py3] {
            let b = pack_to_bytes(&pack, proto).unwrap();
            assert_eq!(b[1], proto.number());
            assert_eq!(parse_pack(&b, Path::new("x.bin")).unwrap(), pack);
        }
        // More than one APPENDS batch.
        let big = sample(1500);
        let b = pack_to_bytes(&big, WriteProtocol::Py3).unwrap();
        assert_eq!(parse_pack(&b, Path::new("x.bin")).unwrap(), big);
    }

    #[test]
    fn folds_are_contiguous_equal_blocks() {
        let pack = sample(20);
        assert_eq!(pack.folds(10).unwrap(), (0..20).map(|i| i / 2).collect::<Vec<_>>());
        let e = sample(15).folds(10).unwrap_err();
        assert!(e.contains("15 pairs"), "{e}");
    }

    #[test]
    fn shape_errors_are_named() {
        let p = Path::new("p.bin");
        let mut pack = sample(10);
        pack.images.pop();
        assert!(pack_to_bytes(&pack, WriteProtocol::Py3).unwrap_err().contains("19 images for 10 pairs"));
        // ([b'a'], [True]) has one image for one pair.
        let e = parse_pack(b"\x80\x02]q\x00U\x01aa]q\x01\x88a\x86.", p).unwrap_err().to_string();
        assert!(e.starts_with("p.bin: 1 images for 1 pairs"), "{e}");
        // An int among the labels, a str among the images, a dict at the top.
        let e = parse_pack(b"\x80\x02](U\x01aU\x01be](K\x01e\x86.", p).unwrap_err().to_string();
        assert!(e.contains("issame entry 0") && e.contains("int"), "{e}");
        let e = parse_pack(b"\x80\x02](X\x01\x00\x00\x00aU\x01be](\x88e\x86.", p).unwrap_err().to_string();
        assert!(e.contains("image 0 (made at byte 4)") && e.contains("str"), "{e}");
        let e = parse_pack(b"\x80\x02](U\x01ae\x85.", p).unwrap_err().to_string();
        assert!(e.contains("tuple of 1"), "{e}");
        let e = parse_pack(b"\x80\x02}.", p).unwrap_err().to_string();
        assert!(e.starts_with("p.bin: byte 2: opcode EMPTY_DICT"), "{e}");
        // A global that is not numpy is reported by name, never imported.
        let e = parse_pack(b"\x80\x02](U\x01aU\x01becos\nsystem\n)R\x86.", p).unwrap_err().to_string();
        assert!(e.contains("os.system(...) object"), "{e}");
    }
}
