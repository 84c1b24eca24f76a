pub mod align;
pub mod bench;
pub mod embed;
pub mod eval;
pub mod keys;
pub mod lfw_pipeline;
pub mod megaface;
pub mod provenance;
pub mod train;

/// Errors reach the user as one readable line.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;
