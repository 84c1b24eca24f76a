//! Time per epoch of head training on CPU for a given shape.
//!
//! `cargo run --release -p facebench-lmcl --example head_speed -- [n] [d] [classes] [out] [batch] [epochs] [loss]`
//! (defaults 4000 128 1000 128 128 3 cosface:s=30,m=0.35). Data are random unit vectors with
//! random labels: the time depends on the shapes only.

use std::time::Instant;

use facebench_lmcl::{train_head_with, MarginLoss, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    let (n, d, k, out, batch, epochs) =
        (num(0, 4000)?, num(1, 128)?, num(2, 1000)?, num(3, 128)?, num(4, 128)?, num(5, 3)?);
    let loss: MarginLoss = args.get(6).map_or("cosface:s=30,m=0.35", |s| s.as_str()).parse()?;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    };
    let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
    let y: Vec<usize> = (0..n).map(|i| i % k).collect();
    let cfg = TrainConfig { epochs, batch_size: batch, ..TrainConfig::new(loss, out) };
    let mut marks = vec![Instant::now()];
    let mut last_epoch = 0;
    let start = Instant::now();
    let head = train_head_with(&x, d, &y, &cfg, &mut |r| {
        if r.epoch != last_epoch {
            marks.push(Instant::now());
            last_epoch = r.epoch;
        }
    })?;
    marks.push(Instant::now());
    let total = start.elapsed().as_secs_f64();
    let per: Vec<String> = marks.windows(2).map(|w| format!("{:.3}", (w[1] - w[0]).as_secs_f64())).collect();
    println!(
        "n={n} d={d} classes={k} out={out} batch={batch} loss={loss} threads={}: \
         {epochs} epochs in {total:.3} s, per epoch [{}] s, final loss {:.3}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
        per.join(", "),
        head.records().last().map_or(f64::NAN, |r| r.loss)
    );
    Ok(())
}
