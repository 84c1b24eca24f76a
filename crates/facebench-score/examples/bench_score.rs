//! Runs the scoring benchmark: `cargo run --release -p facebench-score --example bench_score
//! [-- QUERIES GALLERY DIM K THREADS [QUERY_BLOCK GALLERY_BLOCK [REPEATS]]]`, default 4096 200000 512 10 0.
//! Add `--features candle` to also time candle-core's matmul.

use facebench_score::bench::bench_score_with;
use facebench_score::BlockConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = BlockConfig::default();
    let arg = |i: usize, default: usize| -> usize {
        match args.get(i) {
            None => default,
            Some(s) => s.parse().unwrap_or_else(|_| {
                eprintln!("argument {} ({s:?}) is not a non-negative integer", i + 1);
                std::process::exit(2)
            }),
        }
    };
    let config =
        BlockConfig { query_block: arg(5, defaults.query_block), gallery_block: arg(6, defaults.gallery_block) };
    match bench_score_with(arg(0, 4096), arg(1, 200_000), arg(2, 512), arg(3, 10), arg(4, 0), config, arg(7, 2)) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("bench_score: {e}");
            std::process::exit(1)
        }
    }
}
