//! `facebench bench embed`: model throughput at batch 1 and the workspace's batch (32), forward passes alone and
//! the whole extraction pipeline on real LFW images.

use facebench_extract::Job;

use crate::images::{ImageSet, ProtocolImages};
use crate::{Result, Workspace};

/// Runs the benchmark; returns the lines to print.
pub fn embed(ws: &Workspace, model: &str, iters: usize, images: usize) -> Result<String> {
    let model = ws.load_model(model)?;
    let net = model.net();
    let mut s = format!("{} on {} ({} threads)\n", model.name(), ws.device, rayon::current_num_threads());
    for batch in [1, ws.batch] {
        let n = if batch == 1 { iters * 8 } else { iters };
        let r = facebench_model::bench_embed(net, batch, n)?;
        s += &format!("  forward only, batch {batch:>2}: {:>8.1} images/s\n", r.images_per_sec);
    }
    let set = ImageSet { protocol: Some(ProtocolImages::Lfw), ..Default::default() };
    let (root, mut keys) = set.resolve(&ws.data_root)?;
    keys.truncate(images);
    let side = net.input_spec().width.min(net.input_spec().height) as u32;
    let r = model.recipe(&format!("centre:{}", side.max(1)))?;
    let tmp = std::env::temp_dir().join(format!("facebench-bench-embed-{}", std::process::id()));
    for batch in [1, ws.batch] {
        let job = Job { model: net, recipe: &r, root: &root, batch, flip: false, skip_bad: false };
        let store = tmp.join(format!("b{batch}.fbs"));
        let e = ws.embed(&job, &keys, &Default::default(), &store)?;
        s += &format!(
            "  decode + crop + forward + store, batch {batch:>2}: {:>8.1} images/s ({} LFW images, model busy {:.0}% of the time)\n",
            e.images_per_sec(),
            e.computed,
            100.0 * e.model_seconds / e.seconds.max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(s)
}
