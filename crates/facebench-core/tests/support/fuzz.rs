//! Inputs for the parsers' fuzz tests, shared by every crate's `tests/fuzz_*.rs` through
//! `#[path = ".../facebench-core/tests/support/fuzz.rs"] mod fuzz;`: random bytes, random
//! text over a parser's alphabet, and mutations of a real valid file (bit flips, interesting
//! bytes, truncations, insertions, deletions, duplicated and swapped ranges). A test asserts
//! only that the parser returns (Ok or a clean Err) without panicking or aborting.
//!
//! Cases per parser: `FACEBENCH_FUZZ_CASES` (default 3000, which keeps all of them together
//! well under a minute in release; `make fuzz` runs 200000).
#![allow(dead_code)] // each test file uses the strategies it needs

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

pub fn config() -> Config {
    let cases = std::env::var("FACEBENCH_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    Config { cases, failure_persistence: None, ..Config::default() }
}

#[derive(Debug, Clone)]
enum Op {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Duplicate(Index, usize, Index),
    Swap(Index, Index, usize),
}

/// Bytes that move parsers across branches: separators, signs, digits, quotes, high bytes.
const INTERESTING: &[u8] = b"\0\n\r\t ,:-+.0129\"'[]{}()#=\\/\x7f\x80\xff";

fn op() -> impl Strategy<Value = Op> {
    let byte = prop_oneof![any::<u8>(), proptest::sample::select(INTERESTING)];
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(i, b)| Op::FlipBit(i, b)),
        3 => (any::<Index>(), byte.clone()).prop_map(|(i, b)| Op::SetByte(i, b)),
        1 => any::<Index>().prop_map(Op::Truncate),
        2 => (any::<Index>(), proptest::collection::vec(byte, 1..16)).prop_map(|(i, b)| Op::Insert(i, b)),
        2 => (any::<Index>(), 1..64usize).prop_map(|(i, n)| Op::Delete(i, n)),
        1 => (any::<Index>(), 1..256usize, any::<Index>()).prop_map(|(a, n, b)| Op::Duplicate(a, n, b)),
        1 => (any::<Index>(), any::<Index>(), 1..64usize).prop_map(|(a, b, n)| Op::Swap(a, b, n)),
    ]
}

fn apply(mut v: Vec<u8>, ops: &[Op]) -> Vec<u8> {
    for op in ops {
        let len = v.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
        match op {
            Op::FlipBit(i, b) if len > 0 => v[at(i)] ^= 1 << b,
            Op::SetByte(i, b) if len > 0 => v[at(i)] = *b,
            Op::Truncate(i) => v.truncate(at(i)),
            Op::Insert(i, bytes) => {
                let p = at(i);
                v.splice(p..p, bytes.iter().copied());
            }
            Op::Delete(i, n) if len > 0 => {
                let p = at(i);
                v.drain(p..(p + n).min(len));
            }
            Op::Duplicate(a, n, b) if len > 0 => {
                let p = at(a);
                let chunk = v[p..(p + n).min(len)].to_vec();
                let q = at(b);
                v.splice(q..q, chunk);
            }
            Op::Swap(a, b, n) if len > 0 => {
                let (p, q) = (at(a), at(b));
                let n = (*n).min(len - p.max(q));
                if p + n <= q || q + n <= p {
                    for k in 0..n {
                        v.swap(p + k, q + k);
                    }
                }
            }
            _ => {}
        }
    }
    v
}

/// 1 to 8 mutations of `seed`.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(op(), 1..8).prop_map(move |ops| apply(seed.clone(), &ops))
}

/// Arbitrary bytes.
pub fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

/// Random text over `alphabet`'s characters (how a parser's own tokens recombine).
pub fn random_text(alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..400)
        .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes())
}

/// What each fuzz test runs on: mostly mutations of the valid `seed`, plus random bytes and
/// random text over `alphabet`.
pub fn inputs(seed: Vec<u8>, alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => mutated(seed), 1 => random_bytes(), 2 => random_text(alphabet)]
}

/// Like [`inputs`], mutating one of several valid seeds.
pub fn inputs_of(seeds: Vec<Vec<u8>>, alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let mutated = proptest::sample::select(seeds).prop_flat_map(mutated);
    prop_oneof![6 => mutated, 1 => random_bytes(), 2 => random_text(alphabet)]
}

/// The input as text, the way a parser of text files sees a file read with lossy UTF-8 (the
/// readers under test take `&str`; invalid UTF-8 is rejected before them).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a case's file. Removed first: rewriting a file in place through truncation makes
/// ext4 write it back on close (`auto_da_alloc`), 2 ms a case.
pub fn put(path: &std::path::Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

/// A scratch file for file-based readers, unique per test.
pub fn scratch_file(test: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("facebench-fuzz-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
