//! Trains the small backbone from scratch on the 8 LFW identities with the most images and
//! prints the per-epoch loss/accuracy and the time per 1,000 training images.
//!
//! `cargo run --release -p facebench-lmcl --example backbone_lfw8 -- [epochs] [loss] [classes]`
//! (defaults 4, cosface:s=16,m=0.2, 8). Reads `$FACEBENCH_DATA/lfw/lfw-deepfunneled`
//! (default data root `../shared/data` from the repository root).

use std::path::PathBuf;
use std::time::Instant;

use facebench_lmcl::{train_backbone, BackboneConfig, ImageFolder, MarginLoss, SgdParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs: usize = args.first().map_or(Ok(4), |s| s.parse())?;
    let loss: MarginLoss = args.get(1).map_or("cosface:s=16,m=0.2", |s| s.as_str()).parse()?;
    let classes: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let root = std::env::var_os("FACEBENCH_DATA")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from);
    let folder = ImageFolder::scan(&root.join("lfw/lfw-deepfunneled"))?.largest_classes(classes);
    let n = folder.items().len();
    println!("{} identities, {n} images: {}", folder.classes().len(), folder.classes().join(", "));
    let cfg = BackboneConfig {
        epochs,
        batch_size: 64,
        sgd: SgdParams { lr: 0.05, ..SgdParams::default() },
        ..BackboneConfig::new(loss)
    };
    let start = Instant::now();
    let mut epoch_start = Instant::now();
    let mut sums = (0.0, 0.0, 0usize);
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let model = train_backbone(&folder, &cfg, &mut |r| {
        sums = (sums.0 + r.loss, sums.1 + r.accuracy, sums.2 + 1);
        if sums.2 == steps_per_epoch {
            let secs = epoch_start.elapsed().as_secs_f64();
            println!(
                "epoch {}: mean loss {:.4}, mean batch accuracy {:.3}, {:.1} s ({:.1} s per 1,000 images)",
                r.epoch,
                sums.0 / sums.2 as f64,
                sums.1 / sums.2 as f64,
                secs,
                secs * 1000.0 / n as f64
            );
            sums = (0.0, 0.0, 0);
            epoch_start = Instant::now();
        }
    })?;
    println!(
        "{loss}: {} steps in {:.1} s; arch {:?}",
        model.records().len(),
        start.elapsed().as_secs_f64(),
        model.arch()
    );
    Ok(())
}
