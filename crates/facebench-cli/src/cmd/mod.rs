pub mod bench;
pub mod eval;

/// Errors reach the user as one readable line.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;
