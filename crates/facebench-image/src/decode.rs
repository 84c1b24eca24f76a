use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};

use crate::{Error, Result};

/// Reads and decodes a JPEG, PNG or PGM/PPM file to 8-bit RGB (grey is replicated to the
/// three channels, 16-bit samples are scaled to 8 bits, alpha is dropped).
///
/// The format is taken from the file's content, not its extension. Unreadable, unknown,
/// corrupt and truncated files are errors naming the file.
pub fn decode_file(path: impl AsRef<Path>) -> Result<RgbImage> {
    decode_file_with(path, Decoder::Image)
}

/// Which decoder turns JPEG bytes into pixels; PNG and PGM/PPM always go through the `image`
/// crate. JPEG decoders legitimately differ by a few grey levels (chroma upsampling, IDCT,
/// colour rounding), enough to move a face detector's output by pixels, so checks against a
/// reference tool decode as that tool did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decoder {
    /// The `image` crate (zune-jpeg: libjpeg-turbo-like, interpolated chroma). The default.
    #[default]
    Image,
    /// The port of jpeg-js 0.4.4 ([`crate::decode_jpegjs`]), the decoder behind face-api's
    /// reference outputs (TF.js in node): replicated chroma, truncating colour conversion.
    JpegJs,
}

impl std::str::FromStr for Decoder {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "image" => Ok(Decoder::Image),
            "jpeg-js" | "jpegjs" => Ok(Decoder::JpegJs),
            other => Err(format!("unknown JPEG decoder `{other}` (expected `image` or `jpeg-js`)")),
        }
    }
}

impl std::fmt::Display for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Image => "image",
            Decoder::JpegJs => "jpeg-js",
        })
    }
}

/// [`decode_file`] with a choice of JPEG decoder.
pub fn decode_file_with(path: impl AsRef<Path>, decoder: Decoder) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    decode_bytes_with(&bytes, &path.display().to_string(), decoder)
}

/// Decodes an in-memory image (e.g. one entry of an InsightFace `.bin` pack); `name` is used
/// in error messages.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode_bytes_with(bytes, name, Decoder::Image)
}

/// [`decode_bytes`] with a choice of JPEG decoder (JPEG is recognised by its FF D8 start).
pub fn decode_bytes_with(bytes: &[u8], name: &str, decoder: Decoder) -> Result<RgbImage> {
    if decoder == Decoder::JpegJs && bytes.starts_with(&[0xFF, 0xD8]) {
        return crate::jpegjs::decode_jpegjs(bytes, name);
    }
    let decode_err = |message: String| Error::Decode { name: name.to_string(), message };
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| decode_err(e.to_string()))?;
    let format = reader
        .format()
        .ok_or_else(|| decode_err("unknown format (expected JPEG, PNG or PGM/PPM content)".to_string()))?;
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes, name)?;
    }
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Truncated { name: name.to_string(), format: format_name(format), detail: io.to_string() }
        }
        other => decode_err(other.to_string()),
    })?;
    Ok(img.to_rgb8())
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Pnm => "PNM",
        _ => "image",
    }
}

/// The JPEG decoder fills a cut-off scan with grey instead of failing, which would silently
/// embed a half-grey face: require an end-of-image marker (FF D9) after the last start-of-scan
/// marker (FF DA). Inside entropy-coded data a literal FF is always followed by 00, so these
/// markers cannot be faked by scan data; bytes some writers append after the end marker are
/// allowed.
fn check_jpeg_complete(bytes: &[u8], name: &str) -> Result<()> {
    let marker = |m: u8| move |w: &[u8]| w[0] == 0xFF && w[1] == m;
    let last_sos = bytes.windows(2).rposition(marker(0xDA));
    let complete = match last_sos {
        Some(sos) => bytes[sos..].windows(2).any(marker(0xD9)),
        // No scan at all: let the decoder report what is wrong.
        None => true,
    };
    if complete {
        Ok(())
    } else {
        Err(Error::Truncated {
            name: name.to_string(),
            format: "JPEG",
            detail: "no end-of-image marker FF D9 after the last scan".to_string(),
        })
    }
}
