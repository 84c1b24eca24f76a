//! Fuzz tests of MegaFace's readers: probe and distractor lists (JSON) and noise lists, on
//! random and mutated files (seeds from the devkit's real lists). Each must return Ok or a
//! clean Err, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::fs;
use std::path::{Path, PathBuf};

use facebench_megaface::{read_distractor_list, read_probe_list, NoiseList};
use proptest::prelude::*;

fn megaface() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/megaface")
}

/// The real probe list cut to its first 20 entries, the real 10-distractor list.
fn list_seeds() -> Vec<Vec<u8>> {
    let text = fs::read_to_string(megaface().join("templatelists/facescrub_features_list.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cut = |k: &str| serde_json::Value::Array(j[k].as_array().unwrap()[..20].to_vec());
    let probes = serde_json::json!({ "id": cut("id"), "path": cut("path") });
    let distractors = fs::read(megaface().join("templatelists/megaface_features_list.json_10_1")).unwrap();
    vec![serde_json::to_vec_pretty(&probes).unwrap(), distractors]
}

fn noise_seed() -> Vec<u8> {
    let text = fs::read_to_string(megaface().join("noises/megaface_noises.txt")).unwrap();
    text.lines().take(40).map(|l| format!("{l}\n")).collect::<String>().into_bytes()
}

const JSON: &str = "{}[]\":, \nidpath/_.jpg0123456789\\u";

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn probe_and_distractor_lists(bytes in fuzz::inputs_of(list_seeds(), JSON)) {
        let p = fuzz::scratch_file("lists", "fuzz_list.json");
        fuzz::put(&p, &bytes);
        if let Err(e) = read_probe_list(&p) {
            prop_assert!(e.to_string().contains("fuzz_list.json"), "{e}");
        }
        if let Err(e) = read_distractor_list(&p) {
            prop_assert!(e.to_string().contains("fuzz_list.json"), "{e}");
        }
    }

    #[test]
    fn noise_lists(bytes in fuzz::inputs(noise_seed(), "#/_.jpg0123456789 \n\r")) {
        let p = fuzz::scratch_file("noise", "fuzz_noises.txt");
        fuzz::put(&p, &bytes);
        if let Err(e) = NoiseList::read(&p) {
            prop_assert!(e.to_string().contains("fuzz_noises.txt"), "{e}");
        }
    }
}
