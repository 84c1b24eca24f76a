use std::path::PathBuf;

/// Everything that can go wrong between an image file and a model tensor. Messages name the
/// file (or the caller-given name of in-memory bytes) and the rule that was broken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: cannot decode image: {message}")]
    Decode { name: String, message: String },
    #[error("{name}: truncated {format} data ({detail})")]
    Truncated { name: String, format: &'static str, detail: String },
    #[error("preprocessing with crop `{crop}` needs {needed} for this face, and none was given")]
    MissingAnnotation { crop: &'static str, needed: &'static str },
    #[error("invalid face annotation: {0}")]
    BadAnnotation(String),
    #[error("invalid preprocessing description: {0}")]
    BadSpec(String),
    #[error("degenerate geometry: {0}")]
    Degenerate(String),
    #[error("tensor buffer has {got} floats, the image needs {needed}")]
    BufferSize { got: usize, needed: usize },
}
