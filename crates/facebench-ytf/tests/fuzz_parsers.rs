//! Fuzz tests of YTF's parsers: `splits.txt` and the `*.labeled_faces.txt` box files, on
//! random and mutated inputs. Each must return Ok or a clean Err, never panic.

#[path = "../../facebench-core/tests/support/fuzz.rs"]
mod fuzz;

use std::fs;
use std::path::{Path, PathBuf};

use facebench_ytf::{LabeledFaces, Splits, SplitsSpec, VideoId, YtfProtocol};
use proptest::prelude::*;

fn ytf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ytf")
}

/// The splits.txt shape declared by the repository's protocols/ytf.toml.
fn spec() -> SplitsSpec {
    YtfProtocol::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocols/ytf.toml")).unwrap().splits
}

fn splits_seed() -> Vec<u8> {
    fs::read(ytf().join("splits.txt")).unwrap()
}

fn labels_seed() -> Vec<u8> {
    let text = fs::read_to_string(ytf().join("frame_images_DB_subset/Alek_Wek/Alek_Wek1.labeled_faces.txt")).unwrap();
    let head: String = text.lines().take(30).map(|l| format!("{l}\n")).collect();
    LabeledFaces::default().parse_into(&head, Path::new("seed.txt")).expect("the seed is valid");
    head.into_bytes()
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn splits_txt(bytes in fuzz::inputs(splits_seed(), "0123456789, \n/_Abc:")) {
        if let Err(e) = Splits::parse(&fuzz::text(&bytes), Path::new("fuzz_splits.txt"), &spec()) {
            prop_assert!(e.to_string().contains("fuzz_splits.txt"), "{e}");
        }
    }

    #[test]
    fn labeled_faces(bytes in fuzz::inputs(labels_seed(), "Alek_W\\1.jpg0123456789,-e \n")) {
        let mut faces = LabeledFaces::default();
        if let Err(e) = faces.parse_into(&fuzz::text(&bytes), Path::new("fuzz.labeled_faces.txt")) {
            prop_assert!(e.to_string().contains("fuzz.labeled_faces.txt"), "{e}");
        }
    }

    #[test]
    fn video_ids(s in "[A-Za-z_/0-9 ]{0,20}") {
        let _ = VideoId::parse(&s);
    }
}
