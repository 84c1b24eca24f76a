//! Figures are written in both formats, carry their labels, and fail loudly on empty input.

use facebench_report::plot::{cmc_plot, roc_plot, score_histogram, CmcCurve, RocCurve};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("facebench-report-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn roc_hist_cmc_in_png_and_svg() {
    let far: Vec<f64> = (0..=40).map(|i| 10f64.powf(-4.0 + i as f64 / 10.0)).collect();
    let tar: Vec<f64> = far.iter().map(|f| (1.0 - 0.2 * (-f.log10() / 4.0)).min(1.0)).collect();
    let lo: Vec<f64> = tar.iter().map(|t| t - 0.03).collect();
    let hi: Vec<f64> = tar.iter().map(|t| (t + 0.03).min(1.0)).collect();
    let tar2: Vec<f64> = tar.iter().map(|t| t * 0.95).collect();
    let stem = tmp("roc");
    roc_plot(
        &stem,
        "LFW ROC",
        &[
            RocCurve { label: "model-a".into(), colour_index: 0, far: &far, tar: &tar, band: Some((&lo, &hi)) },
            RocCurve { label: "model-b".into(), colour_index: 1, far: &far, tar: &tar2, band: None },
        ],
    )
    .unwrap();
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("model-a") && svg.contains("model-b") && svg.contains("FAR"));
    assert!(std::fs::metadata(stem.with_extension("png")).unwrap().len() > 10_000);

    let g: Vec<f64> = (0..300).map(|i| 0.5 + (i as f64 / 300.0) * 0.4).collect();
    let n: Vec<f64> = (0..300).map(|i| -0.1 + (i as f64 / 300.0) * 0.4).collect();
    let stem = tmp("scores");
    score_histogram(&stem, "scores", &g, &n, Some(0.42), "cosine").unwrap();
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("genuine") && svg.contains("threshold 0.4200"));
    assert!(score_histogram(&tmp("empty"), "x", &[], &[], None, "cosine").is_err());

    let rates = [0.8, 0.85, 0.9, 0.92, 0.95];
    let stem = tmp("cmc");
    cmc_plot(&stem, "CMC", &[CmcCurve { label: "size 1000".into(), colour_index: 0, rates: &rates }]).unwrap();
    assert!(std::fs::read_to_string(stem.with_extension("svg")).unwrap().contains("size 1000"));
}
