//! The fused CPU kernels against the plain-candle path (what CUDA runs, here on the CPU) on
//! real photos: the same faces, boxes and landmarks.

mod common;

use facebench_detect::Face;

#[test]
fn fused_kernels_detect_as_the_candle_ops_path() {
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
    let run = |candle: bool| -> Vec<Vec<Face>> {
        facebench_nn::with_candle_ops_if(candle, || refs.chunks(4).flat_map(|c| det.detect_batch(c).unwrap()).collect())
    };
    let (base, fused) = (run(true), run(false));
    let mut worst = 0f32;
    let mut faces = 0;
    for (i, (b, f)) in base.iter().zip(&fused).enumerate() {
        assert_eq!(b.len(), f.len(), "image {i}: {} faces (candle) vs {} (fused)", b.len(), f.len());
        for (x, y) in b.iter().zip(f) {
            faces += 1;
            assert!((x.score - y.score).abs() <= 1e-4, "image {i}: score {} vs {}", x.score, y.score);
            let pts =
                x.bbox.iter().zip(&y.bbox).chain(x.landmarks68.iter().flatten().zip(y.landmarks68.iter().flatten()));
            worst = pts.fold(worst, |w, (p, q)| w.max((p - q).abs()));
        }
    }
    eprintln!("{faces} faces; fused kernels vs candle ops differ by at most {worst:e} px");
    assert!(faces >= 20, "{faces} faces");
    assert!(worst <= 1e-3, "boxes/landmarks differ by {worst} px");
}
