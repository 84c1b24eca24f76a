//! CosFace Fig. 3 at head scale: frozen embeddings of a few identities, a learned linear map
//! to 2-D, trained with Softmax, NormFace and LMCL at several margins; prints the measured
//! angular spread within classes and gap between classes per loss, and writes the 2-D
//! features and class weights as CSV for plotting.
//!
//! `cargo run --release -p facebench-lmcl --example lmcl_toy -- <store> <out dir> [s] [epochs] [seed] [lr]`
//! `<store>`: any facebench embedding store (`.fbs`, `.npy`, ...) whose keys are
//! `<identity>/<image>` (what `facebench embed --list` writes for LFW); every identity in
//! the store is a class.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use facebench_lmcl::{angular_stats, train_head, MarginLoss, SgdParams, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: lmcl_toy <store> <out dir> [s] [epochs] [seed] [lr]".into());
    }
    let store = PathBuf::from(&args[0]);
    let out = PathBuf::from(&args[1]);
    let s: f64 = args.get(2).map_or(Ok(16.0), |v| v.parse())?;
    let epochs: usize = args.get(3).map_or(Ok(40), |v| v.parse())?;
    let seed: u64 = args.get(4).map_or(Ok(0), |v| v.parse())?;
    let lr: f64 = args.get(5).map_or(Ok(0.1), |v| v.parse())?;
    std::fs::create_dir_all(&out)?;
    let mut emb = facebench_core::store::read(&store, None)?;
    emb.l2_normalize()?;
    // Face embeddings share a large common component (all faces look alike next to the
    // rest of the sphere); a linear map to 2-D would send every face along its image.
    // Subtract the mean embedding first, as SphereFace's evaluation does.
    let dim = emb.dim();
    let mut mean = vec![0f64; dim];
    for row in emb.data().chunks(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += f64::from(v));
    }
    let n = emb.len() as f64;
    let centred: Vec<f32> = emb
        .data()
        .chunks(dim)
        .flat_map(|row| row.iter().zip(&mean).map(move |(&v, m)| v - (m / n) as f32))
        .collect();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for key in emb.keys() {
        let id = key.split('/').next().unwrap_or(key).to_string();
        let next = ids.len();
        ids.entry(id).or_insert(next);
    }
    // Labels in identity-name order.
    let names: Vec<String> = ids.keys().cloned().collect();
    let labels: Vec<usize> = emb
        .keys()
        .iter()
        .map(|k| {
            names
                .binary_search(&k.split('/').next().unwrap_or(k).to_string())
                .unwrap_or(0)
        })
        .collect();
    println!(
        "{} rows of {} dims, {} identities, s = {s}, {epochs} epochs, seed {seed}",
        emb.len(),
        emb.dim(),
        names.len()
    );
    let raw = angular_stats(emb.data(), emb.dim(), &labels)?;
    let cen = angular_stats(&centred, dim, &labels)?;
    for (what, st) in [("raw embeddings", &raw), ("mean-centred embeddings", &cen)] {
        println!(
            "{what:<28} spread {:6.2}°  gap {:6.2}°  nearest centre {:6.2}°  margin {:6.2}°",
            st.mean_spread_deg, st.mean_gap_deg, st.mean_nearest_centre_deg, st.mean_margin_deg
        );
    }
    let losses = [
        MarginLoss::Softmax,
        MarginLoss::NormFace { s },
        MarginLoss::CosFace { s, m: 0.1 },
        MarginLoss::CosFace { s, m: 0.2 },
        MarginLoss::CosFace { s, m: 0.35 },
    ];
    let mut summary = std::fs::File::create(out.join("toy_stats.csv"))?;
    writeln!(summary, "loss,mean_spread_deg,mean_gap_deg,mean_nearest_centre_deg,mean_margin_deg,final_loss,final_accuracy,seconds")?;
    for loss in losses {
        let cfg = TrainConfig {
            epochs,
            batch_size: 64,
            seed,
            sgd: SgdParams {
                lr,
                momentum: 0.9,
                weight_decay: 5e-4,
                nesterov: false,
            },
            normalize_output: loss != MarginLoss::Softmax,
            ..TrainConfig::new(loss, 2)
        };
        let t = Instant::now();
        let head = train_head(&centred, dim, &labels, &cfg)?;
        let secs = t.elapsed().as_secs_f64();
        let f = head.apply(&centred)?;
        let st = angular_stats(&f, 2, &labels)?;
        let last = head
            .records()
            .iter()
            .rev()
            .take(labels.len().div_ceil(64))
            .collect::<Vec<_>>();
        let (fl, fa) = (
            last.iter().map(|r| r.loss).sum::<f64>() / last.len() as f64,
            last.iter().map(|r| r.accuracy).sum::<f64>() / last.len() as f64,
        );
        println!(
            "{:<28} spread {:6.2}°  gap {:6.2}°  nearest centre {:6.2}°  margin {:6.2}°  last-epoch loss {fl:.3} acc {fa:.3}  ({secs:.1} s)",
            loss.to_string(),
            st.mean_spread_deg,
            st.mean_gap_deg,
            st.mean_nearest_centre_deg,
            st.mean_margin_deg
        );
        writeln!(
            summary,
            "\"{loss}\",{},{},{},{},{fl},{fa},{secs}",
            st.mean_spread_deg, st.mean_gap_deg, st.mean_nearest_centre_deg, st.mean_margin_deg
        )?;
        let tag = loss.to_string().replace([':', ',', '='], "_");
        let mut fcsv = std::fs::File::create(out.join(format!("features_{tag}.csv")))?;
        writeln!(fcsv, "x,y,label,identity")?;
        for (i, &l) in labels.iter().enumerate() {
            writeln!(fcsv, "{},{},{l},{}", f[2 * i], f[2 * i + 1], names[l])?;
        }
        let w = head.class_weights()?;
        let mut wcsv = std::fs::File::create(out.join(format!("weights_{tag}.csv")))?;
        writeln!(wcsv, "x,y,label,identity")?;
        for (c, name) in names.iter().enumerate() {
            writeln!(wcsv, "{},{},{c},{name}", w[2 * c], w[2 * c + 1])?;
        }
    }
    Ok(())
}
