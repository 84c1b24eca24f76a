//! The resumable extraction pipeline on generated images with a tiny deterministic model (no
//! weights): rows follow the key list whatever the batch size and thread count, a run that
//! dies mid-way resumes from its store (torn tail included) to the same rows as one clean run,
//! and a bad image mid-batch is named, or listed and skipped with `skip_bad`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use facebench_core::store::AppendStore;
use facebench_extract::{extract, store_meta, Error, Job, Recipe, Summary};
use facebench_image::{Crop, Preprocess, ResizeMode, RgbImage};
use facebench_model::{FaceModel, InputSpec};

const SIDE: usize = 8;
const DIM: usize = 4;

/// Embeds an image as its mean R, G, B and its top-left red value: a function of that image
/// alone, so batching cannot change it. Fails every forward pass after the first `ok_passes`.
struct Tiny {
    device: Device,
    ok_passes: usize,
    passes: AtomicUsize,
}

impl Tiny {
    fn new() -> Self {
        Self::failing_after(usize::MAX)
    }
    fn failing_after(ok_passes: usize) -> Self {
        Tiny { device: Device::Cpu, ok_passes, passes: AtomicUsize::new(0) }
    }
}

impl FaceModel for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn input_spec(&self) -> InputSpec {
        InputSpec::rgb_255(SIDE, SIDE)
    }
    fn embedding_dim(&self) -> usize {
        DIM
    }
    fn weights_sha256(&self) -> &str {
        "0000000000000000000000000000000000000000000000000000000000000000"
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn forward(&self, batch: &Tensor) -> facebench_model::Result<Tensor> {
        if self.passes.fetch_add(1, Ordering::SeqCst) >= self.ok_passes {
            return Err(facebench_model::Error::Device("simulated crash".into()));
        }
        let n = batch.dim(0)?;
        let px = batch.flatten_all()?.to_vec1::<f32>()?;
        let per = SIDE * SIDE * 3;
        let mut out = Vec::with_capacity(n * DIM);
        for img in px.chunks(per) {
            for c in 0..3 {
                out.push(img.iter().skip(c).step_by(3).sum::<f32>() / (SIDE * SIDE) as f32);
            }
            out.push(img[0]);
        }
        Ok(Tensor::from_vec(out, (n, DIM), &self.device)?)
    }
}

fn recipe() -> Recipe {
    Recipe {
        preprocess: Preprocess {
            width: SIDE as u32,
            height: SIDE as u32,
            crop: Crop::None,
            resize: ResizeMode::Area,
            round: false,
        },
        uses_alignment: false,
    }
}

/// `<dir>/id<i % 3>/img<i>.png`, 8x8, every image different; returns the keys in order.
fn images(dir: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = format!("id{}/img{i:02}.png", i % 3);
            let path = dir.join(&key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            RgbImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
                let v = (i * 37 + (x as usize) * 11 + (y as usize) * 5) % 256;
                image::Rgb([v as u8, (255 - v) as u8, (i * 20 % 256) as u8])
            })
            .save(&path)
            .unwrap();
            key
        })
        .collect()
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("facebench-extract-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Extracts `keys` into the store at `out` (created or resumed).
fn run(
    model: &dyn FaceModel,
    root: &Path,
    keys: &[String],
    batch: usize,
    skip_bad: bool,
    out: &Path,
) -> Result<Summary, Error> {
    let recipe = recipe();
    let job = Job { model, recipe: &recipe, root, batch, flip: false, skip_bad };
    let mut store = AppendStore::create_or_open(out, &store_meta(&job, false))?;
    extract(&job, keys, &HashMap::new(), &mut store, None, &|_| {})
}

/// `(keys, rows)` of a store, in stored order.
fn rows(out: &Path) -> (Vec<String>, Vec<f32>) {
    let (_, e) = AppendStore::read(out).unwrap();
    (e.keys().to_vec(), e.data().to_vec())
}

#[test]
fn rows_follow_the_key_list_for_any_batch_size_and_thread_count() {
    let dir = tmp("order");
    let keys = images(&dir.join("img"), 13);
    let reference = {
        let out = dir.join("ref.fbs");
        run(&Tiny::new(), &dir.join("img"), &keys, 1, false, &out).unwrap();
        rows(&out)
    };
    assert_eq!(reference.0, keys);
    assert_eq!(reference.1.len(), 13 * DIM);
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for batch in [2, 5, 13, 64] {
            let out = dir.join(format!("b{batch}-t{threads}.fbs"));
            let s = pool.install(|| run(&Tiny::new(), &dir.join("img"), &keys, batch, false, &out)).unwrap();
            assert_eq!((s.computed, s.already_stored), (13, 0));
            assert_eq!(rows(&out), reference, "batch {batch}, {threads} threads");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_crashed_run_resumes_to_the_rows_of_a_clean_run() {
    let dir = tmp("resume");
    let root = dir.join("img");
    let keys = images(&root, 11);
    let clean = dir.join("clean.fbs");
    run(&Tiny::new(), &root, &keys, 3, false, &clean).unwrap();

    // The model dies in its third batch: two batches (6 rows) are stored.
    let out = dir.join("crashed.fbs");
    let e = run(&Tiny::failing_after(2), &root, &keys, 3, false, &out).unwrap_err();
    assert!(e.to_string().contains("simulated crash"), "{e}");
    assert_eq!(rows(&out).0, keys[..6]);
    // ... and the process died while writing a seventh record: a torn tail.
    let mut bytes = std::fs::read(&out).unwrap();
    let tail = bytes[bytes.len() - 20..].to_vec();
    bytes.extend_from_slice(&tail);
    std::fs::write(&out, &bytes).unwrap();

    let recipe = recipe();
    let model = Tiny::new();
    let job = Job { model: &model, recipe: &recipe, root: &root, batch: 3, flip: false, skip_bad: false };
    let mut store = AppendStore::create_or_open(&out, &store_meta(&job, false)).unwrap();
    assert_eq!((store.len(), store.dropped_tail_bytes()), (6, 20));
    let s = extract(&job, &keys, &HashMap::new(), &mut store, None, &|_| {}).unwrap();
    assert_eq!((s.already_stored, s.computed), (6, 5));
    drop(store);
    assert_eq!(rows(&out), rows(&clean));
    // A third run has nothing left to do.
    let s = run(&Tiny::failing_after(0), &root, &keys, 3, false, &out).unwrap();
    assert_eq!((s.already_stored, s.computed), (11, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_image_mid_batch_is_named_or_skipped() {
    let dir = tmp("bad");
    let root = dir.join("img");
    let keys = images(&root, 9);
    let bad = &keys[4]; // in the middle of the second batch of 3
    std::fs::write(root.join(bad), b"not an image").unwrap();

    let out = dir.join("strict.fbs");
    let e = run(&Tiny::new(), &root, &keys, 3, false, &out).unwrap_err().to_string();
    assert!(e.contains(bad.as_str()), "{e}");
    assert_eq!(rows(&out).0, keys[..3], "only the batch before the bad image is stored");

    let out = dir.join("skip.fbs");
    let s = run(&Tiny::new(), &root, &keys, 3, true, &out).unwrap();
    assert_eq!(s.bad.len(), 1);
    assert_eq!(s.bad[0].key, *bad);
    assert!(s.bad[0].error.contains(bad.as_str()), "{}", s.bad[0].error);
    assert_eq!(s.computed, 8);
    let good: Vec<String> = keys.iter().filter(|k| *k != bad).cloned().collect();
    let (stored, data) = rows(&out);
    assert_eq!(stored, good);
    // the others' rows are those of a run without the bad image
    let clean = dir.join("clean.fbs");
    run(&Tiny::new(), &root, &good, 3, false, &clean).unwrap();
    assert_eq!(rows(&clean).1, data);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batch_zero_is_refused_before_any_work() {
    let dir = tmp("batch0");
    let root = dir.join("img");
    let keys = images(&root, 3);
    let out = dir.join("b0.fbs");
    let e = run(&Tiny::failing_after(0), &root, &keys, 0, false, &out).unwrap_err().to_string();
    assert!(e.contains("batch size must be at least 1"), "{e}");
    assert!(rows(&out).0.is_empty(), "nothing is stored");
    std::fs::remove_dir_all(&dir).unwrap();
}
