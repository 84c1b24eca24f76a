//! Images/s of detection + landmarks on LFW images (250x250).
//!   cargo run --release -p facebench-detect --example speed -- [N] [models dir] [lfw root]
//! Prints the end-to-end `align_images` rate (decode included) and the best of three passes of
//! `detect_batch` over the preloaded images (the inference rate with the least interference from
//! other processes), plus the median chosen box.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().expect("N")).unwrap_or(64);
    let models = args.get(2).cloned().unwrap_or_else(|| "models".into());
    let root = std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "../shared/data/lfw/lfw-deepfunneled".into()));
    let mut people: Vec<_> = std::fs::read_dir(&root).expect("lfw root").map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    people.sort();
    let mut keys = Vec::new();
    'o: for p in people {
        let mut files: Vec<_> = std::fs::read_dir(root.join(&p)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        for f in files {
            keys.push(format!("{p}/{f}"));
            if keys.len() >= n {
                break 'o;
            }
        }
    }
    let det = facebench_detect::Detector::load(&models, &candle_core::Device::Cpu).expect("weights (make models)");
    facebench_detect::align_images(&root, &keys[..8.min(keys.len())], &det, |_| {}, |_| {}).unwrap(); // warm-up

    let t = Instant::now();
    let mut boxes = Vec::new();
    let s = facebench_detect::align_images(&root, &keys, &det, |_| {}, |r| {
        if !r.fallback {
            boxes.push(r.faces[r.chosen].bbox);
        }
    })
    .unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "align_images: {} images in {dt:.2}s = {:.2} img/s; {} faces; {} fallbacks",
        s.images,
        s.images as f64 / dt,
        s.faces,
        s.fallbacks.len()
    );

    let images: Vec<image::RgbImage> = keys.iter().map(|k| image::open(root.join(k)).unwrap().to_rgb8()).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for chunk in images.chunks(8) {
            det.detect_batch(&chunk.iter().collect::<Vec<_>>()).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("detect_batch (best of 3): {:.2} img/s", images.len() as f64 / best);
    let med = |i: usize| {
        let mut v: Vec<f32> = boxes.iter().map(|b| b[i]).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!("median chosen box: x {} y {} w {} h {}", med(0), med(1), med(2), med(3));
}
