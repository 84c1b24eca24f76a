//! Fuzz test of the model registry parser (`protocols/models.toml`) on random and mutated
//! inputs: it must return Ok or a clean Err naming the file, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::path::Path;

use facebench_model::Registry;
use proptest::prelude::*;

/// The repository's registry, which must parse.
fn seed() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/models.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    Registry::parse(&path, &text).expect("the seed is valid");
    text.into_bytes()
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn models_toml(
        bytes in fuzz::inputs(seed(), "[]{}=\"., \n#0123456789abcdefmodelpackageassetnamefilessha256npm:@/")
    ) {
        if let Err(e) = Registry::parse(Path::new("fuzz_models.toml"), &fuzz::text(&bytes)) {
            prop_assert!(e.to_string().contains("fuzz_models.toml"), "{e}");
        }
    }
}
