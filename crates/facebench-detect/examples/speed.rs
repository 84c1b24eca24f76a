//! Images/s of detection + landmarks over LFW images (decode included), via `align_images`.
//!   cargo run --release -p facebench-detect --example speed -- [N] [models] [lfw root]
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(64);
    let models = args.get(2).cloned().unwrap_or_else(|| "models".into());
    let root = std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "../shared/data/lfw/lfw-deepfunneled".into()));
    let mut people: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    people.sort();
    let mut keys = Vec::new();
    'o: for p in people {
        let mut files: Vec<_> = std::fs::read_dir(root.join(&p)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        for f in files { keys.push(format!("{p}/{f}")); if keys.len() >= n { break 'o; } }
    }
    let device = if std::env::var("CUDA").is_ok() { candle_core::Device::new_cuda(0).unwrap() } else { candle_core::Device::Cpu };
    let det = facebench_detect::Detector::load(&models, &device).unwrap();
    // warm-up
    facebench_detect::align_images(&root, &keys[..8.min(keys.len())], &det, |_| {}, |_| {}).unwrap();
    let t = Instant::now();
    let mut boxes = Vec::new();
    let s = facebench_detect::align_images(&root, &keys, &det, |_| {}, |r| {
        if !r.fallback { let b = r.faces[r.chosen].bbox; boxes.push(b); }
    }).unwrap();
    let dt = t.elapsed().as_secs_f64();
    println!("{} images in {dt:.2}s: {:.2} img/s; faces {}; fallbacks {} {:?}", s.images, s.images as f64 / dt, s.faces, s.fallbacks.len(), &s.fallbacks[..s.fallbacks.len().min(10)]);
    let med = |i: usize| { let mut v: Vec<f32> = boxes.iter().map(|b| b[i]).collect(); v.sort_by(|a, b| a.total_cmp(b)); v.get(v.len() / 2).copied().unwrap_or(0.0) };
    println!("median chosen box: x {} y {} w {} h {}", med(0), med(1), med(2), med(3));
}
