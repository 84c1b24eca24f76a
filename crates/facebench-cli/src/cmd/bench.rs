//! `facebench bench ...`: benchmarks that print a ratio against a baseline measured
//! in the same run (machines are noisy; absolute times alone say little).

use clap::{Args, Subcommand};

use super::CmdResult;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Blocked cosine scoring with a top-k reducer against a plain GEMM of the same shape.
    Score(ScoreArgs),
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Number of query rows.
    #[arg(long, default_value_t = 4096)]
    queries: usize,
    /// Number of gallery rows.
    #[arg(long, default_value_t = 200_000)]
    gallery: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// k of the per-query top-k reducer.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(cmd: BenchCommand) -> CmdResult {
    match cmd {
        BenchCommand::Score(a) => {
            // 0 = all cores
            let threads = a.threads.unwrap_or(0);
            let report = facebench_score::bench::bench_score(a.queries, a.gallery, a.dim, a.k, threads)?;
            println!("{report}");
            Ok(())
        }
    }
}
