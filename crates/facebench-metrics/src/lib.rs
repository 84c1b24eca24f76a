//! Verification and identification metrics.
