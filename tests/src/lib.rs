//! Shared helpers for the end-to-end tests in `tests/tests/`: where the binary and the
//! data are, and how to run the binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The release `facebench` binary built by `make test` (`cargo build --release` first).
pub fn facebench_bin() -> PathBuf {
    // Test executables live in target/<profile>/deps/; the binary in target/<profile>/.
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("facebench");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build --release --workspace` (make test does)",
        bin.display()
    );
    bin
}

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The data root: `$FACEBENCH_DATA`, else `../shared/data` beside the repository.
pub fn data_root() -> PathBuf {
    let root =
        std::env::var_os("FACEBENCH_DATA").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/data"));
    assert!(
        root.join("lfw/pairs.txt").exists(),
        "data root {} has no lfw/pairs.txt: set FACEBENCH_DATA",
        root.display()
    );
    root
}

/// Runs `facebench ARGS` with the data root set; returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(facebench_bin()).args(args).env("FACEBENCH_DATA", data_root()).output().expect("run facebench")
}

/// A fresh scratch folder under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().join("e2e-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// SplitMix64: a tiny seeded generator, so fixtures need no extra dependency.
pub struct SplitMix(pub u64);
impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Approximately standard normal (sum of 12 uniforms - 6).
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64).sum::<f64>() - 6.0
    }
}

/// A stable 64-bit hash of a string (FNV-1a), to seed per-identity generators.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
