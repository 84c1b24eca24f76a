//! The fused CPU kernels against the first port's (baseline) kernels on real photos: the same
//! faces, boxes and landmarks. One test in this file on purpose: the kernel switch is
//! process-wide.

mod common;

use facebench_detect::bench::set_baseline_kernels;
use facebench_detect::Face;

#[test]
fn fused_kernels_detect_exactly_as_the_baseline_kernels() {
    let det = common::detector();
    let lfw = common::data_root().join("lfw/lfw-deepfunneled");
    let mut images: Vec<image::RgbImage> = (1..=6).map(common::demo_image).collect();
    for key in [
        "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
        "Zico/Zico_0001.jpg",
        "George_W_Bush/George_W_Bush_0001.jpg",
        "Serena_Williams/Serena_Williams_0003.jpg",
    ] {
        let p = lfw.join(key);
        images.push(facebench_image::decode_file(&p).unwrap_or_else(|e| panic!("{e}")));
    }
    let refs: Vec<&image::RgbImage> = images.iter().collect();
    let run = |baseline: bool| -> Vec<Vec<Face>> {
        set_baseline_kernels(baseline);
        let r = refs.chunks(4).flat_map(|c| det.detect_batch(c).unwrap()).collect();
        set_baseline_kernels(false);
        r
    };
    let (base, fused) = (run(true), run(false));
    let mut worst = 0f32;
    let mut faces = 0;
    for (i, (b, f)) in base.iter().zip(&fused).enumerate() {
        assert_eq!(b.len(), f.len(), "image {i}: {} faces (baseline) vs {} (fused)", b.len(), f.len());
        for (x, y) in b.iter().zip(f) {
            faces += 1;
            assert!((x.score - y.score).abs() <= 1e-6, "image {i}: score {} vs {}", x.score, y.score);
            let pts =
                x.bbox.iter().zip(&y.bbox).chain(x.landmarks68.iter().flatten().zip(y.landmarks68.iter().flatten()));
            worst = pts.fold(worst, |w, (p, q)| w.max((p - q).abs()));
        }
    }
    eprintln!("{faces} faces; fused vs baseline kernels differ by at most {worst:e} px");
    assert!(faces >= 20, "{faces} faces");
    assert!(worst <= 1e-3, "boxes/landmarks differ by {worst} px");
}
