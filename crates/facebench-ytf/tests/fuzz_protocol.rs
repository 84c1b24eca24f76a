//! Fuzz test of the YTF protocol file (`protocols/ytf.toml`) reader on random and mutated
//! inputs: it must return Ok or a clean Err naming the file, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::path::Path;

use facebench_ytf::YtfProtocol;
use proptest::prelude::*;

/// The repository's protocol file, which must read.
fn seed() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/ytf.toml");
    YtfProtocol::read(&path).expect("the seed is valid");
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn ytf_toml(bytes in fuzz::inputs(seed(), "[]{}=\"., \n#0123456789-splitsheaderpublishedaccuracy")) {
        let p = fuzz::scratch_file("ytf_protocol", "fuzz_ytf.toml");
        fuzz::put(&p, &bytes);
        if let Err(e) = YtfProtocol::read(&p) {
            prop_assert!(e.to_string().contains("fuzz_ytf.toml"), "{e}");
        }
    }
}
