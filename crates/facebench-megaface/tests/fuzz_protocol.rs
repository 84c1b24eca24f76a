//! Fuzz test of the MegaFace protocol file (`protocols/megaface.toml`) reader on random and
//! mutated inputs: it must return Ok or a clean Err naming the file, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::path::Path;

use facebench_megaface::MegafaceProtocol;
use proptest::prelude::*;

/// The repository's protocol file, which must read.
fn seed() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/megaface.toml");
    MegafaceProtocol::read(&path).expect("the seed is valid");
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn megaface_toml(bytes in fuzz::inputs(seed(), "[]{}=\"., \n#0123456789-_listssizesprobepublishedrank")) {
        let p = fuzz::scratch_file("megaface_protocol", "fuzz_megaface.toml");
        fuzz::put(&p, &bytes);
        if let Err(e) = MegafaceProtocol::read(&p) {
            prop_assert!(e.to_string().contains("fuzz_megaface.toml"), "{e}");
        }
    }
}
