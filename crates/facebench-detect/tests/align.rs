//! `align_images` on real LFW images: one record per key in key order, the central face, the
//! centre-box fallback for an image where face-api finds no face, and errors naming the file.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use facebench_detect::{align_images, fallback_box, AlignRecord};

fn lfw_root() -> std::path::PathBuf {
    common::data_root().join("lfw/lfw-deepfunneled")
}

#[test]
fn lfw_images_give_one_record_each_with_central_face_or_fallback() {
    let det = common::detector();
    // Aaron_Patterson_0001: face-api's detector scores no face above 0.5 (measured).
    let keys: Vec<String> = [
        "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
        "Aaron_Patterson/Aaron_Patterson_0001.jpg",
        "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let done = AtomicUsize::new(0);
    let mut records: Vec<AlignRecord> = Vec::new();
    let summary = align_images(
        &lfw_root(),
        &keys,
        &det,
        |n| {
            done.fetch_add(n, Ordering::SeqCst);
        },
        |r| records.push(r),
    )
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 3);
    assert_eq!(records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), keys);
    assert_eq!(summary.images, 3);
    assert_eq!(summary.fallbacks, vec![keys[1].clone()]);

    for r in [&records[0], &records[2]] {
        assert!(!r.fallback, "{}", r.key);
        let f = &r.faces[r.chosen];
        assert!(f.score > 0.5);
        // deep-funneled faces sit in the middle of the 250x250 image
        let [cx, cy] = f.center();
        assert!((cx - 125.0).abs() < 30.0 && (cy - 125.0).abs() < 30.0, "{}: centre ({cx}, {cy})", r.key);
        assert_eq!(f.landmarks68.len(), 68);
        // eyes above the mouth corners, left eye left of the right eye
        let p = f.points5;
        assert!(p[0][0] < p[1][0] && p[0][1] < p[3][1] && p[1][1] < p[4][1], "{}: {p:?}", r.key);
        assert_eq!(summary.faces, records[0].faces.len() + records[2].faces.len());
    }

    let fb = &records[1];
    assert!(fb.fallback && fb.chosen == 0 && fb.faces.len() == 1);
    let f = &fb.faces[0];
    assert_eq!(f.score, 0.0);
    assert_eq!(f.bbox, fallback_box(250, 250).map(|v| v as f32));
    assert_eq!(f.landmarks68.len(), 68);
    // the landmark net's points for the fallback box lie around that box
    for p in &f.landmarks68 {
        assert!(p[0] > 40.0 && p[0] < 210.0 && p[1] > 40.0 && p[1] < 230.0, "fallback landmark {p:?}");
    }
    // a cache line round-trips
    let line = serde_json::to_string(fb).unwrap();
    assert_eq!(serde_json::from_str::<AlignRecord>(&line).unwrap(), *fb);
}

#[test]
fn unreadable_images_are_errors_naming_the_file() {
    let det = common::detector();
    let keys = vec!["Nobody/Nobody_0001.jpg".to_string()];
    let e = align_images(&lfw_root(), &keys, &det, |_| {}, |_| {}).unwrap_err().to_string();
    assert!(e.contains("Nobody_0001.jpg"), "{e}");

    // a bad image in a later batch: every earlier image is still handed out first
    let mut keys: Vec<String> = (1..=4)
        .flat_map(|i| {
            [format!("Aaron_Peirsol/Aaron_Peirsol_{i:04}.jpg"), format!("Aaron_Peirsol/Aaron_Peirsol_{i:04}.jpg")]
        })
        .collect();
    keys.push("Nobody/Nobody_0002.jpg".into());
    let mut got = Vec::new();
    let e = align_images(&lfw_root(), &keys, &det, |_| {}, |r| got.push(r.key)).unwrap_err().to_string();
    assert!(e.contains("Nobody_0002.jpg"), "{e}");
    assert_eq!(got, keys[..8]);

    let dir = std::env::temp_dir().join(format!("facebench-detect-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.jpg"), b"\xFF\xD8\xFF\xE0 not a jpeg").unwrap();
    let e = align_images(&dir, &["bad.jpg".to_string()], &det, |_| {}, |_| {}).unwrap_err().to_string();
    assert!(e.contains("bad.jpg"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flat_image_has_no_face() {
    let det = common::detector();
    let img = image::RgbImage::from_pixel(300, 200, image::Rgb([128, 128, 128]));
    assert!(det.detect(&img).unwrap().is_empty());
    assert!(det.detect_batch(&[]).unwrap().is_empty());
    let s = align_images(&lfw_root(), &[], &det, |_| panic!("no progress"), |_| panic!("no record")).unwrap();
    assert_eq!(s.images, 0);
}
