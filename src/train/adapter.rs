//! The trained LoRA as a GGUF adapter that llama.cpp loads over the unchanged
//! base: `general.architecture` the base's, `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and f32 tensors
//! `<base tensor>.lora_a` (ggml ne `[in, r]`, i.e. PEFT's `[r, in]`) and
//! `.lora_b` (ne `[r, out]`, PEFT's `[out, r]`).

use std::path::Path;

use super::TrainError;
use super::lora::Lora;
use super::model::Model;
use crate::llm::gguf::{Value, Writer};

/// Write `lora` (trained on a base of `architecture`) as a GGUF adapter at `path`.
pub fn export(lora: &Lora, architecture: &str, name: &str, path: &Path) -> Result<(), TrainError> {
    export_sealed(
        lora,
        architecture,
        name,
        path,
        &crate::store::Sealer::plain(),
    )
}

/// [`export`], sealed by `sealer` (an encrypted store's adapters are
/// encrypted at rest; chat decrypts them into memory to load them).
pub fn export_sealed(
    lora: &Lora,
    architecture: &str,
    name: &str,
    path: &Path,
    sealer: &crate::store::Sealer,
) -> Result<(), TrainError> {
    let mut w = Writer::new();
    w.kv("general.architecture", Value::Str(architecture.into()))
        .kv("general.type", Value::Str("adapter".into()))
        .kv("general.name", Value::Str(name.into()))
        .kv("adapter.type", Value::Str("lora".into()))
        .kv("adapter.lora.alpha", Value::F32(lora.config.alpha as f32));
    for p in &lora.pairs {
        for (suffix, var) in [("lora_a", &p.a), ("lora_b", &p.b)] {
            let t = var.as_tensor();
            let (rows, cols) = t.dims2()?;
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            // Row-major `[rows, cols]` is ggml's ne `[cols, rows]`.
            w.tensor_f32(
                &format!("{}.{suffix}", p.base),
                &[cols as u64, rows as u64],
                &data,
            );
        }
    }
    // Written beside and renamed (Sealer::write), so a reader never sees half an adapter.
    sealer
        .write(path, &w.to_bytes())
        .map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Write the base model, every tensor dequantized to f32 and `lora` (if any)
/// merged in (`W + alpha / r * B A`), as a new GGUF at `out`: what llama.cpp
/// computes with base + adapter as one model, and an exact reference for
/// comparing our forward pass with llama.cpp's.
pub fn write_f32(model: &Model, lora: Option<&Lora>, out: &Path) -> Result<(), TrainError> {
    use candle_core::quantized::gguf_file;
    let path = &model.path;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TrainError::Io { path: p, source }
    };
    let bad = |why: String| TrainError::BadModel {
        path: path.clone(),
        why,
    };
    let header = crate::llm::gguf::Gguf::open(path).map_err(|e| bad(e.to_string()))?;
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut w = Writer::new();
    for (k, v) in &header.metadata {
        let v = match v {
            _ if k == "general.file_type" => Value::U32(0),
            // Our reader keeps only the length of long arrays (the vocabulary):
            // take their items from candle's, the element type from ours.
            Value::Array { elem, len, items } if (items.len() as u64) < *len => {
                let full = content
                    .metadata
                    .get(k)
                    .and_then(|c| c.to_vec().ok())
                    .ok_or_else(|| bad(format!("metadata {k} cannot be read")))?;
                Value::Array {
                    elem: *elem,
                    len: *len,
                    items: full.iter().map(from_candle).collect(),
                }
            }
            v => v.clone(),
        };
        w.kv(k, v);
    }
    let cpu = candle_core::Device::Cpu;
    for info in &header.tensors {
        let name = &info.name;
        let mut t = content.tensor(&mut reader, name, &cpu)?.dequantize(&cpu)?;
        if let Some(p) = lora.and_then(|l| l.pairs.iter().find(|p| &p.base == name)) {
            let l = lora.expect("found in it");
            let ba = p.b.as_tensor().matmul(p.a.as_tensor())?.to_device(&cpu)?;
            t = (t + (ba * (l.config.alpha / l.config.rank as f64))?)?;
        }
        let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
        w.tensor_f32(name, &info.dims, &data);
    }
    w.write(out).map_err(io(out))
}

fn from_candle(v: &candle_core::quantized::gguf_file::Value) -> Value {
    use candle_core::quantized::gguf_file::Value as C;
    match v {
        C::U8(x) => Value::U8(*x),
        C::I8(x) => Value::I8(*x),
        C::U16(x) => Value::U16(*x),
        C::I16(x) => Value::I16(*x),
        C::U32(x) => Value::U32(*x),
        C::I32(x) => Value::I32(*x),
        C::U64(x) => Value::U64(*x),
        C::I64(x) => Value::I64(*x),
        C::F32(x) => Value::F32(*x),
        C::F64(x) => Value::F64(*x),
        C::Bool(x) => Value::Bool(*x),
        C::String(x) => Value::Str(x.clone()),
        C::Array(items) => {
            let items: Vec<Value> = items.iter().map(from_candle).collect();
            Value::Array {
                elem: items.first().map_or(8, Value::type_id),
                len: items.len() as u64,
                items,
            }
        }
    }
}
