//! Throughput of the ports (decoding excluded), and of our CPU kernels against candle's own ops
//! on the layer shapes these networks use.
//!
//!   cargo run --release -p facebench-model --example bench_models [-- cpu|cuda [ITERS [MODEL]]]
//!
//! With MODEL, only that model is timed (for profiling).

use std::time::Instant;

use candle_core::{Device, Tensor};
use facebench_model::{bench_embed, default_models_dir, device_from_name, load, Registry};
use facebench_nn::{Activation, Conv2d, DepthwiseConv2d, Pads};

fn time<E: std::fmt::Debug, F: FnMut() -> Result<Tensor, E>>(iters: usize, mut f: F) -> f64 {
    f().unwrap();
    let t0 = Instant::now();
    for _ in 0..iters {
        f().unwrap();
    }
    t0.elapsed().as_secs_f64() / iters as f64 * 1e3
}

fn main() -> facebench_model::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let device = device_from_name(args.get(1).map(String::as_str).unwrap_or("cpu"))?;
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    println!("threads: {}", rayon::current_num_threads());
    let only = args.get(3);
    let registry = Registry::load(Registry::default_path())?;
    for name in registry.names().into_iter().filter(|n| only.is_none_or(|o| o == n)) {
        let model = load(name, &default_models_dir(), &device)?;
        for batch in [1, 32] {
            let it = if batch == 1 { iters * 16 } else { iters };
            let r = bench_embed(model.as_ref(), batch, it)?;
            let per_cpu = r
                .cpu_seconds
                .map(|c| format!(", {:.1} images per CPU-second", (r.batch * r.iters) as f64 / c))
                .unwrap_or_default();
            println!(
                "{:<16} batch {:>3}: {:>8.1} images/s ({} x {} images in {:.2} s{per_cpu})",
                r.model, r.batch, r.images_per_sec, r.iters, r.batch, r.seconds
            );
        }
        if device.is_cpu() && only.is_none() {
            let r = facebench_nn::with_candle_ops(|| bench_embed(model.as_ref(), 32, 1))?;
            println!(
                "{:<16} batch  32: {:>8.1} images/s with candle's own ops (grouped conv etc.)",
                r.model, r.images_per_sec
            );
        }
    }
    if device.is_cpu() && only.is_none() {
        // The machine's own sgemm rate, the ceiling for convolution as im2col + gemm.
        for (threads, par) in
            [(1, gemm::Parallelism::None), (rayon::current_num_threads(), gemm::Parallelism::Rayon(0))]
        {
            let n = 1024;
            let (a, b) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
            let mut c = vec![0f32; n * n];
            let mut run = || unsafe {
                gemm::gemm(
                    n,
                    n,
                    n,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    n as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            };
            run();
            let t0 = Instant::now();
            for _ in 0..iters {
                run();
            }
            let gflops = 2.0 * (n * n * n * iters) as f64 / t0.elapsed().as_secs_f64() / 1e9;
            println!("sgemm {n}^3, {threads} thread(s): {gflops:.1} GFLOP/s");
        }
        println!("layer kernels, batch 32, ms per call (ours vs candle's ops):");
        let dev = Device::Cpu;
        let x = |c: usize, h: usize| Tensor::ones((32, h, h, c), candle_core::DType::F32, &dev).unwrap();
        let dw = |c: usize, s: usize| {
            DepthwiseConv2d::new("dw", &vec![0.1; 9 * c], [3, 3, c, 1], s, Pads::uniform(1), &dev)
                .unwrap()
                .with_activation(Activation::PRelu(vec![0.2; c]))
                .unwrap()
        };
        for (c, h, s) in [(32, 56, 2), (32, 28, 1), (128, 7, 1)] {
            let (l, xi) = (dw(c, s), x(c, h));
            let ours = time(iters, || l.forward(&xi));
            let candle = time(iters.min(3), || l.forward_candle(&xi));
            println!("  depthwise 3x3 s{s} {c}x{h}x{h}: {ours:8.2} vs {candle:8.2} (grouped conv2d)");
        }
        for (ci, co, h, k, s, p) in
            [(3, 32, 150, 7, 2, 0), (32, 32, 35, 3, 1, 1), (128, 128, 8, 3, 1, 1), (32, 32, 56, 1, 1, 0)]
        {
            let l = Conv2d::new("c", &vec![0.01; k * k * ci * co], [k, k, ci, co], s, Pads::uniform(p), &dev)?
                .with_activation(Activation::Relu)?;
            let xi = x(ci, h);
            let ours = time(iters, || l.forward(&xi));
            let candle = time(iters, || l.forward_candle(&xi));
            println!("  conv {k}x{k} s{s} {ci}->{co} {h}x{h}: {ours:8.2} vs {candle:8.2} (conv2d)");
        }
    }
    Ok(())
}
