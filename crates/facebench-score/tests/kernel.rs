//! `gemm_block` must equal `dot` bit for bit on every shape (the crate's exactness guarantee).

use facebench_score::{dot, gemm_block, score_pairs, Matrix};

/// SplitMix64: a tiny seeded generator so tests need no rand dependency.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn check_shape(m: usize, n: usize, d: usize, seed: u64) {
    let q = values(seed, m * d);
    let g = values(seed ^ 0xABCD, n * d);
    let (qm, gm) = (Matrix::new(&q, m, d).unwrap(), Matrix::new(&g, n, d).unwrap());
    let mut out = vec![f32::NAN; m * n];
    gemm_block(qm, gm, &mut out).unwrap();
    for i in 0..m {
        for j in 0..n {
            let want = dot(qm.row(i), gm.row(j));
            assert_eq!(
                out[i * n + j].to_bits(),
                want.to_bits(),
                "shape {m}x{n}x{d}: element ({i},{j}) gemm {} vs dot {want}",
                out[i * n + j]
            );
        }
    }
}

#[test]
fn gemm_block_equals_dot_bitwise_on_awkward_shapes() {
    let dims = [1, 2, 3, 4, 17, 128, 511, 512, 513, 514, 515, 1024, 1100];
    let sizes =
        [(1, 1), (1, 40), (40, 1), (2, 2), (16, 16), (16, 17), (17, 16), (3, 200), (65, 70), (33, 129), (130, 257)];
    for (s, &d) in dims.iter().enumerate() {
        for &(m, n) in &sizes {
            check_shape(m, n, d, s as u64 * 1000 + m as u64 * 7 + n as u64);
        }
    }
}

#[test]
fn gemm_block_large_tile_equals_dot() {
    check_shape(300, 1030, 512, 99);
    check_shape(257, 600, 300, 98);
}

#[test]
fn pair_scores_equal_gemm_scores() {
    let (m, n, d) = (37, 53, 513);
    let (q, g) = (values(1, m * d), values(2, n * d));
    let (qm, gm) = (Matrix::new(&q, m, d).unwrap(), Matrix::new(&g, n, d).unwrap());
    let mut out = vec![0.0; m * n];
    gemm_block(qm, gm, &mut out).unwrap();
    let pairs: Vec<(usize, usize)> = (0..m).flat_map(|i| (0..n).map(move |j| (i, j))).collect();
    let scores = score_pairs(qm, gm, &pairs).unwrap();
    for (k, &(i, j)) in pairs.iter().enumerate() {
        assert_eq!(scores[k].to_bits(), out[i * n + j].to_bits(), "pair ({i},{j})");
    }
}
