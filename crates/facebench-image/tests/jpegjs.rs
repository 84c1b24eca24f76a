//! The jpeg-js port against jpeg-js 0.4.4 itself: `fixtures/jpegjs_expected.json` holds what
//! jpeg-js decodes (SHA-256 of the RGB buffer and sample pixels, or that it fails) from
//! face-api's demo photos, LFW images, small fixtures covering progressive / restart / grey /
//! 4:4:4 / 4:2:2 / 4:4:0 / Adobe-RGB coding, and corruptions of one fixture. Regenerate it
//! with `node tests/fixtures/jpegjs_expected.js` (see the script's header).
//!
//! Paths: photos are `$FACEBENCH_MODELS/face-api/demo` (else `<repo>/models`, from
//! `make models`), LFW is under `$FACEBENCH_DATA` (else `<repo>/../shared/data`).

use std::path::{Path, PathBuf};

use facebench_image::{decode_bytes, decode_bytes_with, decode_jpegjs, Decoder, Error, RgbImage};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn env_dir(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// Reads `root:relative` as the generator names files.
fn read(spec: &str) -> Vec<u8> {
    let (root, rel) = spec.split_once(':').unwrap();
    let (dir, hint) = match root {
        "models" => (env_dir("FACEBENCH_MODELS", repo().join("models")), "run `make models` or set FACEBENCH_MODELS"),
        "data" => {
            (env_dir("FACEBENCH_DATA", repo().join("../shared/data")), "set FACEBENCH_DATA to the shared data root")
        }
        "fixtures" => (fixtures().join("jpegjs"), "fixture missing from the repository"),
        other => panic!("unknown root {other}"),
    };
    let p = dir.join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} ({hint})", p.display()))
}

fn expected() -> Value {
    let p = fixtures().join("jpegjs_expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares one decode with a jpeg-js record; `Err` says how they differ.
fn check(got: &facebench_image::Result<RgbImage>, want: &Value) -> Result<(), String> {
    match (got, want.get("error")) {
        (Err(_), Some(_)) => Ok(()),
        (Err(e), None) => Err(format!("port failed ({e}), jpeg-js decoded it")),
        (Ok(_), Some(e)) => Err(format!("port decoded it, jpeg-js failed ({e})")),
        (Ok(img), None) => {
            let size = (want["width"].as_u64().unwrap() as u32, want["height"].as_u64().unwrap() as u32);
            if img.dimensions() != size {
                return Err(format!("size {:?}, jpeg-js {size:?}", img.dimensions()));
            }
            for s in want["samples"].as_array().unwrap() {
                let (x, y) = (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
                let rgb: Vec<u8> = s[2].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
                if img.get_pixel(x, y).0[..] != rgb[..] {
                    return Err(format!("pixel ({x}, {y}) is {:?}, jpeg-js {rgb:?}", img.get_pixel(x, y).0));
                }
            }
            if sha256_hex(img.as_raw()) != want["rgb_sha256"].as_str().unwrap() {
                return Err("sample pixels agree, the SHA-256 of the RGB buffer does not".to_string());
            }
            Ok(())
        }
    }
}

#[test]
fn decodes_bit_identically_to_jpeg_js() {
    let exp = expected();
    assert_eq!(exp["jpeg_js"], "0.4.4");
    let images = exp["images"].as_array().unwrap();
    assert!(images.len() >= 20, "{} images", images.len());
    let mut failures = Vec::new();
    for want in images {
        let file = want["file"].as_str().unwrap();
        let got = decode_jpegjs(&read(file), file);
        if let Err(e) = check(&got, want) {
            failures.push(format!("{file}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ from jpeg-js:\n{}",
        failures.len(),
        images.len(),
        failures.join("\n")
    );
}

/// The demo photos' pixels are also the ones face-api's reference recorded (inputs.json
/// `decoded_rgb_sha256`), which ties the fixture to the reference outputs.
#[test]
fn demo_photos_decode_to_the_reference_pixels() {
    let refdir =
        env_dir("FACEBENCH_REFERENCE", env_dir("FACEBENCH_DATA", repo().join("../shared/data")).join("../reference"));
    let p = refdir.join("inputs.json");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 6);
    for (i, info) in images.iter().enumerate() {
        let file = format!("models:face-api/demo/sample{}.jpg", i + 1);
        let img = decode_jpegjs(&read(&file), &file).unwrap();
        assert_eq!(sha256_hex(img.as_raw()), info["decoded_rgb_sha256"].as_str().unwrap(), "{file}");
        // The image crate's pixels are not jpeg-js's: the decoders really differ.
        let other = decode_bytes(&read(&file), &file).unwrap();
        assert_ne!(other.as_raw(), img.as_raw(), "{file}");
    }
}

/// Corrupt streams take jpeg-js's path too: where jpeg-js fails, the port fails (cuts as
/// `Truncated`); where it decodes garbage, the port decodes the same garbage.
#[test]
fn corrupted_files_fail_or_decode_exactly_as_jpeg_js() {
    let exp = expected();
    let corruptions = &exp["corruptions"];
    let file = corruptions["file"].as_str().unwrap();
    let base = read(file);
    let mut failures = Vec::new();
    let (mut decoded, mut failed) = (0, 0);
    for case in corruptions["cases"].as_array().unwrap() {
        let mut bytes = base.clone();
        let what = if let Some(cut) = case.get("cut") {
            bytes.truncate(cut.as_u64().unwrap() as usize);
            format!("cut at {cut}")
        } else {
            for e in case["edits"].as_array().unwrap() {
                bytes[e[0].as_u64().unwrap() as usize] = e[1].as_u64().unwrap() as u8;
            }
            format!("edits {}", case["edits"])
        };
        let got = decode_jpegjs(&bytes, "corrupt.jpg");
        if case.get("cut").is_some() {
            assert!(matches!(got, Err(Error::Truncated { .. })), "{what}: {got:?}");
        }
        match &got {
            Ok(_) => decoded += 1,
            Err(e) => {
                assert!(e.to_string().starts_with("corrupt.jpg: "), "{e}");
                failed += 1;
            }
        }
        if let Err(e) = check(&got, case) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(decoded >= 5 && failed >= 20, "{decoded} decoded, {failed} failed");
    assert!(failures.is_empty(), "{} corruptions differ from jpeg-js:\n{}", failures.len(), failures.join("\n"));
}

/// Random overwrites, marker insertions and cuts of every fixture: an error or an image,
/// never a panic or a hang.
#[test]
fn random_corruptions_never_panic() {
    let dir = fixtures().join("jpegjs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let start = std::time::Instant::now();
    let mut outcomes = [0usize; 2];
    for p in &files {
        let base = std::fs::read(p).unwrap();
        for i in 0..60 {
            let mut bytes = base.clone();
            match i % 4 {
                0 => bytes.truncate(rand(bytes.len())),
                1 => {
                    // Header region: sizes, tables, sampling factors.
                    let at = rand(bytes.len().min(700));
                    bytes[at] = rand(256) as u8;
                }
                2 => {
                    let at = 2 + rand(bytes.len() - 2);
                    bytes.insert(at, rand(256) as u8);
                    bytes.insert(at, 0xFF);
                }
                _ => {
                    for _ in 0..1 + rand(8) {
                        let at = rand(bytes.len());
                        bytes[at] = rand(256) as u8;
                    }
                }
            }
            outcomes[decode_jpegjs(&bytes, "fuzz.jpg").is_ok() as usize] += 1;
        }
    }
    eprintln!(
        "{} corruptions: {} decoded, {} errors, {:?}",
        outcomes[0] + outcomes[1],
        outcomes[1],
        outcomes[0],
        start.elapsed()
    );
    assert!(outcomes[0] > 0 && outcomes[1] > 0);
    // Nothing pathological: short of the 100 MP / 512 MB limits every case is small.
    assert!(decode_jpegjs(&[], "empty.jpg").is_err());
    assert!(decode_jpegjs(&[0xFF, 0xD8], "soi.jpg").is_err());
    assert!(decode_jpegjs(b"not a jpeg", "text.jpg").is_err());
}

#[test]
fn decoder_choice_is_opt_in() {
    let file = "data:lfw/lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg";
    let bytes = read(file);
    let default = decode_bytes(&bytes, file).unwrap();
    assert_eq!(decode_bytes_with(&bytes, file, Decoder::default()).unwrap(), default);
    let js = decode_bytes_with(&bytes, file, Decoder::JpegJs).unwrap();
    assert_eq!(js, decode_jpegjs(&bytes, file).unwrap());
    assert_ne!(js, default, "the default path must stay the image crate's");
    let mean = js.as_raw().iter().zip(default.as_raw()).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>()
        / js.as_raw().len() as f64;
    assert!(mean < 3.0, "decoders differ by {mean} grey levels on average");
    // Not a JPEG: the image crate decodes it whatever the choice.
    let png = {
        let mut c = std::io::Cursor::new(Vec::new());
        js.write_to(&mut c, image::ImageFormat::Png).unwrap();
        c.into_inner()
    };
    assert_eq!(decode_bytes_with(&png, "x.png", Decoder::JpegJs).unwrap(), js);
    assert_eq!("jpeg-js".parse::<Decoder>().unwrap(), Decoder::JpegJs);
    assert_eq!("image".parse::<Decoder>().unwrap(), Decoder::Image);
    assert!("libjpeg".parse::<Decoder>().unwrap_err().contains("jpeg-js"));
    assert_eq!(Decoder::JpegJs.to_string(), "jpeg-js");
    let missing = facebench_image::decode_file_with(Path::new("/nonexistent/x.jpg"), Decoder::JpegJs).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/x.jpg"), "{missing}");
}
