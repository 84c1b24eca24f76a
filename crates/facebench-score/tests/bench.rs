//! The benchmark runs end to end at a tiny size, and its generator is reproducible.

use facebench_score::bench::{bench_score, random_unit_rows};

#[test]
fn bench_score_reports_every_measurement() {
    let r = bench_score(40, 300, 24, 3, 2).unwrap();
    assert_eq!((r.queries, r.gallery, r.dim, r.k, r.threads), (40, 300, 24, 3, 2));
    assert!(r.scoring.gflops > 0.0 && r.plain_gemm.gflops > 0.0 && r.ratio() > 0.0);
    assert!(!r.alternatives.is_empty());
    let (g, s) = r.top1_query0.expect("query 0 has a best match");
    assert!(g < 300 && s.abs() <= 1.0001, "{g} {s}");
    let text = r.to_string();
    for needle in ["(a) blocked scoring", "(b) same tiles", "(c) gemm crate", "scoring / plain GEMM rate"] {
        assert!(text.contains(needle), "report lacks {needle:?}:\n{text}");
    }
}

#[test]
fn random_unit_rows_are_unit_and_thread_independent() {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let a = one.install(|| random_unit_rows(50, 7, 9));
    let b = three.install(|| random_unit_rows(50, 7, 9));
    assert_eq!(a, b);
    assert_ne!(a, random_unit_rows(50, 7, 10));
    for row in a.chunks(7) {
        let n: f64 = row.iter().map(|&x| x as f64 * x as f64).sum();
        assert!((n - 1.0).abs() < 1e-5, "norm^2 {n}");
    }
}
