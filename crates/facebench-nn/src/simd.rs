//! The one CPU feature check: the vector level is detected once per process, and
//! `simd_kernel!` compiles a kernel body once per level and calls the
//! widest the CPU runs. A plain release build targets SSE2, so without this the hand-written
//! kernels would never use 256- or 512-bit vectors. No level enables FMA contraction (Rust
//! never fuses `a * b + c`), so every level computes bit-identical results.

use std::sync::OnceLock;

/// The widest vector instructions the CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    /// The build target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512F (with AVX2 + FMA).
    Avx512,
}

impl Simd {
    /// The level of this CPU, detected on first use.
    pub(crate) fn detect() -> Simd {
        static LEVEL: OnceLock<Simd> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                if avx2 && std::is_x86_feature_detected!("avx512f") {
                    return Simd::Avx512;
                }
                if avx2 {
                    return Simd::Avx2;
                }
            }
            Simd::Baseline
        })
    }
}

/// `simd_kernel!(fn name(args) => body_fn);` defines `name(args)`, which calls the
/// `#[inline(always)]` function `body_fn(args)` compiled for the CPU's [`Simd`] level.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path;) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            match $crate::simd::Simd::detect() {
                // SAFETY: the CPU runs these features (`Simd::detect`).
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Simd::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Simd::Avx2 => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}

pub(crate) use simd_kernel;
