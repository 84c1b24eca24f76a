//! Fuzz tests of every store reader: npy (+ keys file), CSV, safetensors, `.fbs` (reading,
//! reopening and repairing) and MegaFace devkit features, on random and mutated files.
//! Each must return Ok or a clean Err, never panic or abort on a huge allocation.

#[path = "support/fuzz.rs"]
mod fuzz;

use std::fs;
use std::path::Path;

use facebench_core::store::{self, AppendStore, StoreMeta};
use facebench_core::Embeddings;
use proptest::prelude::*;

fn sample() -> Embeddings {
    let keys = (0..6).map(|i| format!("p{i}/img,\"{i}\".jpg")).collect();
    Embeddings::from_rows(keys, (0..24).map(|i| i as f32 * 0.37 - 2.0).collect(), 4).unwrap()
}

/// The bytes of `sample()` written as `name` (and the file's path).
fn seed(name: &str) -> Vec<u8> {
    let p = fuzz::scratch_file("seeds", name);
    store::write(&p, &sample()).unwrap();
    fs::read(&p).unwrap()
}

/// A written file reads back Ok or as an error naming it.
fn check(path: &Path, r: facebench_core::Result<Embeddings>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let keys = path.with_extension("keys");
        let msg = e.to_string();
        prop_assert!(msg.contains(&name) || msg.contains(&*keys.file_name().unwrap().to_string_lossy()), "{msg}");
    }
    Ok(())
}

const BINARY: &str = "\0\u{1}\u{7f}<f48NUMPY{}()':,0123456789 \nTrueFalse";

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn npy(bytes in fuzz::inputs(seed("s.npy"), BINARY), keys in fuzz::inputs(seed_keys(), "ab/\n\r.")) {
        let p = fuzz::scratch_file("npy", "x.npy");
        fuzz::put(&p, &bytes);
        fuzz::put(&p.with_extension("keys"), &keys);
        check(&p, store::read(&p, None))?;
    }

    #[test]
    fn csv(bytes in fuzz::inputs(seed("s.csv"), "abc,\"\n\r-.0123456789eE+naNinf ")) {
        let p = fuzz::scratch_file("csv", "x.csv");
        fuzz::put(&p, &bytes);
        check(&p, store::read(&p, None))?;
    }

    #[test]
    fn safetensors(bytes in fuzz::inputs(seed("s.safetensors"), "{}[]\":,F3264_metadata_keysembeddingsdtypeshapedata_offsets0123456789")) {
        let p = fuzz::scratch_file("safetensors", "x.safetensors");
        fuzz::put(&p, &bytes);
        check(&p, store::read(&p, None))?;
    }

    #[test]
    fn fbs(bytes in fuzz::inputs(fbs_seed(), "{}\":,dim0123456789\n\0")) {
        let p = fuzz::scratch_file("fbs", "x.fbs");
        fuzz::put(&p, &bytes);
        let read = AppendStore::read(&p);
        if let Err(e) = &read {
            prop_assert!(e.to_string().contains("x.fbs"), "{e}");
        }
        // Reopening agrees with reading: corruption refuses, a torn tail is cut; repair
        // always leaves a store that reads cleanly.
        match (AppendStore::create_or_open(&p, &fbs_meta()), &read) {
            (Ok(s), Ok((_, e))) => prop_assert_eq!(s.len(), e.len()),
            (Ok(_), Err(e)) => prop_assert!(false, "read failed ({e}) but reopening succeeded"),
            (Err(_), _) => {}
        }
        if AppendStore::repair(&p).is_ok() {
            prop_assert!(AppendStore::read(&p).is_ok());
        }
    }

    #[test]
    fn devkit_feature(bytes in fuzz::inputs(devkit_seed(), "\0\u{1}\u{4}\u{5}\u{6}\u{ff}")) {
        let p = fuzz::scratch_file("devkit", "x.jpg_alg.bin");
        fuzz::put(&p, &bytes);
        if let Err(e) = store::read_devkit_feature(&p) {
            prop_assert!(e.to_string().contains("x.jpg_alg.bin"), "{e}");
        }
    }
}

fn seed_keys() -> Vec<u8> {
    let p = fuzz::scratch_file("seeds", "s.npy");
    store::write(&p, &sample()).unwrap();
    fs::read(p.with_extension("keys")).unwrap()
}

fn fbs_meta() -> StoreMeta {
    StoreMeta { model: "m".into(), weights_sha256: "0".into(), preprocessing: "p".into(), dim: 2 }
}

fn fbs_seed() -> Vec<u8> {
    let p = fuzz::scratch_file("seeds", "s.fbs");
    let _ = fs::remove_file(&p);
    let mut s = AppendStore::create_or_open(&p, &fbs_meta()).unwrap();
    let rows: Vec<(String, Vec<f32>)> = (0..5).map(|i| (format!("k{i}"), vec![i as f32, 0.5])).collect();
    s.append(&rows[..3]).unwrap();
    s.append(&rows[3..]).unwrap();
    drop(s);
    fs::read(&p).unwrap()
}

fn devkit_seed() -> Vec<u8> {
    let p = fuzz::scratch_file("seeds", "s.bin");
    store::write_devkit_feature(&p, &[0.25, -1.0, 3.0]).unwrap();
    fs::read(&p).unwrap()
}
