//! The fault suite: bad inputs and damaged files given to the real binary, each checked for
//! its exit code (1, never a crash), a message naming the file, line, row or offset, and
//! that nothing partial is left behind and no stored row is lost. Kept fast: a few real LFW
//! images through `mobileface` (112x112), or small synthetic stores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use facebench_core::store::{self, AppendStore};
use facebench_core::Embeddings;
use facebench_e2e::{data_root, facebench_bin, fnv, run, scratch, SplitMix};

/// Three real LFW images (two people), relative to the LFW image root.
const KEYS: [&str; 3] = [
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit code 1 (an error, not a panic or an abort) with every one of `parts` in the message.
fn assert_fails_naming(o: &Output, parts: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit status {:?}\nstderr: {err}\nstdout: {}", o.status, stdout(o));
    for p in parts {
        assert!(err.contains(p), "message lacks {p:?}: {err}");
    }
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "exit status {:?}\nstderr: {}\nstdout: {}", o.status, stderr(o), stdout(o));
}

/// The names in `dir` (hidden temporary files included), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A list file of `keys` in `dir`.
fn list(dir: &Path, keys: &[&str]) -> PathBuf {
    let p = dir.join("list.txt");
    std::fs::write(&p, keys.iter().map(|k| format!("{k}\n")).collect::<String>()).unwrap();
    p
}

/// `facebench embed --model mobileface --align centre:112 --list LIST --out OUT EXTRA...`.
fn embed(list: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "embed",
        "--model",
        "mobileface",
        "--align",
        "centre:112",
        "--list",
        list.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Byte offset of row `row` of the `.fbs` store at `p` (a header line, then
/// `key_len u32 | key | dim x f32 | crc u32` records), read independently of the reader.
fn record_offset(p: &Path, row: usize) -> usize {
    let (meta, e) = AppendStore::read(p).unwrap();
    let bytes = std::fs::read(p).unwrap();
    let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    header + e.keys()[..row].iter().map(|k| 4 + k.len() + 4 * meta.dim + 4).sum::<usize>()
}

fn stored_keys(p: &Path) -> Vec<String> {
    AppendStore::read(p).unwrap().1.keys().to_vec()
}

#[test]
fn an_oversized_crop_is_an_error_and_leaves_no_header_only_store() {
    let dir = scratch("faults_crop");
    let l = list(&dir, &KEYS);
    let out = dir.join("big.fbs");
    let o = run(&[
        "embed",
        "--model",
        "mobileface",
        "--align",
        "centre:100000",
        "--list",
        l.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails_naming(&o, &[KEYS[0], "centre crop side 100000 is too large", "250x250"]);
    assert_eq!(files(&dir), ["list.txt"]);
}

#[test]
fn a_missing_image_is_named_and_nothing_is_stored() {
    let dir = scratch("faults_missing_image");
    let gone = "Aaron_Peirsol/Aaron_Peirsol_0099.jpg";
    let l = list(&dir, &[KEYS[0], gone, KEYS[1]]);
    let o = embed(&l, &dir.join("x.fbs"), &[]);
    assert_fails_naming(&o, &[gone, "cannot read"]);
    assert_eq!(files(&dir), ["list.txt"], "the failed first run leaves no store");
}

/// A synthetic CSV store of `keys` (rows made from each key, width 4).
fn csv_store(path: &Path, keys: &[String]) {
    let mut e = Embeddings::new(4);
    for (i, k) in keys.iter().enumerate() {
        e.push(k.clone(), &[1.0, i as f32, (k.len() % 7) as f32, 0.5]).unwrap();
    }
    store::write(path, &e).unwrap();
}

#[test]
fn a_malformed_pairs_line_is_named_and_no_report_is_written() {
    let dir = scratch("faults_malformed_pairs");
    let pairs = dir.join("pairs.txt");
    std::fs::write(&pairs, "2\t1\nA\t1\t2\nA\t1\tB\t1\nB\t1\n").unwrap();
    let csv = dir.join("emb.csv");
    csv_store(&csv, &["A/A_0001.jpg".into(), "A/A_0002.jpg".into(), "B/B_0001.jpg".into()]);
    let out = dir.join("report");
    let o = run(&[
        "eval",
        "lfw",
        "--embeddings",
        csv.to_str().unwrap(),
        "--pairs",
        pairs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails_naming(&o, &["pairs.txt:4:"]);
    assert_eq!(files(&dir), ["emb.csv", "pairs.txt"]);
}

/// `eval lfw --embeddings STORE` on the real pairs.txt; the store is what is checked.
fn eval_store(dir: &Path, store: &Path) -> Output {
    let out = dir.join("report");
    run(&["eval", "lfw", "--embeddings", store.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

#[test]
fn a_nan_row_is_named_by_file_line_and_row() {
    let dir = scratch("faults_nan");
    let csv = dir.join("emb.csv");
    std::fs::write(&csv, "A/A_0001.jpg,1,2,3\nA/A_0002.jpg,1,nan,3\nA/A_0003.jpg,1,2,2\n").unwrap();
    let o = eval_store(&dir, &csv);
    assert_fails_naming(&o, &["emb.csv:2:", "row 1", "A/A_0002.jpg", "NaN"]);
    assert!(!dir.join("report").exists());
}

#[test]
fn a_row_of_the_wrong_width_is_named_by_file_and_line() {
    let dir = scratch("faults_dim");
    let csv = dir.join("emb.csv");
    std::fs::write(&csv, "A/A_0001.jpg,1,2,3\nA/A_0002.jpg,1,2,3\nA/A_0003.jpg,1,3\n").unwrap();
    let o = eval_store(&dir, &csv);
    assert_fails_naming(&o, &["emb.csv:3:", "2 values", "3"]);
    assert!(!dir.join("report").exists());
}

#[test]
fn a_corrupted_store_is_named_left_unchanged_and_repaired_on_request() {
    let dir = scratch("faults_corrupt");
    let l = list(&dir, &KEYS);
    let out = dir.join("x.fbs");
    assert_ok(&embed(&l, &out, &["--flip"]));
    let keys = stored_keys(&out);
    assert_eq!(keys.len(), 3);

    // A flipped byte in row 1's values: row 2 after it is intact, so this is not a crash.
    let at = record_offset(&out, 1);
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[at + 4 + keys[1].len() + 10] ^= 0x40;
    std::fs::write(&out, &bytes).unwrap();
    let o = embed(&l, &out, &["--flip"]);
    assert_fails_naming(&o, &["x.fbs", &format!("byte offset {at}"), "row 1", "1 intact rows follow"]);
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "a rerun changes nothing: no truncation, no re-embedding");

    let o = run(&["repair", out.to_str().unwrap()]);
    assert_ok(&o);
    assert!(
        stdout(&o).contains(&format!("truncated at byte {at}: kept 1 rows, dropped 1 intact rows")),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), &bytes[..at]);
    let o = embed(&l, &out, &["--flip"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("2 embedded") && stdout(&o).contains("1 already stored"), "{}", stdout(&o));
    assert_eq!(stored_keys(&out).len(), 3);

    // The mirror store is repaired by naming it.
    let flip = dir.join("x.flip.fbs");
    let at = record_offset(&flip, 0);
    let mut bytes = std::fs::read(&flip).unwrap();
    bytes[at + 1] ^= 0x01;
    std::fs::write(&flip, &bytes).unwrap();
    assert_fails_naming(&embed(&l, &out, &["--flip"]), &["x.flip.fbs", &format!("byte offset {at}"), "row 0"]);
    assert_eq!(std::fs::read(&flip).unwrap(), bytes);
    let o = run(&["repair", flip.to_str().unwrap()]);
    assert_ok(&o);
    assert!(stdout(&o).contains("x.flip.fbs: truncated at byte") && stdout(&o).contains("dropped 2 intact rows"));
    assert_ok(&embed(&l, &out, &["--flip"]));
    assert_eq!(stored_keys(&flip).len(), 3);

    // On an intact store repair says so and changes nothing; a non-.fbs file is refused.
    let before = std::fs::read(&out).unwrap();
    let o = run(&["repair", out.to_str().unwrap()]);
    assert_ok(&o);
    assert!(stdout(&o).contains("intact, 3 rows, nothing to repair"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_fails_naming(&run(&["repair", l.to_str().unwrap()]), &["list.txt", "unknown embedding store extension"]);
    let npy = dir.join("x.npy");
    std::fs::write(&npy, b"").unwrap();
    assert_fails_naming(&run(&["repair", npy.to_str().unwrap()]), &["x.npy", "only .fbs stores can be repaired"]);
}

#[test]
fn a_torn_tail_is_recovered_and_reported_in_one_line() {
    let dir = scratch("faults_torn");
    let l = list(&dir, &KEYS);
    let out = dir.join("x.fbs");
    assert_ok(&embed(&l, &out, &[]));
    // The process died while writing the last record: 30 of its bytes are missing.
    let bytes = std::fs::read(&out).unwrap();
    let torn = bytes.len() - record_offset(&out, 2) - 30;
    std::fs::write(&out, &bytes[..bytes.len() - 30]).unwrap();
    let o = embed(&l, &out, &[]);
    assert_ok(&o);
    let line = format!(
        "x.fbs: recovered from an interrupted write: dropped a torn tail of {torn} bytes (1 incomplete row), kept 2 rows"
    );
    assert_eq!(stderr(&o).lines().filter(|l| l.contains("recovered from")).count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains(&line), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 embedded") && stdout(&o).contains("2 already stored"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "the same rows as the run that was not interrupted");
}

#[test]
fn an_empty_list_is_an_error_naming_it() {
    let dir = scratch("faults_empty_list");
    let l = list(&dir, &[]);
    let o = embed(&l, &dir.join("x.fbs"), &[]);
    assert_fails_naming(&o, &["list.txt", "the image list is empty"]);
    assert_eq!(files(&dir), ["list.txt"]);
}

#[test]
fn a_run_that_skips_every_image_fails_with_the_counts() {
    let dir = scratch("faults_all_skipped");
    let l = list(&dir, &KEYS);
    let out = dir.join("x.fbs");
    let o = embed(&l, &out, &["--skip-bad", "--root", "/nowhere"]);
    let skipped = dir.join("x.fbs.skipped.json");
    assert_fails_naming(&o, &["0 of 3 images embedded: all skipped, listed in", "x.fbs.skipped.json"]);
    assert_eq!(files(&dir), ["list.txt", "x.fbs.skipped.json"], "the list of skipped images, no store");
    let listed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&skipped).unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["key"], KEYS[0]);

    // A fixed rerun replaces the stale list: nothing was skipped.
    let o = embed(&l, &out, &["--skip-bad"]);
    assert_ok(&o);
    assert_eq!(std::fs::read_to_string(&skipped).unwrap().trim(), "[]");
    // One bad image of three: listed, the others stored.
    let bad = "Nobody/Nobody_0001.jpg";
    let l = list(&dir, &[KEYS[0], bad, KEYS[1]]);
    let o = embed(&l, &dir.join("y.fbs"), &["--skip-bad"]);
    assert_ok(&o);
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("y.fbs.skipped.json")).unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["key"], bad);
    assert_eq!(stored_keys(&dir.join("y.fbs")), [KEYS[0], KEYS[1]]);
    // Without --skip-bad a successful run leaves no stale list behind.
    let l = list(&dir, &KEYS[..2]);
    assert_ok(&embed(&l, &dir.join("y.fbs"), &[]));
    assert!(!dir.join("y.fbs.skipped.json").exists());
}

#[test]
fn out_npy_writes_npy_from_a_resumable_store() {
    let dir = scratch("faults_npy");
    let l = list(&dir, &KEYS[..2]);
    let out = dir.join("x.npy");
    let o = embed(&l, &out, &["--flip"]);
    assert_ok(&o);
    assert_eq!(&std::fs::read(&out).unwrap()[..6], b"\x93NUMPY", "{}", stdout(&o));
    let e = store::read(&out, None).unwrap();
    let fbs = AppendStore::read(&dir.join("x.npy.fbs")).unwrap().1;
    assert_eq!((e.keys(), e.data()), (fbs.keys(), fbs.data()));
    assert_eq!(std::fs::read_to_string(dir.join("x.keys")).unwrap(), format!("{}\n{}\n", KEYS[0], KEYS[1]));
    let flip = store::read(&dir.join("x.flip.npy"), None).unwrap();
    let flip_fbs = AppendStore::read(&dir.join("x.npy.flip.fbs")).unwrap().1;
    assert_eq!((flip.keys(), flip.data()), (flip_fbs.keys(), flip_fbs.data()));
    assert_ne!(flip.data(), e.data());

    // The store beside it resumes: a longer list embeds only the new key.
    let l = list(&dir, &KEYS);
    let o = embed(&l, &out, &["--flip"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("1 embedded") && stdout(&o).contains("2 already stored"), "{}", stdout(&o));
    assert_eq!(store::read(&out, None).unwrap().len(), 3);

    for ext in ["csv", "safetensors"] {
        let out = dir.join(format!("y.{ext}"));
        assert_ok(&embed(&l, &out, &[]));
        let e = store::read(&out, None).unwrap();
        assert_eq!(e.keys(), KEYS, "{ext}");
        assert!(dir.join(format!("y.{ext}.fbs")).exists());
    }

    // An unknown extension is refused before any work, naming the formats.
    let o = embed(&l, &dir.join("z.txt"), &[]);
    assert_fails_naming(&o, &["z.txt", ".npy, .csv, .safetensors or .fbs"]);
    assert!(files(&dir).iter().all(|f| !f.starts_with("z.") && !f.starts_with(".z")), "{:?}", files(&dir));
}

#[test]
fn out_inside_an_existing_file_is_refused_in_words() {
    let dir = scratch("faults_out_not_folder");
    let l = list(&dir, &KEYS[..1]);
    let o = embed(&l, &l.join("x.fbs"), &[]);
    assert_fails_naming(&o, &["list.txt exists and is not a folder"]);
    let o = run(&[
        "embed",
        "--model",
        "mobileface",
        "--align",
        "centre:112",
        "--list",
        l.to_str().unwrap(),
        "--format",
        "devkit",
        "--out",
        l.to_str().unwrap(),
    ]);
    assert_fails_naming(&o, &["list.txt", "exists and is not a folder"]);
    let o = embed(&l, &dir, &[]);
    assert_fails_naming(&o, &["is a folder"]);
    assert_eq!(files(&dir), ["list.txt"]);
}

#[test]
fn embed_rows_are_identical_at_1_and_3_threads() {
    let dir = scratch("faults_threads_embed");
    let l = list(&dir, &KEYS);
    let rows = |threads: &str| {
        let out = dir.join(format!("t{threads}.fbs"));
        assert_ok(&embed(&l, &out, &["--threads", threads, "--batch", "2", "--flip"]));
        let read = |p: &Path| {
            let e = AppendStore::read(p).unwrap().1;
            (e.keys().to_vec(), e.data().to_vec())
        };
        (read(&out), read(&dir.join(format!("t{threads}.flip.fbs"))))
    };
    let one = rows("1");
    assert_eq!(one.0 .0, KEYS);
    // f32 rows compared exactly: a reduction split by thread count would change low bits.
    assert!(one == rows("3"), "rows differ between --threads 1 and --threads 3");
}

/// Identity centre + per-image noise, as tests/lfw_eval.rs builds its stores.
fn synthetic_store(keys: &[String], dim: usize) -> Embeddings {
    let mut e = Embeddings::new(dim);
    for key in keys {
        let mut id = SplitMix(fnv(key.split('/').next().unwrap()));
        let mut img = SplitMix(fnv(key));
        let row: Vec<f32> = (0..dim).map(|_| (id.normal() + 0.9 * img.normal()) as f32).collect();
        e.push(key.clone(), &row).unwrap();
    }
    e
}

/// Every image key pairs.txt names, in first-seen order, read with a plain split.
fn pairs_txt_keys() -> Vec<String> {
    let text = std::fs::read_to_string(data_root().join("lfw/pairs.txt")).unwrap();
    let key = |n: &str, i: &str| format!("{n}/{n}_{:04}.jpg", i.parse::<u32>().unwrap());
    let mut keys = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        let pair = match f.len() {
            3 => [key(f[0], f[1]), key(f[0], f[2])],
            4 => [key(f[0], f[1]), key(f[2], f[3])],
            _ => panic!("bad line {l}"),
        };
        for k in pair {
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
    }
    keys
}

#[test]
fn eval_lfw_results_are_identical_at_1_and_3_threads() {
    let dir = scratch("faults_threads_eval");
    let npy = dir.join("emb.npy");
    store::write(&npy, &synthetic_store(&pairs_txt_keys(), 16)).unwrap();
    let results = |threads: &str| {
        let out = dir.join(format!("t{threads}"));
        let o = run(&[
            "eval",
            "lfw",
            "--embeddings",
            npy.to_str().unwrap(),
            "--protocol",
            "insightface,sphereface,facenet,exact",
            "--threads",
            threads,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_ok(&o);
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        // Scoring ran in a pool of --threads workers, as provenance records.
        assert_eq!(doc["provenance"]["threads"], threads, "{}", doc["provenance"]);
        let obj = doc.as_object_mut().unwrap();
        for volatile in ["timings", "provenance"] {
            assert!(obj.remove(volatile).is_some(), "results.json has no {volatile}");
        }
        (doc, std::fs::read(out.join("pairs_scores.csv")).unwrap())
    };
    let (one, one_csv) = results("1");
    let (three, three_csv) = results("3");
    assert_eq!(one, three, "results.json differs between --threads 1 and --threads 3");
    assert!(one_csv == three_csv, "pairs_scores.csv differs between --threads 1 and --threads 3");
}

#[test]
fn embed_killed_mid_run_resumes_to_the_rows_of_an_uninterrupted_run() {
    let dir = scratch("faults_kill9");
    let keys = pairs_txt_keys();
    let keys: Vec<&str> = keys[..200].iter().map(String::as_str).collect();
    let l = list(&dir, &keys);
    let args = |out: &Path| {
        let mut a: Vec<String> =
            ["embed", "--model", "mobileface", "--align", "centre:112", "--batch", "4"].map(String::from).to_vec();
        a.extend(["--threads", "1", "--list", l.to_str().unwrap(), "--out", out.to_str().unwrap()].map(String::from));
        a
    };
    let whole = dir.join("whole.fbs");
    assert_ok(&run(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>()));

    // SIGKILL once the first batch is stored: rows are appended a batch at a time, so the
    // 196 images left take many batches (about 0.5 s at one thread) longer than the poll.
    let out = dir.join("killed.fbs");
    let mut child = Command::new(facebench_bin())
        .args(args(&out))
        .env("FACEBENCH_DATA", data_root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let stored = || AppendStore::read(&out).map(|(_, e)| e.len()).unwrap_or(0);
    while stored() < 4 {
        assert!(child.try_wait().unwrap().is_none(), "embed ended before its first batch was seen");
        assert!(start.elapsed() < Duration::from_secs(120), "no batch stored in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let kept = stored();
    assert!((4..keys.len()).contains(&kept), "killed after {kept} of {} rows", keys.len());

    let o = run(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert_ok(&o);
    assert!(stdout(&o).contains(&format!("{} already stored", kept)), "{}", stdout(&o));
    let read = |p: &Path| {
        let e = AppendStore::read(p).unwrap().1;
        (e.keys().to_vec(), e.data().to_vec())
    };
    assert!(read(&out) == read(&whole), "the resumed store's rows differ from the uninterrupted run's");
}

#[test]
fn a_flag_the_command_would_ignore_is_refused() {
    let dir = scratch("faults_ignored_flags");
    let l = list(&dir, &KEYS[..1]);
    let out = dir.join("x.fbs");
    let o = embed(&l, &out, &["--ending", "_a.bin"]);
    assert_fails_naming(&o, &["--ending only applies to --format devkit"]);
    let o = embed(&l, &out, &["--format", "fbs", "--ending", "_a.bin"]);
    assert_fails_naming(&o, &["--ending only applies to --format devkit"]);
    let o = embed(&l, &out, &["--alignments", l.to_str().unwrap()]);
    assert_fails_naming(&o, &["--alignments", "list.txt", "is not used", "--align centre:112"]);
    let o = run(&["pack", "bin", "--alignments", l.to_str().unwrap(), "--out", dir.join("p.bin").to_str().unwrap()]);
    assert_fails_naming(&o, &["--alignments", "list.txt", "is not used with --crop none"]);
    assert_eq!(files(&dir), ["list.txt"], "nothing written");

    // Flags of the other training source are usage errors (clap, exit 2).
    let d = dir.to_str().unwrap();
    let out = dir.join("t");
    let o = out.to_str().unwrap();
    for (args, flag) in [
        (vec!["--embeddings", d, "--classes", "3"], "--classes"),
        (vec!["--embeddings", d, "--max-per-class", "3"], "--max-per-class"),
        (vec!["--images", d, "--out-dim", "3"], "--out-dim"),
    ] {
        let r = run(&[&["train", "--out", o][..], &args].concat());
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
        assert!(stderr(&r).contains(flag) && stderr(&r).contains("cannot be used with"), "{}", stderr(&r));
    }
    assert_eq!(files(&dir), ["list.txt"], "nothing written");
}
