//! Fuzz test of the pickle reader behind `.bin` verification packs: mutations of the real
//! Python 2 and 3 packs of every protocol (0 to 5, numpy and plain) and random bytes. Each
//! must return Ok or a clean Err naming the file, never panic or allocate what the input
//! claims without checking.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::path::Path;

use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(v.len() >= 10, "the pack fixtures are missing");
    v.sort();
    v
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn packs(bytes in fuzz::inputs_of(seeds(), "\u{80}\u{2}\u{4}\u{95}(]q}X\u{1}KJMN.tbehU")) {
        if let Err(e) = facebench_bin::parse_pack(&bytes, Path::new("fuzz.bin")) {
            prop_assert!(e.to_string().contains("fuzz.bin"), "{e}");
        }
    }
}
