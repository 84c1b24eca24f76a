//! Diagnostic: per-face errors against the reference, with our boxes and with the reference boxes.
use facebench_detect::{DetectOptions, Detector};
fn main() {
    let det = Detector::load("models", &candle_core::Device::Cpu).unwrap().with_options(DetectOptions { min_confidence: 0.5, max_results: 20 });
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("../shared/reference/inputs.json").unwrap()).unwrap();
    for inp in json["inputs"].as_array().unwrap() {
        let id = inp["id"].as_str().unwrap();
        if !id.ends_with("_arc112") { continue; }
        let sample = inp["sample"].as_str().unwrap();
        let img = image::open(format!("models/face-api/demo/{sample}")).unwrap().to_rgb8();
        let img = match std::env::var("RAW_DIR") {
            Ok(d) => image::RgbImage::from_raw(img.width(), img.height(), std::fs::read(format!("{d}/{}", sample.replace(".jpg", ".rgb"))).unwrap()).unwrap(),
            Err(_) => img,
        };
        let b = &inp["detection"]["box"];
        let rb = [b["x"].as_f64().unwrap(), b["y"].as_f64().unwrap(), b["w"].as_f64().unwrap(), b["h"].as_f64().unwrap()];
        let rl: Vec<[f64; 2]> = inp["landmarks68"].as_array().unwrap().iter().map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()]).collect();
        let faces = det.detect(&img).unwrap();
        let f = faces.iter().min_by(|a, c| {
            let d = |f: &facebench_detect::Face| (f.bbox[0] as f64 - rb[0]).abs() + (f.bbox[1] as f64 - rb[1]).abs();
            d(a).total_cmp(&d(c))
        }).unwrap();
        let err = |lm: &[[f32; 2]]| {
            let e: Vec<f64> = lm.iter().zip(&rl).map(|(p, q)| ((p[0] as f64 - q[0]).powi(2) + (p[1] as f64 - q[1]).powi(2)).sqrt()).collect();
            let (m, i) = e.iter().enumerate().fold((0.0, 0), |(m, i), (j, &v)| if v > m { (v, j) } else { (m, i) });
            (e.iter().sum::<f64>() / 68.0, m, i)
        };
        let own = err(&f.landmarks68);
        let with_ref = det.landmarks_for_box(&img, rb, 0.9).unwrap().unwrap();
        let rbox = err(&with_ref.landmarks68);
        println!("{id}: score {:.4} vs {:.4}; box {:?} vs {:?}; lm own box mean {:.3} max {:.3} @{} ; ref box mean {:.3} max {:.3} @{}",
            f.score, inp["detection"]["score"].as_f64().unwrap(), f.bbox, rb, own.0, own.1, own.2, rbox.0, rbox.1, rbox.2);
    }
}
