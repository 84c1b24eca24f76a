//! Store formats: round trips, real-numpy fixtures, corrupt inputs, crash recovery.

use std::fs;
use std::path::{Path, PathBuf};

use facebench_core::store::{self, AppendStore, Format, StoreMeta};
use facebench_core::{Embeddings, Error};

/// A fresh scratch folder per test under the target dir (no tempfile crate).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// n x d embeddings with awkward values: negative zero, tiny, huge, non-round.
fn sample(n: usize, d: usize) -> Embeddings {
    let keys = (0..n).map(|i| format!("person_{i}/img,{i}.jpg")).collect();
    let special = [-0.0f32, 1e-38, 3.4e38, -1.0 / 3.0, 0.1, 7.0];
    let data = (0..n * d)
        .map(|i| if i % 7 == 3 { special[i % special.len()] } else { (i as f32 * 0.731).sin() * 1e3 })
        .collect();
    Embeddings::from_rows(keys, data, d).unwrap()
}

fn assert_same(a: &Embeddings, b: &Embeddings) {
    assert_eq!(a.keys(), b.keys());
    assert_eq!(a.dim(), b.dim());
    let bits = |e: &Embeddings| e.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b), "values differ bit-wise");
}

fn meta(dim: usize) -> StoreMeta {
    StoreMeta {
        model: "mobilefacenet".into(),
        weights_sha256: "ab12".into(),
        preprocessing: "112x112 aligned, rgb/127.5-1".into(),
        dim,
    }
}

#[test]
fn round_trip_every_format_and_awkward_shape() {
    let dir = scratch("round_trip");
    for (n, d) in [(0, 1), (0, 3), (1, 1), (1, 513), (5, 3), (17, 513)] {
        let e = sample(n, d);
        for ext in ["npy", "csv", "safetensors"] {
            let path = dir.join(format!("e_{n}x{d}.{ext}"));
            store::write(&path, &e).unwrap();
            let back = store::read(&path, None).unwrap();
            if ext == "csv" && n == 0 {
                // No rows, no dimension to tell: documented behaviour.
                assert!(back.is_empty() && back.dim() == 0);
                continue;
            }
            assert_same(&e, &back);
        }
        let path = dir.join(format!("e_{n}x{d}.fbs"));
        let mut s = AppendStore::create_or_open(&path, &meta(d)).unwrap();
        let rows: Vec<(String, Vec<f32>)> = (0..n).map(|i| (e.keys()[i].clone(), e.row(i).to_vec())).collect();
        s.append(&rows).unwrap();
        assert_same(&e, &s.to_embeddings().unwrap());
        assert_same(&e, &store::read(&path, None).unwrap());
    }
    // No temp files are left behind.
    assert!(fs::read_dir(&dir).unwrap().all(|f| !f.unwrap().path().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn format_dispatch() {
    assert_eq!(Format::from_path(Path::new("a/b.NPY")).unwrap(), Format::Npy);
    assert_eq!(Format::from_path(Path::new("x.safetensors")).unwrap(), Format::Safetensors);
    let err = Format::from_path(Path::new("x.h5")).unwrap_err().to_string();
    assert!(err.contains("x.h5") && err.contains(".npy"), "{err}");
    let e = store::read(Path::new("x.csv"), Some(Path::new("k.keys"))).unwrap_err();
    assert!(e.to_string().contains("inline"), "{e}");
    assert!(store::write(Path::new("x.fbs"), &sample(1, 2)).is_err());
}

#[test]
fn reads_real_numpy_files() {
    let f4 = store::read(&fixture("f4_v1.npy"), None).unwrap();
    assert_eq!((f4.len(), f4.dim()), (3, 4));
    let want: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    assert_eq!(f4.data(), &want[..]);
    assert_eq!(f4.keys()[2], "id2/img_0002.jpg");
    for v in ["f4_v2.npy", "f4_v3.npy"] {
        assert_eq!(store::read(&fixture(v), None).unwrap(), f4, "{v}");
    }
    let f8 = store::read_npy(&fixture("f8_v1.npy"), None).unwrap();
    let want8 = [0.1f64, -2.5, 1e-3, 3.25, 1e30, -0.0];
    assert_eq!(f8.data(), &want8.map(|v| v as f32)[..]);
    let wide = store::read_npy(&fixture("f4_1x513.npy"), None).unwrap();
    assert_eq!((wide.len(), wide.dim(), wide.row(0)[512]), (1, 513, 1.0));
    let empty = store::read_npy(&fixture("f4_0x5.npy"), None).unwrap();
    assert_eq!((empty.len(), empty.dim()), (0, 5));
    // Keys override: any file with one key per line.
    let dir = scratch("keys_override");
    let keys = dir.join("other.txt");
    fs::write(&keys, "a\r\nb\nc\n").unwrap();
    let e = store::read(&fixture("f4_v1.npy"), Some(&keys)).unwrap();
    assert_eq!(e.keys(), ["a", "b", "c"]);
}

#[test]
fn writes_npy_byte_identical_to_numpy() {
    let dir = scratch("npy_bytes");
    for name in ["f4_v1", "f4_1x513", "f4_0x5"] {
        let e = store::read_npy(&fixture(&format!("{name}.npy")), None).unwrap();
        let out = dir.join(format!("{name}.npy"));
        store::write_npy(&out, &e).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(fixture(&format!("{name}.npy"))).unwrap(), "{name}");
        assert_eq!(fs::read(out.with_extension("keys")).unwrap(), fs::read(fixture(&format!("{name}.keys"))).unwrap());
    }
}

#[test]
fn npy_refuses_what_it_cannot_read() {
    let cases = [
        ("fortran.npy", "fortran_order"),
        ("int32.npy", "\"<i4\""),
        ("f4_1d.npy", "not 2-D"),
        ("f4_big_endian.npy", "\">f4\""),
    ];
    for (f, want) in cases {
        let err = store::read_npy(&fixture(f), None).unwrap_err().to_string();
        assert!(err.contains(f) && err.contains(want), "{f}: {err}");
    }
    let err = store::read_npy(&fixture("f4_nan.npy"), None).unwrap_err().to_string();
    assert!(err.contains("f4_nan.npy") && err.contains("row 1 (id1/img_0001.jpg)") && err.contains("NaN"), "{err}");

    let dir = scratch("npy_bad");
    let good = fs::read(fixture("f4_v1.npy")).unwrap();
    // Truncated data, trailing bytes, and a header claiming a huge shape.
    let p = dir.join("short.npy");
    fs::write(&p, &good[..good.len() - 3]).unwrap();
    let err = store::read_npy(&p, Some(&fixture("f4_v1.keys"))).unwrap_err().to_string();
    assert!(err.contains("short.npy") && err.contains("file has 173 bytes"), "{err}");
    let p = dir.join("long.npy");
    fs::write(&p, [&good[..], &[0u8; 4]].concat()).unwrap();
    assert!(store::read_npy(&p, Some(&fixture("f4_v1.keys"))).is_err());
    let p = dir.join("huge.npy");
    // Same header length (12 padding spaces give way), data unchanged.
    let header = std::str::from_utf8(&good[10..128]).unwrap();
    let header = header.replacen(&format!("(3, 4), }}{}", " ".repeat(12)), "(9999999999999, 4), }", 1);
    assert_eq!(header.len(), 118);
    fs::write(&p, [&good[..10], header.as_bytes(), &good[128..]].concat()).unwrap();
    let err = store::read_npy(&p, Some(&fixture("f4_v1.keys"))).unwrap_err().to_string();
    assert!(err.contains("huge.npy") && err.contains("9999999999999"), "{err}");
    // Key count disagreeing with the row count names the keys file.
    let k = dir.join("two.keys");
    fs::write(&k, "a\nb\n").unwrap();
    let err = store::read_npy(&fixture("f4_v1.npy"), Some(&k)).unwrap_err().to_string();
    assert!(err.contains("two.keys") && err.contains("2 keys for the 3 rows"), "{err}");
    fs::write(&k, "a\n\nb\n").unwrap();
    let err = store::read_npy(&fixture("f4_v1.npy"), Some(&k)).unwrap_err();
    assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
    // Not an npy at all.
    let p = dir.join("text.npy");
    fs::write(&p, "hello").unwrap();
    assert!(store::read_npy(&p, None).unwrap_err().to_string().contains("text.npy"));
}

#[test]
fn csv_header_and_errors_name_file_and_line() {
    let dir = scratch("csv");
    let p = dir.join("h.csv");
    fs::write(&p, "key,x0,x1\na,1,2\n\"b,c\",3e-2, -4\n").unwrap();
    let e = store::read_csv(&p).unwrap();
    assert_eq!(e.keys(), ["a", "b,c"]);
    assert_eq!(e.data(), &[1.0, 2.0, 0.03, -4.0]);

    // Keys that need CSV quoting survive a round trip.
    let keys = ["plain", "with,comma", "with \"quote\"", " padded ", "Müller/ø.jpg"];
    let e = Embeddings::from_rows(keys.map(String::from).to_vec(), vec![0.25; 10], 2).unwrap();
    let p = dir.join("keys.csv");
    store::write_csv(&p, &e).unwrap();
    assert_eq!(store::read_csv(&p).unwrap(), e);

    let cases = [
        ("a,1,2\nb,1,x\n", 2, "not a number"),
        ("a,1,2\nb,1\n", 2, "earlier lines have 2"),
        ("a,1,2\nb,1,2\nc\n", 3, "no values"),
        ("key,v\na,1\nb,NaN\n", 3, "NaN"),
        ("a,1\na,2\n", 2, "duplicate"),
    ];
    for (text, line, msg) in cases {
        let p = dir.join("bad.csv");
        fs::write(&p, text).unwrap();
        let err = store::read_csv(&p).unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with(&format!("{}:{line}:", p.display())) && s.contains(msg), "{text:?}: {s}");
    }
}

#[test]
fn nan_rows_are_named_on_write_and_read() {
    let err = Embeddings::from_rows(vec!["a".into(), "b".into()], vec![1.0, f32::NAN], 1).unwrap_err();
    assert!(err.to_string().contains("row 1 (b)"), "{err}");
    let dir = scratch("nan");
    let p = dir.join("s.fbs");
    let mut s = AppendStore::create_or_open(&p, &meta(2)).unwrap();
    let err = s.append(&[("ok".into(), vec![1.0, 2.0]), ("bad".into(), vec![f32::INFINITY, 0.0])]).unwrap_err();
    assert!(err.to_string().contains("batch row 1 (\"bad\")"), "{err}");
    assert_eq!(s.len(), 0, "a rejected batch writes nothing");
}

#[test]
fn safetensors_layout_is_standard() {
    let dir = scratch("st");
    let e = sample(3, 5);
    let p = dir.join("e.safetensors");
    store::write_safetensors(&p, &e).unwrap();
    // The crate's own full reader accepts the file and sees our layout.
    let bytes = fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("embeddings").unwrap();
    assert_eq!((t.dtype(), t.shape()), (safetensors::Dtype::F32, &[3usize, 5][..]));
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let keys: Vec<String> = serde_json::from_str(&m.metadata().as_ref().unwrap()["keys"]).unwrap();
    assert_eq!(keys, e.keys());

    // An F64 tensor written by the crate reads as f32, keys from a file.
    let vals = [0.1f64, 2.0, -3.5, 1e-300];
    let raw: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![2, 2], &raw).unwrap();
    let p64 = dir.join("f64.safetensors");
    safetensors::serialize_to_file([("embeddings", view)], &None, &p64).unwrap();
    let err = store::read(&p64, None).unwrap_err().to_string();
    assert!(err.contains("f64.safetensors") && err.contains("keys"), "{err}");
    let k = dir.join("k.txt");
    fs::write(&k, "x\ny\n").unwrap();
    let e64 = store::read(&p64, Some(&k)).unwrap();
    assert_eq!(e64.data(), &vals.map(|v| v as f32)[..]);

    // Offsets near usize::MAX are an error, not an overflow.
    let hdr = r#"{"embeddings":{"dtype":"F32","shape":[1,1],"data_offsets":[0,18446744073709551615]}}"#;
    let p = dir.join("offsets.safetensors");
    fs::write(&p, [&(hdr.len() as u64).to_le_bytes()[..], hdr.as_bytes(), &[0u8; 4]].concat()).unwrap();
    assert!(store::read(&p, Some(&k)).unwrap_err().to_string().contains("offsets.safetensors"));

    // Truncated file and wrong dtype are errors naming the file.
    let p = dir.join("cut.safetensors");
    fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
    assert!(store::read(&p, None).unwrap_err().to_string().contains("cut.safetensors"));
    let ints = [1i32, 2];
    let raw: Vec<u8> = ints.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1, 2], &raw).unwrap();
    let pi = dir.join("i32.safetensors");
    safetensors::serialize_to_file([("embeddings", view)], &None, &pi).unwrap();
    assert!(store::read(&pi, Some(&k)).unwrap_err().to_string().contains("I32"));
}

fn devkit_bytes(header: [i32; 4], values: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    b.extend_from_slice(values);
    b
}

#[test]
fn devkit_layouts_dtypes_and_corrupt_headers() {
    let dir = scratch("devkit");
    let f = [0.5f32, -1.25, 3.0];
    let p = dir.join("sub/dir/a.jpg.bin");
    store::write_devkit_feature(&p, &f).unwrap();
    let raw = fs::read(&p).unwrap();
    assert_eq!(&raw[..16], &devkit_bytes([3, 1, 4, 5], &[])[..], "InsightFace's (D, 1, 4, 5) header");
    assert_eq!(store::read_devkit_feature(&p).unwrap(), f);

    let f32b: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f64b: Vec<u8> = f.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
    let ok = [
        ("row_f32", devkit_bytes([1, 3, 12, 5], &f32b)),
        ("col_f64", devkit_bytes([3, 1, 8, 6], &f64b)),
        ("row_f64", devkit_bytes([1, 3, 24, 6], &f64b)),
    ];
    for (name, bytes) in ok {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        assert_eq!(store::read_devkit_feature(&p).unwrap(), f, "{name}");
    }
    let bad = [
        ("huge_rows", devkit_bytes([i32::MAX, 1, 4, 5], &f32b), "file has 28 bytes"),
        ("size_mismatch", devkit_bytes([4, 1, 4, 5], &f32b), "file has 28 bytes"),
        ("negative", devkit_bytes([-3, 1, 4, 5], &f32b), "negative"),
        ("cv_type", devkit_bytes([3, 1, 4, 4], &f32b), "cv_type 4"),
        ("stride", devkit_bytes([1, 3, 4, 5], &f32b), "bytes_per_row"),
        ("matrix", devkit_bytes([3, 3, 12, 5], &f32b), "matrix"),
        ("short", vec![1, 2, 3], "too short"),
    ];
    for (name, bytes, want) in bad {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        let err = store::read_devkit_feature(&p).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
    assert!(store::write_devkit_feature(&dir.join("nan.bin"), &[f32::NAN]).is_err());
}

#[test]
fn devkit_many_files_in_parallel() {
    let dir = scratch("devkit_many");
    let n = 2100; // more than one parallel block
    let paths: Vec<String> = (0..n).map(|i| format!("{}/{}/img{i}.jpg", i % 7, i % 3)).collect();
    for (i, p) in paths.iter().enumerate() {
        store::write_devkit_feature(&dir.join(format!("{p}_m.bin")), &[i as f32, 1.0, -(i as f32)]).unwrap();
    }
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let e = store::read_devkit_features(&dir, &paths, "_m.bin", |k| {
        seen.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(seen.into_inner(), n);
    assert_eq!(e.keys(), &paths[..]);
    assert_eq!(e.row(1234), &[1234.0, 1.0, -1234.0]);

    // Missing files: count and first names, no partial result.
    let mut more = paths.clone();
    more.extend((0..8).map(|i| format!("gone/x{i}.jpg")));
    let err = store::read_devkit_features(&dir, &more, "_m.bin", |_| {}).unwrap_err().to_string();
    assert!(err.contains("8 of 2108") && err.contains("gone/x0.jpg") && !err.contains("gone/x7.jpg"), "{err}");

    // One feature of another dimension names that file.
    store::write_devkit_feature(&dir.join(format!("{}_m.bin", paths[2000])), &[1.0, 2.0]).unwrap();
    let err = store::read_devkit_features(&dir, &paths, "_m.bin", |_| {}).unwrap_err().to_string();
    assert!(err.contains("img2000.jpg_m.bin") && err.contains("dimension 2"), "{err}");
}

#[test]
fn append_store_survives_a_torn_tail() {
    let dir = scratch("torn");
    let p = dir.join("new/sub/x.fbs");
    let rows = |r: std::ops::Range<usize>| -> Vec<(String, Vec<f32>)> {
        r.map(|i| (format!("k{i}"), vec![i as f32, 0.5, -2.0])).collect()
    };
    {
        let mut s = AppendStore::create_or_open(&p, &meta(3)).unwrap();
        s.append(&rows(0..4)).unwrap();
        s.append(&rows(4..6)).unwrap();
        assert!(s.contains("k5") && !s.contains("k6"));
        let err = s.append(&rows(5..7)).unwrap_err().to_string();
        assert!(err.contains("k5") && err.contains("already"), "{err}");
    }
    let full = fs::read(&p).unwrap();
    let record = 4 + 2 + 12 + 4;
    // Cut anywhere inside the last record, or flip a byte of it: 5 rows survive.
    for cut in [1, 3, 4, 10, record - 1] {
        fs::write(&p, &full[..full.len() - cut]).unwrap();
        let (_, e) = AppendStore::read(&p).unwrap();
        assert_eq!(e.len(), 5, "read-only view ignores the torn tail");
        let s = AppendStore::create_or_open(&p, &meta(3)).unwrap();
        assert_eq!((s.len(), s.dropped_tail_bytes()), (5, (record - cut) as u64));
        let t = s.recovered_tail().expect("a torn tail is reported");
        assert_eq!((t.bytes, t.rows, t.rows_kept), ((record - cut) as u64, 1, 5));
        assert_eq!(fs::metadata(&p).unwrap().len() as usize, full.len() - record, "truncated");
    }
    let mut flipped = full.clone();
    let at = flipped.len() - 6;
    flipped[at] ^= 0x40;
    fs::write(&p, &flipped).unwrap();
    let mut s = AppendStore::create_or_open(&p, &meta(3)).unwrap();
    assert_eq!(s.len(), 5);
    // Appending after recovery continues cleanly.
    s.append(&rows(5..8)).unwrap();
    let e = s.to_embeddings().unwrap();
    assert_eq!(e.len(), 8);
    assert_eq!(e.row(7), &[7.0, 0.5, -2.0]);
    assert_eq!(e.keys()[4], "k4");
}

#[test]
fn append_store_refuses_other_metadata_and_second_writer() {
    let dir = scratch("meta");
    let p = dir.join("m.fbs");
    let s = AppendStore::create_or_open(&p, &meta(4)).unwrap();
    let err = AppendStore::create_or_open(&p, &meta(4)).unwrap_err().to_string();
    assert!(err.contains("another process"), "{err}");
    drop(s);
    let mut other = meta(4);
    other.weights_sha256 = "ffff".into();
    let err = AppendStore::create_or_open(&p, &other).unwrap_err().to_string();
    assert!(err.contains("m.fbs") && err.contains("weights_sha256") && err.contains("ffff"), "{err}");
    let err = AppendStore::create_or_open(&p, &meta(5)).unwrap_err().to_string();
    assert!(err.contains("dim"), "{err}");
    let (m, e) = AppendStore::read(&p).unwrap();
    assert_eq!((m, e.len()), (meta(4), 0));
    // A file that is not a store at all.
    let q = dir.join("junk.fbs");
    fs::write(&q, "{}\n").unwrap();
    assert!(AppendStore::read(&q).unwrap_err().to_string().contains("junk.fbs"));
    // A corrupt header dimension is refused before any record buffer exists.
    let text = fs::read_to_string(&p).unwrap().replace("\"dim\":4", "\"dim\":1000000000000");
    fs::write(&q, text + "garbage").unwrap();
    let err = AppendStore::read(&q).unwrap_err().to_string();
    assert!(err.contains("junk.fbs") && err.contains("1000000000000"), "{err}");
}
