//! facebench-bin: InsightFace `.bin` verification packs (lfw.bin, cfp_fp.bin, agedb_30.bin,
//! calfw.bin, cplfw.bin).
//!
//! A pack is a Python pickle of `(images, issame)`: `2N` encoded images (JPEG/PNG file
//! contents, usually 112x112 aligned crops), pair `i` being images `2i` and `2i+1`, and `N`
//! bools. InsightFace reads it with `pickle.load(f, encoding='bytes')` and scores 10
//! contiguous folds. [`read_pack`] reads every form Python 2 and 3 write (protocols 0-5, `str`
//! or `bytes` images, bool lists or numpy bool arrays) with a reader that builds data and
//! never imports or calls anything ([`pickle`]); [`write_pack`] writes Python 2's or
//! Python 3's form; [`check_pack`] checks a pack against its protocol file (the pairs-protocol
//! shape, `format = "bin"`) and [`pack_pairs`] cuts it into the protocol's folds.

mod pack;
pub mod pickle;
mod protocol;

pub use pack::{pack_to_bytes, parse_pack, read_pack, write_pack, Error, Result, VerificationPack, WriteProtocol};
pub use protocol::{check_pack, pack_pairs};
