//! `facebench`: a thin command-line front end over the facebench library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Benchmark harness for deep face recognition: LFW, YouTube Faces and MegaFace
/// protocols, scored with parallel cosine scoring and the reference tools' exact rules.
#[derive(Parser)]
#[command(name = "facebench", version)]
struct Cli {
    /// Root of the datasets (holds lfw/, ytf/, megaface/).
    #[arg(long, global = true, env = "FACEBENCH_DATA", default_value = "../shared/data")]
    data_root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect faces and 68 landmarks in every image; cache them as JSON lines.
    Align(cmd::align::AlignArgs),
    /// Embed images with a face model into a resumable store.
    Embed(cmd::embed::EmbedArgs),
    /// Evaluate embeddings on a protocol.
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Choose a protocol's preprocessing variant on its development split (LFW View 1).
    #[command(subcommand)]
    Tune(cmd::eval::TuneCommand),
    /// Train a margin-loss (LMCL/CosFace, ArcFace, ...) head on frozen embeddings, or a backbone.
    Train(cmd::train::TrainArgs),
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Write a dataset file: `pack bin` makes an InsightFace .bin verification pack.
    #[command(subcommand)]
    Pack(cmd::bin::PackCommand),
    /// Paper-style comparison of every results.json given: tables (Markdown, HTML, LaTeX),
    /// overlaid ROC/CMC figures, score histograms and a provenance appendix.
    Report(cmd::report::ReportArgs),
    /// The CosFace paper's LMCL experiments on frozen LFW embeddings: toy (Fig. 3), ablation (Fig. 5).
    #[command(subcommand)]
    Lmcl(cmd::lmcl::LmclCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Align(a) => cmd::align::run(a, &cli.data_root),
        Command::Embed(a) => cmd::embed::run(a, &cli.data_root),
        Command::Eval(c) => cmd::eval::run(c, &cli.data_root),
        Command::Tune(c) => cmd::eval::run_tune(c, &cli.data_root),
        Command::Train(a) => cmd::train::run(a),
        Command::Bench(c) => cmd::bench::run(c, &cli.data_root),
        Command::Pack(c) => cmd::bin::run_pack(c, &cli.data_root),
        Command::Report(a) => cmd::report::run(a),
        Command::Lmcl(c) => cmd::lmcl::run(c, &cli.data_root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
