//! Detection + landmarks speed on LFW images (250x250), the CPU kernels against candle's own
//! ops (the path CUDA takes, here on the CPU) in the same run, plus CPU time per layer kind.
//!   cargo run --release -p facebench-detect --example speed -- [N] [models dir] [lfw root]
//! (`FACEBENCH_SPEED_FUSED_ONLY=1`: CPU kernels only, for an external profiler.)
//!
//! Rates are measured as in `align` (batches of 8, images of a batch in parallel) over the
//! preloaded images, in three rounds; the best round is reported. Candle's ops run once, on
//! the first 8 images (they are an order of magnitude slower). CPU seconds (getrusage, all threads) are steadier than wall time on a machine
//! shared with other jobs: "img/s at full load" is cores / CPU seconds per image, the rate with
//! every core busy on this work. Then the end-to-end `align_images` rate (decode included) with
//! each JPEG decoder, and the per-layer profile of both kernel sets.
use std::time::Instant;

use facebench_detect::bench::{cpu_seconds, profile};
use facebench_detect::{Detector, Face};
use facebench_image::Decoder;
use image::RgbImage;

fn run(det: &Detector, images: &[RgbImage]) -> (f64, f64, Vec<Vec<Face>>) {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut faces = Vec::new();
    for chunk in images.chunks(8) {
        faces.extend(det.detect_batch(&chunk.iter().collect::<Vec<_>>()).unwrap());
    }
    (cpu_seconds() - c0, t0.elapsed().as_secs_f64(), faces)
}

fn max_diff(a: &[Vec<Face>], b: &[Vec<Face>]) -> f32 {
    let mut d = 0f32;
    for (fa, fb) in a.iter().zip(b) {
        assert_eq!(fa.len(), fb.len(), "different numbers of faces");
        for (x, y) in fa.iter().zip(fb) {
            for (p, q) in x.bbox.iter().zip(&y.bbox) {
                d = d.max((p - q).abs());
            }
            for (p, q) in x.landmarks68.iter().flatten().zip(y.landmarks68.iter().flatten()) {
                d = d.max((p - q).abs());
            }
        }
    }
    d
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().expect("N")).unwrap_or(64);
    let models = args.get(2).cloned().unwrap_or_else(|| "models".into());
    let root =
        std::path::PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "../shared/data/lfw/lfw-deepfunneled".into()));
    let mut people: Vec<_> =
        std::fs::read_dir(&root).expect("lfw root").map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    people.sort();
    let mut keys = Vec::new();
    'o: for p in people {
        let mut files: Vec<_> =
            std::fs::read_dir(root.join(&p)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        for f in files {
            keys.push(format!("{p}/{f}"));
            if keys.len() >= n {
                break 'o;
            }
        }
    }
    let cores = rayon::current_num_threads() as f64;
    let det = Detector::load(&models, &candle_core::Device::Cpu).expect("weights (make models)");
    let images: Vec<RgbImage> = keys.iter().map(|k| facebench_image::decode_file(root.join(k)).unwrap()).collect();
    run(&det, &images[..8.min(images.len())]); // warm-up

    if std::env::var_os("FACEBENCH_SPEED_FUSED_ONLY").is_some() {
        let (cpu, _, _) = run(&det, &images);
        println!("fused kernels: {:.1} ms CPU per image", 1e3 * cpu / images.len() as f64);
        return;
    }
    let mut best = (f64::MAX, f64::MAX);
    let mut fused = Vec::new();
    for _round in 0..3 {
        let (cpu, wall, faces) = run(&det, &images);
        best = (best.0.min(cpu), best.1.min(wall));
        fused = faces;
    }
    let few = &images[..8.min(images.len())];
    let (candle_cpu, candle_wall, candle) = facebench_nn::with_candle_ops(|| run(&det, few));
    let ni = images.len() as f64;
    let rows = [
        ("CPU kernels", best.0 / ni, best.1 / ni),
        ("candle ops", candle_cpu / few.len() as f64, candle_wall / few.len() as f64),
    ];
    for (name, cpu, wall) in rows {
        println!(
            "{name:>12}: {:.1} ms CPU per image = {:.1} img/s at full load ({cores} threads); best wall {:.1} img/s",
            1e3 * cpu,
            cores / cpu,
            1.0 / wall
        );
    }
    println!(
        "kernels / candle: {:.2}x by CPU time, {:.2}x by wall time; outputs differ by at most {:.2e} px",
        rows[1].1 / rows[0].1,
        rows[1].2 / rows[0].2,
        max_diff(&fused[..few.len()], &candle)
    );

    for decoder in [Decoder::Image, Decoder::JpegJs] {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let s = facebench_detect::align_images_with(&root, &keys, &det, decoder, |_| {}, |_| {}).unwrap();
        let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
        println!(
            "align_images ({decoder} decoder): {} images, {:.1} ms CPU per image = {:.1} img/s at full load; wall {:.1} img/s; {} faces, {} fallbacks",
            s.images,
            1e3 * cpu / s.images as f64,
            cores * s.images as f64 / cpu,
            s.images as f64 / wall,
            s.faces,
            s.fallbacks.len()
        );
    }

    let sample: Vec<&RgbImage> = images.iter().take(16).collect();
    let rows = profile(&det, &sample).unwrap();
    println!("per layer kind, {} images one at a time (ms per image):", sample.len());
    for r in rows {
        if r.calls > 0 {
            println!(
                "  {:<26} {:>7.2} CPU {:>7.2} wall  ({} calls)",
                r.kind,
                1e3 * r.cpu_s / sample.len() as f64,
                1e3 * r.wall_s / sample.len() as f64,
                r.calls
            );
        }
    }
}
