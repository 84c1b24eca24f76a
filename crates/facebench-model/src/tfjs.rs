//! Reader for TensorFlow.js weight files, shared by every face-api / human-models network.
//!
//! A TF.js model is a JSON manifest plus one or more binary shards. The JSON is either a plain
//! weights manifest (a list of groups, as face-api ships) or a graph model whose
//! `weightsManifest` holds that list (as human-models ships). Each group lists `paths` (shards,
//! concatenated in order) and `weights` packed back to back in manifest order, unaligned,
//! little-endian. Dequantisation follows tfjs-core `io_utils.decodeWeight` exactly: uint8/uint16
//! `q * scale + min` computed in f64 then stored as f32 (int32: `Math.round` of it), float16 is
//! IEEE half. Reproducing the f64 step is what makes the weights bit-identical to TF.js.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Decoded values of one weight, in the dtype TF.js would hold them in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightValues {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// One named weight of the manifest, decoded, in TF's own layout (HWIO filters, `[in,out]` dense).
#[derive(Debug, Clone)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: WeightValues,
}

/// All weights of one TF.js model, in manifest order, looked up by name.
#[derive(Debug, Clone)]
pub struct TfjsWeights {
    manifest: PathBuf,
    weights: Vec<Weight>,
    index: HashMap<String, usize>,
    sha256: String,
}

/// How a stored value is encoded in the shard bytes.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    F32,
    I32,
    F16,
    Bool,
    /// `q * scale + min` in f64, `q` unsigned of 1 or 2 bytes.
    Affine {
        bytes: usize,
        scale: f64,
        min: f64,
    },
}

impl Encoding {
    fn bytes_per_value(self) -> usize {
        match self {
            Encoding::F32 | Encoding::I32 => 4,
            Encoding::F16 => 2,
            Encoding::Bool => 1,
            Encoding::Affine { bytes, .. } => bytes,
        }
    }
}

impl TfjsWeights {
    /// Reads a manifest (`*-weights_manifest.json` or a graph-model `model.json`) and its shards,
    /// which are resolved relative to the manifest's folder.
    pub fn load(manifest_path: impl AsRef<Path>) -> Result<Self> {
        let manifest = manifest_path.as_ref().to_path_buf();
        let text = std::fs::read(&manifest).map_err(|e| Error::io(&manifest, e))?;
        let json: Value =
            serde_json::from_slice(&text).map_err(|e| Error::corrupt(&manifest, format!("not valid JSON: {e}")))?;
        let groups = match &json {
            Value::Array(groups) => groups,
            Value::Object(obj) => match obj.get("weightsManifest") {
                Some(Value::Array(groups)) => groups,
                _ => {
                    return Err(Error::corrupt(
                        &manifest,
                        "JSON object without a `weightsManifest` array (not a TF.js model)",
                    ))
                }
            },
            _ => return Err(Error::corrupt(&manifest, "not a TF.js weights manifest")),
        };
        let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut hasher = Sha256::new();
        let mut weights = Vec::new();
        let mut index = HashMap::new();
        for (gi, group) in groups.iter().enumerate() {
            let bad = |msg: String| Error::corrupt(&manifest, format!("weightsManifest[{gi}]: {msg}"));
            let paths = group.get("paths").and_then(Value::as_array).ok_or_else(|| bad("no `paths` array".into()))?;
            let specs =
                group.get("weights").and_then(Value::as_array).ok_or_else(|| bad("no `weights` array".into()))?;
            // A group's bytes are its shards concatenated.
            let mut bytes = Vec::new();
            let mut shard_ends = Vec::new();
            for p in paths {
                let p = p.as_str().ok_or_else(|| bad("non-string entry in `paths`".into()))?;
                let shard = dir.join(p);
                let data = std::fs::read(&shard).map_err(|e| Error::io(&shard, e))?;
                hasher.update(&data);
                bytes.extend_from_slice(&data);
                shard_ends.push((shard, bytes.len()));
            }
            let shard_of = |offset: usize| -> PathBuf {
                shard_ends
                    .iter()
                    .find(|(_, end)| offset < *end)
                    .or(shard_ends.last())
                    .map(|(p, _)| p.clone())
                    .unwrap_or_else(|| manifest.clone())
            };
            let mut offset = 0usize;
            for (wi, spec) in specs.iter().enumerate() {
                let (name, shape, enc, out_i32) =
                    parse_spec(spec).map_err(|msg| bad(format!("weights[{wi}]: {msg}")))?;
                let count: usize = shape.iter().product();
                let size = count * enc.bytes_per_value();
                let end = offset + size;
                if end > bytes.len() {
                    return Err(Error::corrupt(
                        shard_of(bytes.len().saturating_sub(1)),
                        format!(
                            "truncated: weight {name} needs bytes {offset}..{end} but the group's shards hold {} bytes",
                            bytes.len()
                        ),
                    ));
                }
                let values = decode(&bytes[offset..end], enc, out_i32);
                offset = end;
                if index.insert(name.clone(), weights.len()).is_some() {
                    return Err(bad(format!("duplicate weight name {name}")));
                }
                weights.push(Weight { name, shape, values });
            }
            if offset != bytes.len() {
                return Err(Error::corrupt(
                    shard_of(offset),
                    format!("size mismatch: the manifest describes {offset} bytes but the shards hold {}", bytes.len()),
                ));
            }
        }
        let sha256 = hex(&hasher.finalize());
        Ok(TfjsWeights { manifest, weights, index, sha256 })
    }

    /// The manifest this was read from (named in every error).
    pub fn path(&self) -> &Path {
        &self.manifest
    }

    /// sha256 (hex) of the weight shards' bytes concatenated in manifest order; for a single-shard
    /// model that is `sha256sum` of its `.bin`. Identifies the weights for provenance records.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Weight names in manifest order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.weights.iter().map(|w| w.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn weight(&self, name: &str) -> Option<&Weight> {
        self.index.get(name).map(|&i| &self.weights[i])
    }

    /// Checks that the manifest holds exactly `expected` names; otherwise an error listing the
    /// missing and the unexpected ones (the file is some other model).
    pub fn expect_names<S: AsRef<str>>(&self, model: &str, expected: &[S]) -> Result<()> {
        let want: BTreeSet<&str> = expected.iter().map(|s| s.as_ref()).collect();
        let have: BTreeSet<&str> = self.names().collect();
        let missing: Vec<String> = want.difference(&have).map(|s| s.to_string()).collect();
        let unexpected: Vec<String> = have.difference(&want).map(|s| s.to_string()).collect();
        if missing.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        Err(Error::WrongWeights { path: self.manifest.clone(), model: model.to_string(), missing, unexpected })
    }

    fn lookup(&self, name: &str, shape: &[usize]) -> Result<&Weight> {
        let w = self.weight(name).ok_or_else(|| Error::Tensor {
            path: self.manifest.clone(),
            name: name.to_string(),
            msg: "not in the manifest".into(),
        })?;
        if w.shape != shape {
            return Err(Error::Tensor {
                path: self.manifest.clone(),
                name: name.to_string(),
                msg: format!("shape {:?}, expected {:?}", w.shape, shape),
            });
        }
        Ok(w)
    }

    /// The f32 values of `name`, checked against `shape` (TF layout).
    pub fn f32_values(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        match &self.lookup(name, shape)?.values {
            WeightValues::F32(v) => Ok(v),
            WeightValues::I32(_) => Err(Error::Tensor {
                path: self.manifest.clone(),
                name: name.to_string(),
                msg: "dtype int32, expected float32".into(),
            }),
        }
    }

    /// The int32 values of `name` (graph-model constants such as paddings), checked against `shape`.
    pub fn i32_values(&self, name: &str, shape: &[usize]) -> Result<&[i32]> {
        match &self.lookup(name, shape)?.values {
            WeightValues::I32(v) => Ok(v),
            WeightValues::F32(_) => Err(Error::Tensor {
                path: self.manifest.clone(),
                name: name.to_string(),
                msg: "dtype float32, expected int32".into(),
            }),
        }
    }

    /// `name` as an f32 candle tensor of `shape` (TF layout) on `device`.
    pub fn tensor(&self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        let v = self.f32_values(name, shape)?;
        Ok(Tensor::from_slice(v, shape, device)?)
    }

    /// All weights as a candle-nn `VarBuilder` (f32 weights as F32, int32 as I32), TF layout and
    /// TF names (`/` separators kept), for code that prefers candle-nn's API.
    pub fn var_builder(&self, device: &Device) -> Result<candle_nn::VarBuilder<'static>> {
        let mut map = HashMap::new();
        for w in &self.weights {
            let t = match &w.values {
                WeightValues::F32(v) => Tensor::from_slice(v, w.shape.as_slice(), device)?,
                WeightValues::I32(v) => Tensor::from_slice(v, w.shape.as_slice(), device)?,
            };
            map.insert(w.name.clone(), t);
        }
        Ok(candle_nn::VarBuilder::from_tensors(map, DType::F32, device))
    }
}

/// (name, shape, encoding, decodes-to-int32) of one manifest entry.
fn parse_spec(spec: &Value) -> std::result::Result<(String, Vec<usize>, Encoding, bool), String> {
    let name = spec.get("name").and_then(Value::as_str).ok_or("no `name`")?.to_string();
    let shape = spec
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{name}: no `shape`"))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{name}: shape is not a list of non-negative integers"))?;
    let dtype = spec.get("dtype").and_then(Value::as_str).ok_or_else(|| format!("{name}: no `dtype`"))?;
    let out_i32 = match dtype {
        "float32" | "float16" => false,
        "int32" | "bool" => true,
        other => return Err(format!("{name}: unsupported dtype {other:?}")),
    };
    let enc = match spec.get("quantization") {
        None | Some(Value::Null) => match dtype {
            "float32" => Encoding::F32,
            "float16" => Encoding::F16,
            "int32" => Encoding::I32,
            _ => Encoding::Bool,
        },
        Some(q) => {
            let qdtype =
                q.get("dtype").and_then(Value::as_str).ok_or_else(|| format!("{name}: quantization without dtype"))?;
            match qdtype {
                "uint8" | "uint16" => {
                    let num = |k: &str| {
                        q.get(k)
                            .and_then(Value::as_f64)
                            .ok_or_else(|| format!("{name}: {qdtype} quantization without `{k}`"))
                    };
                    let bytes = if qdtype == "uint8" { 1 } else { 2 };
                    Encoding::Affine { bytes, scale: num("scale")?, min: num("min")? }
                }
                // tfjs only dequantises float16 into float32 weights.
                "float16" if dtype == "float32" => Encoding::F16,
                other => return Err(format!("{name}: unsupported quantization {other:?} for dtype {dtype}")),
            }
        }
    };
    Ok((name, shape, enc, out_i32))
}

fn decode(bytes: &[u8], enc: Encoding, out_i32: bool) -> WeightValues {
    match enc {
        Encoding::F32 => {
            WeightValues::F32(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        Encoding::I32 => {
            WeightValues::I32(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        }
        Encoding::F16 => {
            WeightValues::F32(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
        }
        Encoding::Bool => WeightValues::I32(bytes.iter().map(|&b| (b != 0) as i32).collect()),
        Encoding::Affine { bytes: n, scale, min } => {
            let q =
                bytes
                    .chunks_exact(n)
                    .map(|b| if n == 1 { b[0] as f64 } else { u16::from_le_bytes([b[0], b[1]]) as f64 });
            if out_i32 {
                // JS Math.round: round half towards +infinity.
                WeightValues::I32(q.map(|q| (q * scale + min + 0.5).floor() as i32).collect())
            } else {
                WeightValues::F32(q.map(|q| (q * scale + min) as f32).collect())
            }
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_model(dir: &Path, manifest: &str, shards: &[(&str, Vec<u8>)]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for (name, data) in shards {
            std::fs::write(dir.join(name), data).unwrap();
        }
        let p = dir.join("model.json");
        std::fs::write(&p, manifest).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("facebench-tfjs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn decodes_every_dtype_in_manifest_order_across_shards() {
        let mut a = Vec::new();
        // f32 [2] = 1.5, -2
        a.extend_from_slice(&1.5f32.to_le_bytes());
        a.extend_from_slice(&(-2f32).to_le_bytes());
        // uint8 quantised [3]
        a.extend_from_slice(&[0, 1, 255]);
        let mut b = Vec::new();
        // float16 [1] = 0.333 (written as half)
        b.extend_from_slice(&half::f16::from_f32(0.333).to_le_bytes());
        // uint16 quantised [2]
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&1000u16.to_le_bytes());
        // int32 scalar
        b.extend_from_slice(&(-7i32).to_le_bytes());
        // int32 uint8-quantised [2]: 3*0.5-1 = 0.5 rounds up to 1, 1*0.5-1 = -0.5 rounds to -0
        b.extend_from_slice(&[3, 1]);
        let manifest = r#"{"format":"graph-model","weightsManifest":[{"paths":["a.bin","b.bin"],"weights":[
            {"name":"f","shape":[2],"dtype":"float32"},
            {"name":"q8","shape":[3],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.1,"min":-0.3}},
            {"name":"h","shape":[1],"dtype":"float32","quantization":{"dtype":"float16"}},
            {"name":"q16","shape":[1,2],"dtype":"float32","quantization":{"dtype":"uint16","scale":0.001,"min":0.5}},
            {"name":"i","shape":[],"dtype":"int32"},
            {"name":"qi","shape":[2],"dtype":"int32","quantization":{"dtype":"uint8","scale":0.5,"min":-1}}]}]}"#;
        let p = write_model(&tmpdir("ok"), manifest, &[("a.bin", a), ("b.bin", b)]);
        let w = TfjsWeights::load(&p).unwrap();
        assert_eq!(w.names().collect::<Vec<_>>(), ["f", "q8", "h", "q16", "i", "qi"]);
        assert_eq!(w.f32_values("f", &[2]).unwrap(), &[1.5, -2.0]);
        // f64 then f32, not f32 arithmetic
        let q8: Vec<f32> = [0.0f64, 1.0, 255.0].iter().map(|q| (q * 0.1 - 0.3) as f32).collect();
        assert_eq!(w.f32_values("q8", &[3]).unwrap(), q8.as_slice());
        assert_ne!(
            (1.0f32 * 0.1f32 - 0.3f32).to_bits(),
            q8[1].to_bits(),
            "test must distinguish f32 from f64 arithmetic"
        );
        assert_eq!(w.f32_values("h", &[1]).unwrap(), &[half::f16::from_f32(0.333).to_f32()]);
        assert_eq!(w.f32_values("q16", &[1, 2]).unwrap(), &[0.5, (1000.0f64 * 0.001 + 0.5) as f32]);
        assert_eq!(w.i32_values("i", &[]).unwrap(), &[-7]);
        assert_eq!(w.i32_values("qi", &[2]).unwrap(), &[1, 0]);
        let t = w.tensor("f", &[2], &Device::Cpu).unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![1.5, -2.0]);
        let vb = w.var_builder(&Device::Cpu).unwrap();
        assert_eq!(vb.get(3, "q8").unwrap().to_vec1::<f32>().unwrap(), q8);
        // sha256 over both shards in order
        let mut h = Sha256::new();
        h.update(std::fs::read(p.with_file_name("a.bin")).unwrap());
        h.update(std::fs::read(p.with_file_name("b.bin")).unwrap());
        assert_eq!(w.sha256(), hex(&h.finalize()));
    }

    #[test]
    fn errors_name_the_file_and_tensor() {
        let manifest = r#"[{"paths":["w.bin"],"weights":[{"name":"conv/filters","shape":[2,2],"dtype":"float32"}]}]"#;
        let dir = tmpdir("err");
        // truncated shard
        let p = write_model(&dir, manifest, &[("w.bin", vec![0u8; 12])]);
        let e = TfjsWeights::load(&p).unwrap_err().to_string();
        assert!(e.contains("w.bin") && e.contains("truncated") && e.contains("make models"), "{e}");
        // oversized shard
        std::fs::write(dir.join("w.bin"), vec![0u8; 20]).unwrap();
        let e = TfjsWeights::load(&p).unwrap_err().to_string();
        assert!(e.contains("size mismatch"), "{e}");
        // missing shard
        std::fs::remove_file(dir.join("w.bin")).unwrap();
        let e = TfjsWeights::load(&p).unwrap_err().to_string();
        assert!(e.contains("w.bin") && e.contains("make models"), "{e}");
        // wrong shape / missing name / name set
        std::fs::write(dir.join("w.bin"), vec![0u8; 16]).unwrap();
        let w = TfjsWeights::load(&p).unwrap();
        let e = w.f32_values("conv/filters", &[4]).unwrap_err().to_string();
        assert!(e.contains("conv/filters") && e.contains("[2, 2]") && e.contains("model.json"), "{e}");
        let e = w.expect_names("m", &["conv/filters", "fc/weights"]).unwrap_err().to_string();
        assert!(e.contains("missing tensors [fc/weights]") && !e.contains("unexpected"), "{e}");
        let e = w.expect_names("m", &["other"]).unwrap_err().to_string();
        assert!(e.contains("missing tensors [other]") && e.contains("unexpected tensors [conv/filters]"), "{e}");
        // not JSON
        std::fs::write(&p, "{nope").unwrap();
        let e = TfjsWeights::load(&p).unwrap_err().to_string();
        assert!(e.contains("model.json") && e.contains("JSON"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
