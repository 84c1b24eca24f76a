//! Image decoding and face preprocessing for facebench.
//!
//! This crate turns image files into exactly the pixels a face model expects, without any
//! tensor library: decoding ([`decode_file`], [`decode_bytes`]; a bit-exact port of jpeg-js,
//! the decoder of face-api's reference outputs, with [`Decoder::JpegJs`]) gives an [`RgbImage`]; a
//! declarative [`Preprocess`] (serde, so protocol files can name it) crops, aligns and resizes
//! it to an [`ImageF32`]; [`to_tensor_data`] lays it out as NHWC or NCHW `f32` in the model's
//! value convention.
//!
//! Every geometric rule here is the one of a reference tool, named where it is implemented:
//! face-api's "dlib" alignment box and `padToSquare`, TF.js `resizeBilinear`, the area
//! (box-filter) resize of the reference inputs, and the ArcFace 5-point similarity warp
//! (Umeyama estimate as in skimage, bilinear inverse-mapped warp with a zero border as in
//! `cv2.warpAffine(..., borderValue=0)`).

mod decode;
mod error;
mod geometry;
mod jpegjs;
mod pixels;
mod preprocess;
mod resize;
mod tensor;

pub use decode::{decode_bytes, decode_bytes_with, decode_file, decode_file_with, Decoder};
pub use error::Error;
pub use geometry::{
    arcface_template, faceapi_dlib_box, points5_from_68, warp_similarity, PixelBox, Similarity, ARCFACE_112,
};
pub use image::RgbImage;
pub use jpegjs::decode_jpegjs;
pub use pixels::ImageF32;
pub use preprocess::{Border, Crop, FaceAnnotation, Preprocess};
pub use resize::{resize, resize_tf_bilinear_into, ResizeMode};
pub use tensor::{to_tensor_data, write_tensor_data, ChannelOrder, Layout, TensorSource, TensorSpec, ValueScale};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
