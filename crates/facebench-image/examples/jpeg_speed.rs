//! JPEG decoding speed, `image` crate vs the jpeg-js port, on LFW's 250x250 images, in the
//! same run (single thread; each decoder's best of several alternating rounds, so that other
//! load on the machine affects both alike).
//!
//! `cargo run --release -p facebench-image --example jpeg_speed [DATA_ROOT] [N_IMAGES]`

use std::time::Instant;

use facebench_image::{decode_bytes_with, Decoder};

fn main() {
    let mut args = std::env::args().skip(1);
    let data = args.next().unwrap_or_else(|| "../shared/data".to_string());
    let n: usize = args.next().map(|s| s.parse().expect("N_IMAGES")).unwrap_or(500);
    let root = std::path::Path::new(&data).join("lfw/lfw-deepfunneled");
    let mut people: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    people.sort();
    let files: Vec<Vec<u8>> = people
        .iter()
        .flat_map(|d| {
            let mut f: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
            f.sort();
            f
        })
        .take(n)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut best = [f64::INFINITY; 2];
    for _round in 0..5 {
        for (i, decoder) in [Decoder::Image, Decoder::JpegJs].into_iter().enumerate() {
            let t = Instant::now();
            for bytes in &files {
                std::hint::black_box(decode_bytes_with(bytes, "lfw", decoder).unwrap());
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    let rate = best.map(|s| files.len() as f64 / s);
    println!(
        "{} LFW images, one thread: image crate {:.0} img/s, jpeg-js port {:.0} img/s (ratio {:.2})",
        files.len(),
        rate[0],
        rate[1],
        rate[1] / rate[0]
    );
}
