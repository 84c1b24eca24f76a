//! MegaFace Challenge 1 from the command line, the way `facebench eval megaface` and
//! `facebench bench megaface` call this crate.
//!
//! ```text
//! # synthetic scale benchmark (labelled synthetic):
//! cargo run --release -p facebench-megaface --example megaface -- bench 100000 512 2
//! # real devkit features:
//! cargo run --release -p facebench-megaface --example megaface -- eval \
//!     PROBE_ROOT DISTRACTOR_ROOT _alg.bin OUT_DIR [--clean] [--sizes 10,100,1000]
//! ```
//! `eval` reads the lists and noise lists from `$FACEBENCH_DATA/megaface` (default
//! `../shared/data/megaface`).

use std::path::{Path, PathBuf};

use facebench_megaface::*;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => {
            let n = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
            let dim = args.get(2).map_or(Ok(512), |s| s.parse())?;
            let threads = args.get(3).map_or(Ok(0), |s| s.parse())?;
            println!("{}", bench_megaface(n, dim, threads)?);
            Ok(())
        }
        Some("eval") if args.len() >= 5 => eval(&args[1..]),
        _ => Err("usage: megaface bench [N] [DIM] [THREADS] | megaface eval PROBE_ROOT DISTRACTOR_ROOT ENDING OUT_DIR [--clean] [--sizes a,b,..]".into()),
    }
}

fn eval(args: &[String]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let data = std::env::var_os("FACEBENCH_DATA").map_or_else(|| PathBuf::from("../shared/data"), PathBuf::from);
    let mf = data.join("megaface");
    let (probe_root, distractor_root, ending, out) =
        (Path::new(&args[0]), Path::new(&args[1]), &args[2], Path::new(&args[3]));
    let clean = args.iter().any(|a| a == "--clean");
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--sizes") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--sizes needs a list")?
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?,
        None => vec![10, 100, 1000, 10_000, 100_000, 1_000_000],
    };
    let list = read_probe_list(&mf.join("templatelists/facescrub_features_list.json"))?;
    let lists = read_distractor_lists(&mf.join("templatelists"), &sizes, 1)?;
    let mut probes = ProbeSet::from_devkit(&list, probe_root, ending, |_| {})?;
    let mut distractors = DistractorSet::from_devkit(&lists, distractor_root, ending, |_| {})?;
    if clean {
        probes.apply_noise_list(&NoiseList::read(&mf.join("noises/facescrub_noises.txt"))?, 0)?;
        distractors.apply_noise_list(&NoiseList::read(&mf.join("noises/megaface_noises.txt"))?)?;
    }
    let results = evaluate(&probes, &distractors, &EvalConfig::default(), &|done, total| {
        eprint!("\rscored {done} / {total} distractors");
    })?;
    eprintln!();
    let alg = ending.trim_start_matches('_').trim_end_matches(".bin");
    let alg = if clean { format!("{alg}_R") } else { alg.to_string() };
    let names = DevkitNames { probe: "facescrub".into(), distractor: "megaface".into(), alg, set: 1 };
    write_devkit_results(&out.join("results"), &names, &results)?;
    write_results_json(&out.join("results.json"), &results)?;
    print!("{}", results.summary());
    Ok(())
}
