//! `facebench`: a thin command-line front end over the facebench library crates. Flags
//! become library requests in flags.rs; each command below is one library call and printing.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facebench_pipeline as pipeline;

mod flags;

use flags::{BenchCommand, EvalCommand, LmclCommand, PackCommand, TuneCommand};

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
    Align(flags::AlignArgs),
    /// Embed images with a face model into a resumable store.
    Embed(flags::EmbedArgs),
    /// Truncate a damaged `.fbs` store at its first bad record, keeping every row before it;
    /// says how many intact rows after it are dropped (an intact store is left unchanged).
    Repair(flags::RepairArgs),
    /// Evaluate embeddings on a protocol.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Choose a protocol's preprocessing variant on its development split (LFW View 1).
    #[command(subcommand)]
    Tune(TuneCommand),
    /// Train a margin-loss (LMCL/CosFace, ArcFace, ...) head on frozen embeddings, or a backbone.
    Train(flags::TrainArgs),
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write a dataset file: `pack bin` makes an InsightFace .bin verification pack.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Paper-style comparison of every results.json given: tables (Markdown, HTML, LaTeX),
    /// overlaid ROC/CMC figures, score histograms and a provenance appendix.
    Report(flags::ReportArgs),
    /// List the model registry: name, input, alignment, embedding size, description, and
    /// whether the weights are in the models folder.
    Models(flags::ModelsArgs),
    /// Download a protocol's public data (LFW lists and images, MegaFace lists) by name:
    /// resumable, checksummed, safely extracted, nothing in the data root until verified.
    Fetch(flags::FetchArgs),
    /// The CosFace paper's LMCL experiments on frozen LFW embeddings: toy (Fig. 3), ablation (Fig. 5).
    #[command(subcommand)]
    Lmcl(LmclCommand),
}

type CmdResult = Result<(), Box<dyn Error>>;

fn align(a: flags::AlignArgs, data_root: &Path) -> CmdResult {
    let (root, keys) = a.images.image_set().resolve(data_root)?;
    let ws = a.workspace(data_root);
    let o = ws.install(|| ws.align(&root, &keys, &a.out, a.decoder))?;
    println!(
        "aligned {} image(s) in {:.1}s ({:.1} images/s), {} already cached; {} fallback(s) to the centre box{}",
        o.aligned,
        o.seconds,
        o.per_second(),
        o.already,
        o.fallbacks.len(),
        match o.fallbacks.len() {
            0 => String::new(),
            // A long list buries the summary; every fallback is flagged in the JSONL cache.
            n if n <= 10 => format!(": {}", o.fallbacks.join(", ")),
            n => format!(
                " (first 10: {}, ...; all {n} have \"fallback\": true in {})",
                o.fallbacks[..10].join(", "),
                a.out.display()
            ),
        }
    );
    Ok(())
}

fn models(a: flags::ModelsArgs) -> CmdResult {
    let registry = facebench_model::Registry::load(a.registry())?;
    let dir = a.models_dir();
    println!("{} ({} models; weights under {})", registry.path().display(), registry.models().len(), dir.display());
    for m in registry.models() {
        let present = m.files.iter().all(|f| dir.join(&f.dest).is_file());
        println!(
            "{:<16} {}x{} {}  {}-D  align: {}  weights: {}\n  {}",
            m.name,
            m.input.width,
            m.input.height,
            match m.input.colour {
                facebench_model::registry::Colour::Rgb => "RGB",
            },
            m.embedding_dim,
            m.alignment.crop,
            if present { "present" } else { "missing (run `make models`)" },
            m.description
        );
    }
    Ok(())
}

fn eval(c: EvalCommand, data_root: &Path) -> Result<String, Box<dyn Error>> {
    Ok(match c {
        EvalCommand::Lfw(a) => match a.store_eval()? {
            Some(s) => a.pipeline.workspace(data_root).install(|| pipeline::pairs::eval_store(data_root, &s))?,
            None => {
                let ws = a.pipeline.workspace(data_root);
                let m = a.model.as_deref().expect("clap requires --model or --embeddings");
                ws.install(|| pipeline::pairs::run(&ws, m, &a.pipeline.protocol_file(), None, &a.model_out(m)))?
            }
        },
        EvalCommand::Pairs(a) => match a.store_eval()? {
            Some(s) => a.workspace(data_root).install(|| pipeline::pairs::eval_store(data_root, &s))?,
            None => {
                let ws = a.workspace(data_root);
                ws.install(|| pipeline::pairs::run(&ws, a.model(), &a.protocol_file, a.variant.as_deref(), &a.out()))?
            }
        },
        EvalCommand::Megaface(a) => pipeline::megaface::run(data_root, &a.request()?)?,
        EvalCommand::MegafaceLfw(a) => {
            let ws = a.lfw.workspace(data_root);
            ws.install(|| pipeline::megaface::run_lfw_stand_in(&ws, &a.model, a.min_images, a.out.as_deref()))?
        }
        EvalCommand::Bin(a) => {
            let ws = a.run.workspace(data_root, Path::new("."));
            ws.install(|| pipeline::bin::eval(&ws, &a.request()))?
        }
        EvalCommand::Ytf(a) => {
            let ws = a.run.workspace(data_root, &a.cache);
            let request = a.request()?;
            ws.install(|| pipeline::ytf::run(&ws, &request))?
        }
    })
}

fn report(a: flags::ReportArgs) -> CmdResult {
    use facebench_report::summary::{find_figures, find_results, write_summary};
    let (files, unmatched) = find_results(&a.results, &a.out)?;
    for arg in unmatched {
        eprintln!("warning: `{arg}` matched no results.json");
    }
    if files.is_empty() {
        return Err(format!("no results.json found in {}", a.results.join(" ")).into());
    }
    let figures = find_figures(&a.figures);
    let published = facebench_pairs::published::all(&facebench_pairs::published::default_dir())?;
    let s = write_summary(&a.out, &files, &figures, &published)?;
    println!(
        "{} results file(s), {} model(s) ({}), {} extra figure(s)",
        s.used,
        s.models.len(),
        s.models.join(", "),
        figures.len()
    );
    for (p, why) in &s.unrecognised {
        println!("not recognised, listed in the report: {} ({why})", p.display());
    }
    println!("wrote {} files to {} (summary.md, summary.html, summary.tex, figures)", s.written.len(), a.out.display());
    Ok(())
}

fn run(cli: Cli) -> CmdResult {
    let data_root = &cli.data_root;
    let out = match cli.command {
        Command::Align(a) => return align(a, data_root),
        Command::Report(a) => return report(a),
        Command::Models(a) => return models(a),
        Command::Embed(a) => {
            let ws = a.run.workspace(data_root, Path::new("."));
            let request = a.request()?;
            ws.install(|| pipeline::embed::run(&ws, &request))?
        }
        Command::Repair(a) => pipeline::embed::repair(&a.store)?,
        Command::Fetch(a) => facebench_fetch::run(&a.request(data_root))?,
        Command::Eval(c) => eval(c, data_root)?,
        Command::Tune(TuneCommand::Lfw(a)) => {
            let ws = a.pipeline.workspace(data_root);
            let (t, path) = ws.install(|| pipeline::pairs::tune(&ws, &a.model, &a.pipeline.protocol_file()))?;
            format!("{}wrote {}\n", t.table(), path.display())
        }
        Command::Train(a) => pipeline::train::run(&a.request())?,
        Command::Bench(BenchCommand::Embed(a)) => {
            let ws = a.run.workspace(data_root, Path::new("."));
            ws.install(|| pipeline::bench::embed(&ws, &a.model, a.iters, a.images))?
        }
        Command::Bench(BenchCommand::Megaface(a)) => {
            format!("{}\n", facebench_megaface::bench_megaface(a.distractors, a.dim, a.threads)?)
        }
        // --threads 0 = all cores
        Command::Bench(BenchCommand::Score(a)) => format!(
            "{}\n",
            facebench_score::bench::bench_score(a.queries, a.gallery, a.dim, a.k, a.threads.unwrap_or(0))?
        ),
        Command::Pack(PackCommand::Bin(a)) => format!("{}\n", pipeline::bin::pack(data_root, &a.request())?),
        Command::Lmcl(LmclCommand::Toy(a)) => {
            let ws = a.common.lfw.workspace(data_root);
            ws.install(|| pipeline::lmcl::run_toy(&ws, &a.request()))?
        }
        Command::Lmcl(LmclCommand::Ablation(a)) => {
            let ws = a.common.lfw.workspace(data_root);
            ws.install(|| pipeline::lmcl::run_ablation(&ws, &a.request()))?
        }
    };
    print!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", facebench_core::cause_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
