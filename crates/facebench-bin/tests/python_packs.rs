//! The reader on packs that Python itself wrote (the committed fixtures of
//! scripts/make_fixtures.py, Python 2.7 and 3.11), and our writer read back by Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use facebench_bin::{parse_pack, read_pack, write_pack, VerificationPack, WriteProtocol};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Every Python 2 and 3 protocol, and numpy bool labels at protocols 2, 4 and 5.
const FIXTURES: [&str; 12] = [
    "py2_proto0.bin",
    "py2_proto1.bin",
    "py2_proto2.bin",
    "py3_proto0.bin",
    "py3_proto1.bin",
    "py3_proto2.bin",
    "py3_proto3.bin",
    "py3_proto4.bin",
    "py3_proto5.bin",
    "py3_numpy_proto2.bin",
    "py3_numpy_proto4.bin",
    "py3_numpy_proto5.bin",
];

#[test]
fn every_python_fixture_reads_as_the_same_pack() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    let labels: Vec<bool> = expected["issame"].as_array().unwrap().iter().map(|v| v.as_bool().unwrap()).collect();
    let shas: Vec<&str> = expected["images_sha256"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!((labels.len(), shas.len()), (10, 20));
    for name in FIXTURES {
        let pack = read_pack(&fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pack.issame, labels, "{name}");
        assert_eq!(pack.images.len(), 20, "{name}");
        for (i, img) in pack.images.iter().enumerate() {
            assert_eq!(sha_hex(img), shas[i], "{name}: image {i}");
            assert!(img.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: image {i}");
        }
        assert_eq!(pack.folds(10).unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(pack.pair(3).0, &pack.images[6][..]);
    }
}

#[test]
fn every_truncation_of_a_fixture_is_an_error_with_an_offset() {
    for name in ["py2_proto2.bin", "py3_proto0.bin", "py3_numpy_proto5.bin"] {
        let data = std::fs::read(fixtures().join(name)).unwrap();
        for n in 0..data.len() {
            let e = parse_pack(&data[..n], Path::new(name)).expect_err("a truncated pack must not parse").to_string();
            assert!(e.starts_with(name) && e.contains("byte "), "{name}[..{n}]: {e}");
        }
    }
}

/// A Python 3 interpreter, if one is installed.
fn python3() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Command::new(p).arg("-c").arg("pass").output().is_ok_and(|o| o.status.success()))
}

/// Runs `script` with the given interpreter and arguments; its stdout.
fn run_python(python: &str, script: &str, args: &[&Path]) -> String {
    let o = Command::new(python).arg("-c").arg(script).args(args).output().unwrap();
    assert!(o.status.success(), "{python} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

const LOAD: &str = r#"
import hashlib, json, pickle, sys
with open(sys.argv[1], "rb") as f:
    bins, issame = pickle.load(f, encoding="bytes")
print(json.dumps({"sha": [hashlib.sha256(b).hexdigest() for b in bins], "issame": [bool(x) for x in issame],
                  "types": sorted({type(b).__name__ for b in bins})}))
"#;

#[test]
fn python_reads_what_we_write() {
    let Some(py) = python3() else {
        println!("SKIPPED python_reads_what_we_write: no python3 on this machine");
        return;
    };
    let dir = std::env::temp_dir().join(format!("fb-bin-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pack = VerificationPack {
        // Sizes across the short/long opcode boundary, every byte value, an empty image.
        images: (0..40usize)
            .map(|i| (0..[0, 1, 255, 256, 70_000][i % 5]).map(|j| (j * 7 + i) as u8).collect())
            .collect(),
        issame: (0..20).map(|i| i % 3 != 1).collect(),
    };
    for proto in [WriteProtocol::Py2, WriteProtocol::Py3] {
        let path = dir.join(format!("ours_{}.bin", proto.number()));
        write_pack(&path, &pack, proto).unwrap();
        let got: serde_json::Value = serde_json::from_str(&run_python(py, LOAD, &[&path])).unwrap();
        let shas: Vec<String> = pack.images.iter().map(|b| sha_hex(b)).collect();
        assert_eq!(got["sha"], serde_json::json!(shas), "protocol {}", proto.number());
        assert_eq!(got["issame"], serde_json::json!(pack.issame));
        // Python 3 reads Python 2 strings as bytes under encoding='bytes', like InsightFace does.
        assert_eq!(got["types"], serde_json::json!(["bytes"]));
        assert_eq!(read_pack(&path).unwrap(), pack);
    }
    // BINBYTES8 (Python only writes it for images over 4 GiB): hand-made, read by both.
    let small = VerificationPack { images: vec![b"ab".to_vec(), b"c".to_vec()], issame: vec![true] };
    let b = b"\x80\x04](\x8e\x02\x00\x00\x00\x00\x00\x00\x00ab\x8e\x01\x00\x00\x00\x00\x00\x00\x00ce](\x88e\x86.";
    let path = dir.join("binbytes8.bin");
    std::fs::write(&path, b).unwrap();
    let got: serde_json::Value = serde_json::from_str(&run_python(py, LOAD, &[&path])).unwrap();
    assert_eq!(got["sha"], serde_json::json!([sha_hex(b"ab"), sha_hex(b"c")]));
    assert_eq!(read_pack(&path).unwrap(), small);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn we_read_large_packs_python_writes() {
    let Some(py) = python3() else {
        println!("SKIPPED we_read_large_packs_python_writes: no python3 on this machine");
        return;
    };
    let dir = std::env::temp_dir().join(format!("fb-bin-pylarge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 2,500 pairs: several APPENDS batches, many 64 KiB frames, and images above the frame size
    // (written outside frames) at every protocol from 2 to 5.
    let script = r#"
import pickle, sys
bins = [bytes((i * 13 + j) % 256 for j in range([100, 300, 1000][i % 3] if i % 97 else 70000)) for i in range(5000)]
issame = [i % 4 == 0 for i in range(2500)]
for p in range(2, pickle.HIGHEST_PROTOCOL + 1):
    with open("%s/large_%d.bin" % (sys.argv[1], p), "wb") as f:
        pickle.dump((bins, issame), f, protocol=p)
"#;
    run_python(py, script, &[&dir]);
    for p in 2..=5 {
        let path = dir.join(format!("large_{p}.bin"));
        if p == 5 && !path.exists() {
            continue; // Python older than 3.8
        }
        let pack = read_pack(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pack.n_pairs(), 2500);
        for i in [0usize, 1, 2, 97, 4999] {
            let len = if i % 97 == 0 { 70_000 } else { [100, 300, 1000][i % 3] };
            let want: Vec<u8> = (0..len).map(|j| ((i * 13 + j) % 256) as u8).collect();
            assert_eq!(pack.images[i], want, "protocol {p}, image {i}");
        }
        assert!(pack.issame.iter().enumerate().all(|(i, &s)| s == (i % 4 == 0)));
    }
    std::fs::remove_dir_all(&dir).ok();
}
