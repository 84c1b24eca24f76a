//! Fuzz tests of LFW's parsers: `pairs.txt` (View 1 and 2 layout), image-pair lists, and the
//! protocol TOML (with its includes), on random and mutated inputs. Each must return Ok or a
//! clean Err, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facebench_pairs::{Pairs, PairsProtocol};
use proptest::prelude::*;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A small valid pairs file (2 folds of 2 matched + 2 mismatched pairs) cut from the real
/// View 2 file, and the real View 1 training file.
fn pairs_seeds() -> Vec<Vec<u8>> {
    let text = fs::read_to_string(data().join("lfw/pairs.txt")).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let mut small = String::from("2\t2\n");
    for fold in 0..2 {
        let base = fold * 600;
        for l in lines[base..base + 2].iter().chain(&lines[base + 300..base + 302]) {
            small.push_str(l);
            small.push('\n');
        }
    }
    Pairs::parse(&small, Path::new("small.txt")).expect("the seed is valid");
    vec![small.into_bytes(), fs::read(data().join("lfw/pairsDevTrain.txt")).unwrap()]
}

fn list_seeds() -> Vec<Vec<u8>> {
    let three = "a/1.jpg a/2.jpg 1\nb/1.jpg c/1.jpg 0\nd/1.jpg d/3.jpg 1\ne/1.jpg f/1.jpg 0\n";
    let two = "a/1.jpg 1\na/2.jpg 1\nb/1.jpg 0\nc/1.jpg 0\nd/1.jpg 2\nd/3.jpg 2\ne/1.jpg 0\nf/1.jpg 0\n";
    for s in [three, two] {
        Pairs::parse_list(s, Path::new("list.txt"), 2).expect("the seed is valid");
    }
    vec![three.into(), two.into()]
}

/// The protocol files; each case is read from a scratch folder holding a copy of `common/`.
fn protocol_seeds() -> Vec<Vec<u8>> {
    ["lfw.toml", "lfw_bin.toml", "calfw_images.toml", "cfp_fp.toml"]
        .iter()
        .map(|f| fs::read(repo().join("protocols").join(f)).unwrap())
        .collect()
}

fn protocol_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = fuzz::scratch_file("protocol", "x").parent().unwrap().to_path_buf();
        let common = dir.join("common");
        fs::create_dir_all(&common).unwrap();
        for e in fs::read_dir(repo().join("protocols/common")).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), common.join(e.file_name())).unwrap();
        }
        dir
    })
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn pairs_txt(bytes in fuzz::inputs_of(pairs_seeds(), "0123456789\t \nAbc_-\r")) {
        if let Err(e) = Pairs::parse(&fuzz::text(&bytes), Path::new("fuzz_pairs.txt")) {
            prop_assert!(e.to_string().contains("fuzz_pairs.txt"), "{e}");
        }
    }

    #[test]
    fn pair_lists(bytes in fuzz::inputs_of(list_seeds(), "abc/.jpg0123 \t\n"), folds in 0usize..5) {
        if let Err(e) = Pairs::parse_list(&fuzz::text(&bytes), Path::new("fuzz_list.txt"), folds) {
            prop_assert!(e.to_string().contains("fuzz_list.txt"), "{e}");
        }
    }

    #[test]
    fn protocol_toml(bytes in fuzz::inputs_of(protocol_seeds(), "[]{}=\"., \n#0123456789abcdefpairsfoldscount")) {
        let p = protocol_dir().join("fuzz.toml");
        fuzz::put(&p, &bytes);
        if let Err(e) = PairsProtocol::read(&p) {
            prop_assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }
}
