//! Faults: `.fbs` corruption named (not silently cut), torn tails recovered and
//! reported, explicit repair, atomic writes and output sets under injected
//! write failures (and a real full disk: a 64 KiB tmpfs, where mounting is allowed).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use facebench_core::atomic::{self, OutputSet, MANIFEST};
use facebench_core::store::{self, AppendStore, StoreMeta};
use facebench_core::Embeddings;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn meta() -> StoreMeta {
    StoreMeta { model: "m".into(), weights_sha256: "00".into(), preprocessing: "p".into(), dim: 3 }
}

const RECORD: usize = 4 + 2 + 12 + 4;

/// A store of `n` rows with keys `k0..k9` (2-byte keys, so every record is RECORD bytes),
/// appended in batches of 4; returns its path and the header length.
fn store_of(dir: &Path, n: usize) -> (PathBuf, usize) {
    let p = dir.join("s.fbs");
    let _ = fs::remove_file(&p);
    let mut s = AppendStore::create_or_open(&p, &meta()).unwrap();
    let rows: Vec<(String, Vec<f32>)> = (0..n).map(|i| (format!("k{i}"), vec![i as f32, 1.0, -1.0])).collect();
    for batch in rows.chunks(4) {
        s.append(batch).unwrap();
    }
    let header = fs::read(&p).unwrap().len() - n * RECORD;
    (p, header)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn corruption_before_the_tail_is_named_and_changes_nothing() {
    let dir = scratch("corrupt");
    let (p, header) = store_of(&dir, 10);
    let good = fs::read(&p).unwrap();
    // (what is damaged, the byte changed, expected reason)
    let cases: [(&str, usize, u8, &str); 3] = [
        ("a value byte of row 3", header + 3 * RECORD + 8, 0x10, "CRC-32 mismatch"),
        ("the CRC of row 3", header + 4 * RECORD - 1, 0xff, "CRC-32 mismatch"),
        ("the key length of row 3", header + 3 * RECORD + 2, 0x7f, "key length"),
    ];
    for (what, at, xor, why) in cases {
        let mut bad = good.clone();
        bad[at] ^= xor;
        fs::write(&p, &bad).unwrap();
        let offset = header + 3 * RECORD;
        for err in [
            AppendStore::read(&p).unwrap_err().to_string(),
            store::read(&p, None).unwrap_err().to_string(),
            AppendStore::create_or_open(&p, &meta()).unwrap_err().to_string(),
        ] {
            assert!(err.contains("s.fbs"), "{what}: {err}");
            assert!(err.contains(&format!("byte offset {offset} (row 3;")), "{what}: {err}");
            assert!(err.contains(why) && err.contains("6 intact rows follow"), "{what}: {err}");
        }
        assert_eq!(fs::read(&p).unwrap(), bad, "{what}: reopening must not truncate intact rows");
    }
    // Repair is explicit and says what it drops; afterwards the store is whole again.
    let r = AppendStore::repair(&p).unwrap();
    assert_eq!((r.bad_offset, r.rows_kept, r.intact_rows_dropped), (Some((header + 3 * RECORD) as u64), 3, 6));
    assert_eq!(r.bytes_removed as usize, 7 * RECORD);
    assert!(r.to_string().contains("dropped 6 intact rows"), "{r}");
    let (_, e) = AppendStore::read(&p).unwrap();
    assert_eq!(e.keys(), ["k0", "k1", "k2"]);
    let s = AppendStore::create_or_open(&p, &meta()).unwrap();
    assert!(s.recovered_tail().is_none());
    drop(s);
    assert!(AppendStore::repair(&p).unwrap().bad_offset.is_none(), "an intact store is left as it is");
}

#[test]
fn a_damaged_row_among_garbage_and_intact_rows_counts_only_intact_ones() {
    let dir = scratch("garbage");
    let (p, header) = store_of(&dir, 6);
    let mut bytes = fs::read(&p).unwrap();
    // Garbage inserted between rows 1 and 2: rows 2..6 are still intact behind it.
    let at = header + 2 * RECORD;
    bytes.splice(at..at, [0xAB; 37]);
    fs::write(&p, &bytes).unwrap();
    let err = AppendStore::read(&p).unwrap_err().to_string();
    assert!(err.contains(&format!("byte offset {at} (row 2;")) && err.contains("4 intact rows follow"), "{err}");
    assert_eq!(AppendStore::repair(&p).unwrap().intact_rows_dropped, 4);
}

#[test]
fn torn_tails_are_recovered_and_reported() {
    let dir = scratch("torn");
    let (p, header) = store_of(&dir, 10);
    let good = fs::read(&p).unwrap();
    // The last batch (rows 8, 9) torn inside row 9, or a complete row 9 whose bytes never
    // reached the disk (zeros), or garbage with nothing intact after it.
    let mut zeros = good.clone();
    zeros[header + 9 * RECORD..].fill(0);
    let mut junk = good[..header + 9 * RECORD].to_vec();
    junk.extend([0x55; 50]);
    let cases: [(&str, Vec<u8>, u64, usize); 3] = [
        ("cut", good[..good.len() - 5].to_vec(), (RECORD - 5) as u64, 1),
        ("zeros", zeros, RECORD as u64, 1),
        ("junk", junk, 50, 1),
    ];
    for (what, bytes, dropped, rows) in cases {
        fs::write(&p, &bytes).unwrap();
        let (_, e) = AppendStore::read(&p).unwrap();
        assert_eq!(e.len(), 9, "{what}: readers ignore a torn tail");
        let s = AppendStore::create_or_open(&p, &meta()).unwrap();
        let t = s.recovered_tail().expect("reported");
        assert_eq!((t.bytes, t.rows, t.rows_kept), (dropped, rows, 9), "{what}");
        let line = t.to_string();
        assert!(line.contains("s.fbs") && line.contains(&format!("{dropped} bytes")), "{line}");
        assert_eq!(s.len(), 9);
    }
    // A tail torn across several records of one batch.
    let (p, header) = store_of(&dir, 8);
    let full = fs::read(&p).unwrap();
    fs::write(&p, &full[..header + 4 * RECORD + RECORD / 2]).unwrap();
    let s = AppendStore::create_or_open(&p, &meta()).unwrap();
    assert_eq!((s.len(), s.recovered_tail().unwrap().rows), (4, 1));
}

#[test]
fn atomic_file_commits_or_leaves_the_old_file() {
    let dir = scratch("atomic");
    let p = dir.join("results.json");
    atomic::write(&p, b"{\"old\":1}").unwrap();
    // An injected failure half way: the writer errors, the file is dropped uncommitted.
    let mut f = atomic::create(&p).unwrap();
    f.write_all(b"{\"new\":").unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"{\"old\":1}");
    assert_eq!(files_in(&dir), ["results.json"], "no temporary file is left");
    let mut f = atomic::create(&p).unwrap();
    f.write_all(b"{\"new\":2}").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"{\"old\":1}", "nothing visible before commit");
    f.commit().unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"{\"new\":2}");
    assert_eq!(files_in(&dir), ["results.json"]);
}

/// Writes one set of outputs; fails after `fail_after` files when given (an injected fault).
fn write_set(target: &Path, tag: &str, names: &[&str], fail_after: Option<usize>) -> Result<(), String> {
    let set = OutputSet::new(target).map_err(|e| e.to_string())?;
    for (i, name) in names.iter().enumerate() {
        if fail_after == Some(i) {
            return Err(format!("injected failure before {name}"));
        }
        set.write(name, format!("{tag} {name}").as_bytes()).map_err(|e| e.to_string())?;
    }
    set.commit().map_err(|e| e.to_string())
}

#[test]
fn output_set_is_all_or_nothing() {
    let dir = scratch("set");
    let out = dir.join("lfw");
    // A failing first run leaves nothing at all.
    assert!(write_set(&out, "v0", &["results.json", "scores.csv"], Some(1)).is_err());
    assert!(!out.exists());
    assert_eq!(files_in(&dir), Vec::<String>::new(), "the staging folder is removed");
    write_set(&out, "v1", &["results.json", "scores.csv", "report.md", "figures/roc.png"], None).unwrap();
    fs::write(out.join("notes.txt"), "mine").unwrap();
    // A failing second run leaves the first run's complete set.
    assert!(write_set(&out, "v2", &["results.json", "scores.csv", "report.md"], Some(2)).is_err());
    for name in ["results.json", "scores.csv", "report.md", "figures/roc.png"] {
        assert_eq!(fs::read_to_string(out.join(name)).unwrap(), format!("v1 {name}"), "{name}");
    }
    assert_eq!(files_in(&dir), ["lfw"]);
    // A successful run replaces the set: the old figure it no longer writes goes, a file
    // the sets never wrote stays.
    write_set(&out, "v3", &["results.json", "scores.csv", "report.md"], None).unwrap();
    assert_eq!(fs::read_to_string(out.join("results.json")).unwrap(), "v3 results.json");
    assert!(!out.join("figures/roc.png").exists());
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    let manifest = fs::read_to_string(out.join(MANIFEST)).unwrap();
    assert_eq!(manifest, "report.md\nresults.json\nscores.csv\n");
    // Names that would leave the folder are refused.
    let set = OutputSet::new(&out).unwrap();
    assert!(set.write("../escape", b"x").is_err() && set.write("/etc/x", b"x").is_err());
}

#[test]
fn parts_of_one_folder_replace_only_their_own_files() {
    let dir = scratch("parts");
    let out = dir.join("lmcl");
    let commit = |part: &str, names: &[&str], v: &str| {
        let set = OutputSet::part(&out, part).unwrap();
        for n in names {
            fs::write(set.dir().join(n), format!("{v} {n}")).unwrap();
        }
        set.commit().unwrap();
    };
    commit("toy", &["toy.md", "toy.png"], "v1");
    commit("ablation", &["ablation.md"], "v1");
    commit("toy", &["toy.md"], "v2");
    assert_eq!(fs::read_to_string(out.join("toy.md")).unwrap(), "v2 toy.md");
    assert!(!out.join("toy.png").exists(), "the toy part's old file goes");
    assert_eq!(fs::read_to_string(out.join("ablation.md")).unwrap(), "v1 ablation.md", "another part's stays");
    assert!(OutputSet::part(&out, "../x").is_err());
    let set = OutputSet::new(&out).unwrap();
    assert!(set.write(&format!("{MANIFEST}.toy"), b"x").is_err(), "a manifest name is not an output");
}

/// A 64 KiB tmpfs for a real disk-full fault, unmounted on drop; None where mounting is
/// not allowed (not root), and the test then checks nothing more.
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> Option<TinyDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_the_previous_store_and_outputs() {
    let dir = scratch("full");
    let Some(_disk) = TinyDisk::mount(&dir) else {
        eprintln!("cannot mount a tmpfs here (not root): disk-full case covered by the injected faults only");
        return;
    };
    let small = Embeddings::from_rows(vec!["a".into(), "b".into()], vec![1.0, 2.0, 3.0, 4.0], 2).unwrap();
    let p = dir.join("e.npy");
    store::write(&p, &small).unwrap();
    let big_keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let big = Embeddings::from_rows(big_keys, vec![0.5; 200 * 128], 128).unwrap();
    for name in ["e.npy", "e.csv", "e.safetensors"] {
        let err = store::write(&dir.join(name), &big).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("No space left"), "{err}");
    }
    assert_eq!(store::read(&p, None).unwrap(), small, "the previous .npy and its keys are intact");
    assert_eq!(files_in(&dir), ["e.keys", "e.npy"], "no partial or temporary file is left");

    let out = dir.join("report");
    write_set(&out, "v1", &["results.json", "report.md"], None).unwrap();
    let set = OutputSet::new(&out).unwrap();
    set.write("results.json", b"{}").unwrap();
    assert!(set.write("pairs_scores.csv", &vec![b'x'; 100_000]).is_err());
    drop(set);
    assert_eq!(fs::read_to_string(out.join("results.json")).unwrap(), "v1 results.json");
    assert_eq!(files_in(&dir), ["e.keys", "e.npy", "report"]);
}

#[test]
fn missing_keys_are_diagnosed() {
    let wanted: Vec<String> = (0..7701).map(|i| format!("P{}/P{}_{:04}.jpg", i % 50, i % 50, i)).collect();
    let with = |keys: Vec<String>| {
        let n = keys.len();
        Embeddings::from_rows(keys, vec![1.0; n], 1).unwrap()
    };
    let all = with(wanted.clone());
    assert_eq!(store::diagnose_keys(&all, &wanted), None);
    let msg = store::diagnose_keys(&Embeddings::new(4), &wanted).unwrap();
    assert_eq!(msg, "0 of 7,701 keys found; the store is empty");
    let abs = with(wanted.iter().map(|k| format!("/data/lfw/{k}")).collect());
    let msg = store::diagnose_keys(&abs, &wanted).unwrap();
    assert!(msg.starts_with("0 of 7,701 keys found; the store's keys look absolute"), "{msg}");
    assert!(msg.ends_with("they match after removing \"/data/lfw/\""), "{msg}");
    let dot = with(wanted.iter().map(|k| format!("./{k}")).collect());
    assert!(store::diagnose_keys(&dot, &wanted).unwrap().contains("start with \"./\""));
    let back = with(wanted.iter().map(|k| k.replace('/', "\\")).collect());
    let msg = store::diagnose_keys(&back, &wanted).unwrap();
    assert!(msg.contains("use backslashes") && !msg.contains("removing"), "{msg}");
    let some = with(wanted[..100].to_vec());
    let msg = store::diagnose_keys(&some, &wanted).unwrap();
    assert!(msg.starts_with("100 of 7,701 keys found; first missing \"P0/P0_0100.jpg\""), "{msg}");
}

#[test]
fn a_repeated_record_is_refused_by_reopening_as_by_reading() {
    let dir = scratch("repeat");
    let (p, header) = store_of(&dir, 4);
    let mut bytes = fs::read(&p).unwrap();
    let row1 = bytes[header + RECORD..header + 2 * RECORD].to_vec();
    bytes.extend(row1);
    fs::write(&p, &bytes).unwrap();
    let err = AppendStore::read(&p).unwrap_err().to_string();
    assert!(err.contains("s.fbs") && err.contains("duplicate key \"k1\""), "{err}");
    let err = AppendStore::create_or_open(&p, &meta()).unwrap_err().to_string();
    assert!(err.contains("s.fbs") && err.contains("duplicate key \"k1\" at row 4"), "{err}");
}
