//! The streaming one-pass evaluation equals brute force over the full score matrices, for
//! every size, several block sizes, step sizes and thread counts; ties; noise cleaning.

mod common;

use common::*;
use facebench_megaface::*;
use facebench_metrics::{tar_at_far_exact, TarAtFar as MTar};
use facebench_score::BlockConfig;

const FARS: [f64; 4] = [1e-2, 1e-3, 1e-4, 1e-5];

fn cfg(block: BlockConfig, chunk_rows: usize) -> EvalConfig {
    EvalConfig {
        dataset: "test".into(),
        max_rank: 12,
        fars: FARS.to_vec(),
        roc_bins: 64,
        block,
        chunk_rows,
        scoring: Scoring::F32,
    }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Checks one size of `res` against brute force.
fn check_size(s: &SizeResults, b: &Brute, r: usize) {
    assert_eq!(s.cmc, b.cmc, "size {}: CMC 1..{r}", s.size);
    assert_eq!(s.rank1, b.cmc[0]);
    // Full devkit curve from the brute-force counts.
    let mut c = b.counts.clone();
    c.sort_unstable();
    for (&rank, &rate) in s.cmc_curve.ranks.iter().zip(&s.cmc_curve.rates) {
        let ok = c.iter().filter(|&&x| x <= rank).count() as f64 / c.len() as f64;
        assert_eq!(rate, ok, "size {}: CMC curve at 0-based rank {rank}", s.size);
    }
    // Ranks where the rate changes, then the devkit's terminal point (N, 1).
    let rates = &s.cmc_curve.rates;
    for w in rates[..rates.len() - 1].windows(2) {
        assert!(w[0] < w[1], "curve lists only ranks where the rate changes");
    }
    assert_eq!(*s.cmc_curve.ranks.last().unwrap(), s.distractors as u64);
    assert_eq!(*s.cmc_curve.rates.last().unwrap(), 1.0);
    // Exact TAR@FAR against facebench-metrics on all scores.
    let mut sim = b.genuine.clone();
    sim.extend(&b.impostors);
    let same: Vec<bool> = (0..sim.len()).map(|i| i < b.genuine.len()).collect();
    assert_eq!(s.impostors as usize, b.impostors.len());
    for t in &s.tar_at_far {
        match (tar_at_far_exact(&sim, &same, t.far).unwrap(), &t.exact) {
            (MTar::Measured { tar, far, threshold }, TarExact::Measured { tar: t2, far: f2, threshold: th2 }) => {
                assert_eq!((tar, far), (*t2, *f2), "size {} FAR {}", s.size, t.far);
                if let Some(th2) = th2 {
                    assert_eq!(threshold, *th2 as f64);
                }
            }
            (MTar::NotMeasurable { .. }, TarExact::NotMeasurable { .. }) => {}
            (m, o) => panic!("size {} FAR {}: metrics {m:?}, streaming {o:?}", s.size, t.far),
        }
    }
    // ROC: monotone, ends at (1, 1), exact-region points reproduced by brute force.
    let roc = &s.roc;
    assert_eq!((roc.fpr.last(), roc.tpr.last()), (Some(&1.0), Some(&1.0)));
    for w in roc.fpr.windows(2) {
        assert!(w[0] < w[1]);
    }
    let mut imp = b.impostors.clone();
    imp.sort_by(|x, y| y.total_cmp(x));
    for (&f, &t) in roc.fpr.iter().zip(&roc.tpr).filter(|p| *p.0 <= roc.exact_to_fpr) {
        let fa = (f * imp.len() as f64).round() as usize;
        let th = imp[fa];
        assert_eq!(imp.iter().filter(|&&x| x > th).count(), fa);
        let ta = b.genuine.iter().filter(|&&g| g > th).count() as f64 / b.genuine.len() as f64;
        assert_eq!(t, ta, "ROC point at fpr {f}");
    }
}

#[test]
fn streaming_equals_brute_force_for_all_sizes_blocks_and_threads() {
    let p = probes(24, 1);
    let n = 400;
    let store = distractor_store(&p, n, 2);
    let rows = unit_rows(&store);
    let lists = subset_lists(n, &[10, 100, 250, 400], 3);
    let d = DistractorSet::from_store_lists(store.clone(), &lists).unwrap();
    let reference = in_pool(1, || evaluate(&p, &d, &cfg(BlockConfig::default(), 65_536), &|_, _| {}).unwrap());
    assert_eq!(reference.variant, Variant::Raw);
    assert_eq!(reference.sizes.len(), 4);
    let noisy = vec![false; n];
    for (s, (_, list)) in reference.sizes.iter().zip(&lists) {
        let members: Vec<usize> = list.iter().map(|k| store.index_of(k).unwrap()).collect();
        check_size(s, &brute(&p, &rows, &members, &noisy, 12), 12);
    }
    // Not a degenerate problem: ranks vary and some pairs fail at rank 1 on the largest size.
    let big = &reference.sizes[3];
    assert!(big.rank1 < 0.95 && big.rank1 > 0.3, "rank-1 {}", big.rank1);
    assert!(reference.sizes[0].rank1 > big.rank1);
    for (threads, qb, gb, chunk) in [(1, 7, 13, 50), (2, 64, 64, 1), (3, 1, 1, 400), (2, 512, 1024, 33)] {
        let r = in_pool(threads, || {
            evaluate(&p, &d, &cfg(BlockConfig { query_block: qb, gallery_block: gb }, chunk), &|_, _| {}).unwrap()
        });
        assert_eq!(r, reference, "threads {threads}, blocks {qb}x{gb}, steps of {chunk}");
    }
}

#[test]
fn exact_ties_count_for_the_query() {
    // Identity A: a0, a1; identity B: b0, b1. Distractor 0 is an exact copy of a1, so for the
    // query a0 the distractor ties the mate a1 (a success at rank 1); distractor 1 lies
    // between a0 and a1, beating the mate; distractor 2 is far away.
    let dim = 8;
    let a0 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let a1 = [0.6, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let b0 = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    let b1 = [0.0, 0.0, 0.0, 0.0, 0.8, 0.6, 0.0, 0.0];
    let mid = [0.9, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let far = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let ids: Vec<String> = ["A", "A", "B", "B"].iter().map(|s| s.to_string()).collect();
    let paths: Vec<String> = (0..4).map(|i| format!("x/{i}.png")).collect();
    let p = ProbeSet::new(&ids, paths, [a0, a1, b0, b1].concat(), dim).unwrap();
    let store =
        facebench_core::Embeddings::from_rows(vec!["t".into(), "m".into(), "f".into()], [a1, mid, far].concat(), dim)
            .unwrap();
    let d = DistractorSet::from_store_first_n(store.clone(), &[1, 3]).unwrap();
    let cfg = EvalConfig { max_rank: 3, fars: vec![0.1], roc_bins: 0, ..EvalConfig::default() };
    let r = evaluate(&p, &d, &cfg, &|_, _| {}).unwrap();
    // Pairs (query, gallery): (a0,a1) (a1,a0) (b0,b1) (b1,b0).
    // Size 1 (tie only): every pair succeeds at rank 1; (a1, a0): score(a1, copy of a1) = 1 > 0.6.
    assert_eq!(r.sizes[0].cmc, vec![0.75, 1.0, 1.0]);
    // Size 3: (a0,a1) beaten by mid (0.948 > 0.6), tie with the copy does not count;
    // (a1,a0) beaten by the copy and by mid (0.78 > 0.6); B pairs unaffected.
    assert_eq!(r.sizes[1].cmc, vec![0.5, 0.75, 1.0]);
    let rows = unit_rows(&store);
    check_size(&r.sizes[0], &brute(&p, &rows, &[0], &[false; 3], 3), 3);
    check_size(&r.sizes[1], &brute(&p, &rows, &[0, 1, 2], &[false; 3], 3), 3);
}

#[test]
fn noisy_distractors_never_rank_but_count_as_impostors() {
    let p = probes(24, 5);
    let n = 300;
    let store = distractor_store(&p, n, 6);
    let rows = unit_rows(&store);
    let lists = subset_lists(n, &[100, 300], 7);
    let noise = NoiseList::from_entries((0..n).filter(|i| i % 3 == 0).map(|i| format!("d{i}")));
    let mut d = DistractorSet::from_store_lists(store.clone(), &lists).unwrap();
    let raw = evaluate(&p, &d, &EvalConfig::default(), &|_, _| {});
    let per_size = d.apply_noise_list(&noise).unwrap();
    assert_eq!(per_size[1], 100);
    let noisy: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
    // Half-cleaned evaluations are refused.
    let err = evaluate(&p, &d, &EvalConfig::default(), &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
    let mut pc = p.clone();
    assert_eq!(pc.apply_noise_list(&NoiseList::default(), 1).unwrap(), Vec::<usize>::new());
    let c = cfg(BlockConfig { query_block: 100, gallery_block: 64 }, 64);
    let r = evaluate(&pc, &d, &c, &|_, _| {}).unwrap();
    assert_eq!(r.variant, Variant::R);
    assert!(r.summary().contains("(R)"));
    for (s, (_, list)) in r.sizes.iter().zip(&lists) {
        let members: Vec<usize> = list.iter().map(|k| store.index_of(k).unwrap()).collect();
        assert_eq!(s.noisy_distractors, members.iter().filter(|&&m| noisy[m]).count());
        check_size(s, &brute(&p, &rows, &members, &noisy, 12), 12);
    }
    assert!(r.sizes[1].rank1 > raw.unwrap().sizes[1].rank1);
}

#[test]
fn probe_noise_becomes_the_identity_centre() {
    let p = probes(16, 9);
    let noise = NoiseList::from_entries(["Person_3_0.png", "Person_3_1.png", "Person_7_2.png", "Other_1.png"]);
    let mut a = p.clone();
    let replaced = a.apply_noise_list(&noise, 42).unwrap();
    assert_eq!(replaced.len(), 3);
    assert!(a.is_cleaned());
    let mut b = p.clone();
    b.apply_noise_list(&noise, 42).unwrap();
    assert_eq!(a.data(), b.data(), "seeded");
    for i in 0..p.len() {
        if !replaced.contains(&i) {
            assert_eq!(a.row(i), p.row(i));
            continue;
        }
        let id = p.identities()[i];
        let mut centre = vec![0f32; p.dim()];
        for j in (0..p.len()).filter(|&j| p.identities()[j] == id && !replaced.contains(&j)) {
            centre.iter_mut().zip(p.row(j)).for_each(|(c, v)| *c += v);
        }
        facebench_core::normalize_row(&mut centre);
        let cos = facebench_score::dot(a.row(i), &centre);
        assert!(cos > 0.9999 && cos < 1.0, "row {i}: cos {cos}");
    }
    let all: Vec<String> =
        p.paths().iter().filter(|x| x.starts_with("Person_5/")).map(|x| x[9..].to_string()).collect();
    let err = p.clone().apply_noise_list(&NoiseList::from_entries(all), 1).unwrap_err();
    assert!(err.to_string().contains("Person_5"), "{err}");
}

#[test]
fn devkit_json_has_the_devkit_shape() {
    let p = probes(16, 11);
    let d = DistractorSet::from_store_first_n(distractor_store(&p, 200, 12), &[10, 200]).unwrap();
    let r = evaluate(&p, &d, &EvalConfig::default(), &|_, _| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("facebench-megaface-json-{}", std::process::id()));
    let names = DevkitNames { probe: "facescrub".into(), distractor: "megaface".into(), alg: "test".into(), set: 1 };
    let files = write_devkit_results(&dir, &names, &r).unwrap();
    assert_eq!(files[1].file_name().unwrap(), "cmc_facescrub_megaface_test_200_1.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    let cmc = v["cmc"].as_array().unwrap();
    let roc = v["roc"].as_array().unwrap();
    assert_eq!((cmc.len(), roc.len()), (2, 2));
    assert_eq!(cmc[0].as_array().unwrap().len(), cmc[1].as_array().unwrap().len());
    assert_eq!(cmc[0][0].as_u64(), Some(0));
    assert_eq!(cmc[0].as_array().unwrap().last().unwrap().as_u64(), Some(200));
    assert_eq!(roc[0].as_array().unwrap().len(), roc[1].as_array().unwrap().len());
    assert_eq!(roc[1].as_array().unwrap().last().unwrap().as_f64(), Some(1.0));
    // The real example file parses with the same structure.
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            data_root().join("megaface/results_example/cmc_facescrub_megaface_buffalo_l_100000_1.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(example["cmc"][0][0].as_u64(), Some(0));
    assert_eq!(example["cmc"][0].as_array().unwrap().last().unwrap().as_u64(), Some(100000));
    let back: MegafaceResults = serde_json::from_str(&serde_json::to_string_pretty(&r).unwrap()).unwrap();
    // serde_json's default float parser may be 1 ulp off, so compare the read-back loosely.
    assert_eq!((back.variant, back.sizes.len(), back.mate_pairs), (r.variant, r.sizes.len(), r.mate_pairs));
    for (a, b) in back.sizes.iter().zip(&r.sizes) {
        assert_eq!(a.cmc_curve.ranks, b.cmc_curve.ranks);
        assert!(a.cmc.iter().zip(&b.cmc).all(|(x, y)| (x - y).abs() < 1e-12));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

pub fn data_root() -> std::path::PathBuf {
    std::env::var_os("FACEBENCH_DATA")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// An approximate mode gives the same results for any threads, blocks and steps, labelled
/// with its name, and rank-1 close to f32's on devkit-style lists.
fn approximate_mode_is_deterministic_and_close_to_f32(scoring: Scoring) {
    let p = probes(64, 21);
    let n = 300;
    let d = DistractorSet::from_store_lists(distractor_store(&p, n, 22), &subset_lists(n, &[30, 300], 23)).unwrap();
    let f32r = evaluate(&p, &d, &cfg(BlockConfig::default(), 65_536), &|_, _| {}).unwrap();
    let run = |threads, qb, gb, chunk| {
        in_pool(threads, || {
            let c = EvalConfig { scoring, ..cfg(BlockConfig { query_block: qb, gallery_block: gb }, chunk) };
            evaluate(&p, &d, &c, &|_, _| {}).unwrap()
        })
    };
    let reference = run(1, 512, 1024, 65_536);
    assert_eq!(reference.scoring, scoring);
    assert!(reference.summary().contains(&format!("{} scoring", scoring.name())));
    for (threads, qb, gb, chunk) in [(2, 7, 13, 50), (3, 64, 64, 1), (2, 100, 40, 77)] {
        assert_eq!(run(threads, qb, gb, chunk), reference, "threads {threads}, blocks {qb}x{gb}, steps {chunk}");
    }
    for (a, b) in reference.sizes.iter().zip(&f32r.sizes) {
        assert!((a.rank1 - b.rank1).abs() < 0.01, "size {}: {} {} f32 {}", a.size, scoring.name(), a.rank1, b.rank1);
    }
}

#[test]
fn bf16_mode_is_deterministic_and_close_to_f32() {
    if !bf16_available() {
        eprintln!("no AVX-512 BF16: bf16 mode not tested");
        return;
    }
    approximate_mode_is_deterministic_and_close_to_f32(Scoring::Bf16);
}

#[test]
fn int8_mode_is_deterministic_and_close_to_f32() {
    if !int8_available() {
        eprintln!("no AVX-512 VNNI: int8 mode not tested");
        return;
    }
    approximate_mode_is_deterministic_and_close_to_f32(Scoring::Int8);
}

#[test]
fn int8_rank1_equals_f32_to_3_decimals_on_a_synthetic_set() {
    // A scaled-down `bench megaface`: FaceScrub-like clusters against clustered distractors,
    // 512 dimensions; rank-1 at every size equals f32's to 3 decimals (|difference| < 0.0005:
    // plain rounding of both could still differ at a rounding boundary).
    if !int8_available() {
        eprintln!("no AVX-512 VNNI: int8 mode not tested");
        return;
    }
    let p = synthetic_probes(20, 500, 512, 2.0, 7).unwrap();
    let n = 20_000;
    let d = synthetic_distractors(n, 512, 300, 1.0, 11, &sizes_up_to(n)).unwrap();
    let c = |scoring| EvalConfig { dataset: "synthetic".into(), scoring, ..EvalConfig::default() };
    let f = evaluate(&p, &d, &c(Scoring::F32), &|_, _| {}).unwrap();
    let i = evaluate(&p, &d, &c(Scoring::Int8), &|_, _| {}).unwrap();
    assert!(f.sizes.iter().any(|s| s.rank1 < 0.9), "the set must not be trivially easy");
    for (a, b) in i.sizes.iter().zip(&f.sizes) {
        assert!((a.rank1 - b.rank1).abs() < 0.0005, "size {}: int8 {} f32 {}", a.size, a.rank1, b.rank1);
    }
}

#[test]
fn sampled_roc_beyond_the_exact_region_tracks_brute_force() {
    // 20,000 distractors: the histogram samples every 2nd row, the top scores cover FAR
    // <= 1e-3 exactly; beyond, each ROC point must sit on the brute-force curve.
    let p = probes(16, 31);
    let n = 20_000;
    let store = distractor_store(&p, n, 32);
    let rows = unit_rows(&store);
    let d = DistractorSet::from_store_first_n(store, &[n]).unwrap();
    let c = EvalConfig { fars: vec![1e-3], roc_bins: 400, ..EvalConfig::default() };
    let r = evaluate(&p, &d, &c, &|_, _| {}).unwrap();
    let s = &r.sizes[0];
    assert!(s.roc.sampled_beyond);
    let b = brute(&p, &rows, &(0..n).collect::<Vec<_>>(), &vec![false; n], 1);
    let mut imp = b.impostors.clone();
    imp.sort_by(|x, y| y.total_cmp(x));
    let beyond: Vec<(f64, f64)> = s
        .roc
        .fpr
        .iter()
        .copied()
        .zip(s.roc.tpr.iter().copied())
        .filter(|p| p.0 > s.roc.exact_to_fpr && p.0 < 1.0)
        .collect();
    assert!(beyond.len() > 20);
    for (f, t) in beyond {
        let th = imp[((f * imp.len() as f64) as usize).min(imp.len() - 1)];
        let truth = b.genuine.iter().filter(|&&g| g > th).count() as f64 / b.genuine.len() as f64;
        assert!((t - truth).abs() < 0.03, "fpr {f}: tpr {t}, brute force {truth}");
    }
}
