//! Decoding of JPEG, PNG and PGM, and the errors for unreadable, unknown and truncated files.

use std::io::Cursor;

use facebench_image::{decode_bytes, decode_file, Error, RgbImage};
use image::{ImageFormat, Rgb};

fn sample() -> RgbImage {
    RgbImage::from_fn(16, 8, |x, y| Rgb([(x * 16) as u8, (y * 30) as u8, 128]))
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("facebench-image-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn png_round_trips_exactly() {
    let img = sample();
    let p = temp_file("a.png", &encode(&img, ImageFormat::Png));
    assert_eq!(decode_file(&p).unwrap(), img);
}

#[test]
fn jpeg_decodes_close_to_source() {
    let img = sample();
    // Content decides the format, not the extension.
    let p = temp_file("not_a_png.png", &encode(&img, ImageFormat::Jpeg));
    let got = decode_file(&p).unwrap();
    assert_eq!(got.dimensions(), (16, 8));
    let mean: f64 = got.as_raw().iter().zip(img.as_raw()).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>()
        / img.as_raw().len() as f64;
    assert!(mean < 8.0, "JPEG mean error {mean}");
}

#[test]
fn pgm_grey_is_replicated_to_rgb() {
    // Binary PGM (P5), 3x2, maxval 255.
    let mut bytes = b"P5\n3 2\n255\n".to_vec();
    bytes.extend_from_slice(&[0, 50, 100, 150, 200, 255]);
    let got = decode_bytes(&bytes, "grey.pgm").unwrap();
    assert_eq!(got.dimensions(), (3, 2));
    assert_eq!(got.get_pixel(1, 0), &Rgb([50, 50, 50]));
    assert_eq!(got.get_pixel(2, 1), &Rgb([255, 255, 255]));
    // ASCII PGM (P2) with a 16-bit maxval is scaled to 8 bits.
    let got = decode_bytes(b"P2\n2 1\n1000\n0 1000\n", "ascii.pgm").unwrap();
    assert_eq!(got.as_raw(), &[0, 0, 0, 255, 255, 255]);
}

#[test]
fn missing_file_names_the_path() {
    let e = decode_file("/nonexistent/dir/face.jpg").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/dir/face.jpg"), "{e}");
}

#[test]
fn truncated_jpeg_is_an_error_naming_the_file() {
    let bytes = encode(&sample(), ImageFormat::Jpeg);
    for cut in [bytes.len() - 2, bytes.len() / 2] {
        let p = temp_file("cut.jpg", &bytes[..cut]);
        let e = decode_file(&p).unwrap_err();
        assert!(matches!(e, Error::Truncated { format: "JPEG", .. } | Error::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("cut.jpg"), "{e}");
    }
    // Bytes appended after the end marker (padding, camera trailers) are tolerated.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0, 0, 0x12, 0xFF, 0x34]);
    assert_eq!(decode_bytes(&padded, "padded.jpg").unwrap(), decode_bytes(&bytes, "x.jpg").unwrap());
}

#[test]
fn truncated_png_is_an_error_naming_the_file() {
    let bytes = encode(&sample(), ImageFormat::Png);
    for cut in [bytes.len() - 12, bytes.len() / 2, 20] {
        let e = decode_bytes(&bytes[..cut], "cut.png").unwrap_err();
        assert!(matches!(e, Error::Truncated { .. } | Error::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("cut.png"), "{e}");
    }
}

#[test]
fn unknown_content_is_an_error() {
    let e = decode_bytes(b"this is not an image at all", "notes.txt").unwrap_err();
    assert!(matches!(e, Error::Decode { .. }));
    assert!(e.to_string().contains("notes.txt"), "{e}");
    assert!(decode_bytes(&[], "empty.jpg").is_err());
}

fn data_root() -> std::path::PathBuf {
    let root = std::env::var_os("FACEBENCH_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(root.is_dir(), "data root {} not found (set FACEBENCH_DATA)", root.display());
    root
}

#[test]
fn real_orl_pgm_matches_its_raw_samples() {
    // AT&T/ORL: binary P5, 92x112, maxval 255; header "P5 92 112 255\n".
    let path = data_root().join("orl_att_faces/s1/1.pgm");
    let bytes = std::fs::read(&path).unwrap();
    let header = b"P5 92 112 255\n";
    assert!(bytes.starts_with(header), "unexpected PGM header in {}", path.display());
    let samples = &bytes[header.len()..];
    let img = decode_file(&path).unwrap();
    assert_eq!(img.dimensions(), (92, 112));
    for (px, &g) in img.pixels().zip(samples) {
        assert_eq!(px, &Rgb([g, g, g]));
    }
}

#[test]
fn real_lfw_jpeg_decodes() {
    let path = data_root().join("lfw/lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg");
    let img = decode_file(&path).unwrap();
    assert_eq!(img.dimensions(), (250, 250));
    let mean = img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64;
    assert!(mean > 20.0 && mean < 235.0, "implausible mean {mean}");
}
