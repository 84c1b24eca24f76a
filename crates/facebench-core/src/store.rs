//! Embedding store formats (filled in by the store work).
