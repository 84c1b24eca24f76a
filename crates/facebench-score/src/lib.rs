//! Parallel cosine scoring.
