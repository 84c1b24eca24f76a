//! Sizes are checked against the image before anything is allocated: a typo such as
//! `centre:100000` used to abort the process with a 120 GB allocation.

use facebench_image::{warp_similarity, Crop, Error, FaceAnnotation, Preprocess, ResizeMode, RgbImage, Similarity};

fn spec(w: u32, h: u32, crop: Crop) -> Preprocess {
    Preprocess { width: w, height: h, crop, resize: ResizeMode::Area, round: true }
}

fn photo() -> RgbImage {
    RgbImage::from_pixel(250, 250, image::Rgb([9, 9, 9]))
}

#[test]
fn a_centre_crop_far_larger_than_the_image_is_refused() {
    let crop: Crop = "centre:100000".parse().unwrap();
    let err = spec(112, 112, crop).apply(&photo(), &FaceAnnotation::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::BadSpec(_)), "{msg}");
    assert!(msg.contains("centre crop side 100000") && msg.contains("250x250") && msg.contains("1000 pixels"), "{msg}");
    // Padding a little is still allowed: up to 4x the longer side.
    let ok = spec(8, 8, Crop::Centre { side: Some(1000) }).apply(&photo(), &FaceAnnotation::default()).unwrap();
    assert_eq!((ok.width(), ok.height()), (8, 8));
}

#[test]
fn a_face_box_far_larger_than_the_image_is_refused() {
    let face = |b: [f64; 4]| FaceAnnotation { bbox: Some(b), ..Default::default() };
    let crop = Crop::FaceBox { margin: 1e9, square: false, border: Default::default() };
    let err = spec(112, 112, crop).apply(&photo(), &face([10.0, 10.0, 50.0, 50.0])).unwrap_err();
    assert!(matches!(err, Error::BadAnnotation(_)) && err.to_string().contains("250x250"), "{err}");
    // A box so large its edges overflow i64 is an error too, not an overflow.
    let crop = Crop::FaceBox { margin: 0.0, square: true, border: Default::default() };
    let err = spec(112, 112, crop).apply(&photo(), &face([0.0, 0.0, 1e300, 1e300])).unwrap_err();
    assert!(matches!(err, Error::BadAnnotation(_)), "{err}");
}

#[test]
fn empty_or_absurd_output_sizes_are_refused() {
    for (w, h) in [(0, 112), (112, 0), (100_000, 100_000), (112, 8193)] {
        let err = spec(w, h, Crop::None).apply(&photo(), &FaceAnnotation::default()).unwrap_err();
        assert!(err.to_string().contains(&format!("output size {w}x{h}")), "{err}");
    }
    let m = Similarity::estimate(&[[0.0, 0.0], [1.0, 0.0]], &[[0.0, 0.0], [1.0, 0.0]]).unwrap();
    assert!(warp_similarity(&photo(), &m, 100_000, 100_000).is_err());
    assert!(warp_similarity(&photo(), &m, 0, 10).is_err());
}
