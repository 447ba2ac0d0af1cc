//! GGUF files without llama.cpp: read the header, the metadata and the tensor
//! table (never the weights) to say what a model is, and check that the file is
//! whole; and write small GGUF files (tests synthesize tiny models with it).
//!
//! Format (little-endian): `"GGUF"`, version u32, tensor count u64, metadata
//! count u64, the metadata `key: string, type: u32, value`, the tensor infos
//! `name, n_dims: u32, dims: u64 * n_dims, ggml type: u32, offset: u64`, then
//! the tensor data from the next multiple of `general.alignment` (default 32).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Longer strings or arrays than this are taken as corruption, not data.
const MAX_STRING: u64 = 1 << 30;
/// Arrays longer than this keep only their length in [`Value::Array`].
const KEEP_ARRAY_ITEMS: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a GGUF model file (it starts with {found:?}, not \"GGUF\"); pick a .gguf file"
    )]
    NotGguf { path: PathBuf, found: String },
    #[error(
        "file {path} is truncated at byte {at} (it needs {need} bytes): re-download it (bash scripts/fetch-models.sh)"
    )]
    Truncated { path: PathBuf, at: u64, need: u64 },
    #[error(
        "file {path} is corrupt at byte {at}: {what}; re-download it (bash scripts/fetch-models.sh)"
    )]
    Corrupt {
        path: PathBuf,
        at: u64,
        what: String,
    },
    #[error(
        "{path} is GGUF version {version}; twin reads versions 2 and 3: convert it with a current llama.cpp"
    )]
    Version { path: PathBuf, version: u32 },
}

/// A metadata value. Arrays longer than 64 items keep only their length.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array {
        elem: u32,
        len: u64,
        items: Vec<Value>,
    },
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// GGUF's type number for this value.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array { .. } => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer type as u64 (negative numbers are `None`).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// An array's length.
    pub fn array_len(&self) -> Option<u64> {
        match self {
            Value::Array { len, .. } => Some(*len),
            _ => None,
        }
    }

    /// A string array (written whole by [`Writer`]).
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        let items: Vec<Value> = items.into_iter().map(|s| Value::Str(s.into())).collect();
        Value::Array {
            elem: 8,
            len: items.len() as u64,
            items,
        }
    }

    pub fn i32s(items: impl IntoIterator<Item = i32>) -> Value {
        let items: Vec<Value> = items.into_iter().map(Value::I32).collect();
        Value::Array {
            elem: 5,
            len: items.len() as u64,
            items,
        }
    }

    pub fn f32s(items: impl IntoIterator<Item = f32>) -> Value {
        let items: Vec<Value> = items.into_iter().map(Value::F32).collect();
        Value::Array {
            elem: 6,
            len: items.len() as u64,
            items,
        }
    }
}

/// ggml tensor types twin knows the size of: `(id, name, block elements, block bytes)`.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
    (42, "Q2_0", 64, 18),
];

/// The name of a ggml tensor type (`"Q4_K"`), or `"type N"` for one twin does not know.
pub fn ggml_type_name(id: u32) -> String {
    GGML_TYPES
        .iter()
        .find(|t| t.0 == id)
        .map(|t| t.1.to_string())
        .unwrap_or_else(|| format!("type {id}"))
}

/// Bytes a tensor of `elements` of type `id` takes, when the type is known.
pub fn ggml_bytes(id: u32, elements: u64) -> Option<u64> {
    let &(_, _, block, bytes) = GGML_TYPES.iter().find(|t| t.0 == id)?;
    Some(elements.div_ceil(block) * bytes)
}

/// `general.file_type` (llama.cpp's `llama_ftype`) as people name it.
pub fn file_type_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// From the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A GGUF file's header, metadata and tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Where the tensor data starts.
    pub data_offset: u64,
    pub file_size: u64,
}

impl Gguf {
    /// Read a GGUF file's header and metadata, and check that it holds all its
    /// tensor data (a cut-short download is [`GgufError::Truncated`]).
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut r = Reader {
            inner: BufReader::with_capacity(1 << 16, file),
            pos: 0,
            size: file_size,
            path,
        };
        let magic = r.bytes(4)?;
        if magic != MAGIC {
            return Err(GgufError::NotGguf {
                path: path.to_path_buf(),
                found: String::from_utf8_lossy(&magic).into_owned(),
            });
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version {
                path: path.to_path_buf(),
                version,
            });
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        // Each entry takes at least 8 bytes; more than the file could hold is corruption.
        for (n, what) in [(n_tensors, "tensors"), (n_kv, "metadata entries")] {
            if n > file_size / 8 {
                return Err(r.corrupt(format!("it claims {n} {what}")));
            }
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(r.corrupt(format!("tensor {name} has {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64()?);
            }
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .filter(|a| *a > 0 && a.is_power_of_two())
            .unwrap_or(DEFAULT_ALIGNMENT);
        let data_offset = r.pos.next_multiple_of(alignment);
        let need = tensors
            .iter()
            .filter_map(|t| {
                let elements = t.dims.iter().try_fold(1u64, |a, d| a.checked_mul(*d))?;
                Some(data_offset + t.offset + ggml_bytes(t.ggml_type, elements)?)
            })
            .max()
            .unwrap_or(data_offset)
            .max(r.pos);
        if file_size < need {
            return Err(GgufError::Truncated {
                path: path.to_path_buf(),
                at: file_size,
                need,
            });
        }
        Ok(Gguf {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_offset,
            file_size,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// `general.architecture`: llama, gemma3, qwen2, ...
    pub fn architecture(&self) -> Option<&str> {
        self.str("general.architecture")
    }

    /// A key under the architecture's prefix: `arch_u64("context_length")`.
    pub fn arch_u64(&self, key: &str) -> Option<u64> {
        self.u64(&format!("{}.{key}", self.architecture()?))
    }

    /// Parameters: the elements of every tensor.
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).sum()
    }

    /// The quantisation, from `general.file_type`, else the type holding most bytes.
    pub fn quantization(&self) -> Option<String> {
        if let Some(name) = self.u64("general.file_type").and_then(file_type_name) {
            return Some(name.to_string());
        }
        let mut by_type: BTreeMap<u32, u64> = BTreeMap::new();
        for t in &self.tensors {
            *by_type.entry(t.ggml_type).or_default() +=
                ggml_bytes(t.ggml_type, t.elements()).unwrap_or(0);
        }
        by_type
            .into_iter()
            .max_by_key(|(_, bytes)| *bytes)
            .map(|(ty, _)| ggml_type_name(ty))
    }

    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.str("tokenizer.chat_template")
    }

    /// `tokenizer.ggml.model`: gpt2 (BPE), llama (SentencePiece), ...
    pub fn tokenizer_model(&self) -> Option<&str> {
        self.str("tokenizer.ggml.model")
    }

    pub fn vocab_size(&self) -> Option<u64> {
        self.get("tokenizer.ggml.tokens").and_then(Value::array_len)
    }

    pub fn name(&self) -> Option<&str> {
        self.str("general.name")
    }

    /// `general.type`: "model" (or absent) or "adapter".
    pub fn is_adapter(&self) -> bool {
        self.str("general.type") == Some("adapter")
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// What `twin models` shows.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            architecture: self.architecture().map(str::to_string),
            name: self.name().map(str::to_string),
            kind: if self.is_adapter() {
                "adapter"
            } else {
                "model"
            },
            parameters: self.parameters(),
            quantization: self.quantization(),
            context_length: self.context_length(),
            chat_template: self.chat_template().map(template_name),
            tokenizer: self.tokenizer_model().map(str::to_string),
            vocab_size: self.vocab_size(),
            tensors: self.tensors.len(),
        }
    }
}

/// The GGUF facts `twin models`, `status` and `doctor` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSummary {
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// "model" or "adapter".
    pub kind: &'static str,
    pub parameters: u64,
    pub quantization: Option<String>,
    pub context_length: Option<u64>,
    /// The chat template's family (chatml, gemma, llama3, ...; "custom" when not
    /// recognised); `None` when the file has no template.
    pub chat_template: Option<String>,
    pub tokenizer: Option<String>,
    pub vocab_size: Option<u64>,
    pub tensors: usize,
}

/// Recognise a chat template's family from the markers it writes, like llama.cpp does.
pub fn template_name(template: &str) -> String {
    let has = |s: &str| template.contains(s);
    let name = if has("<|im_start|>") {
        "chatml"
    } else if has("<start_of_turn>") {
        "gemma"
    } else if has("<|start_header_id|>") {
        "llama3"
    } else if has("<|user|>") && has("<|end|>") {
        "phi3"
    } else if has("<|user|>") {
        "zephyr"
    } else if has("[INST]") {
        "llama2"
    } else if has("<｜Assistant｜>") || has("<|Assistant|>") {
        "deepseek"
    } else {
        "custom"
    };
    name.to_string()
}

/// Parameters for people: 134.5M, 1.2B.
pub fn human_params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.architecture.as_deref().unwrap_or("?"),
            human_params(self.parameters),
            self.quantization.as_deref().unwrap_or("?")
        )
    }
}

struct Reader<'a> {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
    path: &'a Path,
}

impl Reader<'_> {
    fn corrupt(&self, what: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            at: self.pos,
            what,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                at: self.size,
                need: self.pos + buf.len() as u64,
            }),
            Err(source) => Err(GgufError::Io {
                path: self.path.to_path_buf(),
                source,
            }),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, GgufError> {
        let mut buf = vec![0; n];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length that must fit in the rest of the file (`unit` bytes per item).
    fn length(&mut self, what: &str, unit: u64) -> Result<u64, GgufError> {
        let at = self.pos;
        let n = self.u64()?;
        if n > MAX_STRING {
            self.pos = at;
            return Err(self.corrupt(format!("{what} of {n} items")));
        }
        let need = self.pos.saturating_add(n.saturating_mul(unit));
        if need > self.size {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                at: self.size,
                need,
            });
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.length("a string", 1)?;
        let bytes = self.bytes(n as usize)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        let need = self.pos + n;
        if need > self.size {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                at: self.size,
                need,
            });
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink()).map_err(
            |source| GgufError::Io {
                path: self.path.to_path_buf(),
                source,
            },
        )?;
        self.pos += copied;
        Ok(())
    }

    fn value(&mut self, ty: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let elem = self.u32()?;
                let width = fixed_width(elem);
                if elem == 9 || (elem != 8 && width.is_none()) {
                    return Err(self.corrupt(format!("an array of unknown type {elem}")));
                }
                let len = self.length("an array", width.unwrap_or(8))?;
                let mut items = Vec::new();
                if len <= KEEP_ARRAY_ITEMS {
                    for _ in 0..len {
                        items.push(self.value(elem)?);
                    }
                } else if let Some(w) = width {
                    self.skip(len * w)?;
                } else {
                    for _ in 0..len {
                        let n = self.length("a string", 1)?;
                        self.skip(n)?;
                    }
                }
                Value::Array { elem, len, items }
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => {
                self.pos -= 4;
                return Err(self.corrupt(format!("a metadata value of unknown type {other}")));
            }
        })
    }
}

/// Bytes of one item of a fixed-width metadata type.
fn fixed_width(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Builds a GGUF file: metadata in insertion order, then tensors.
#[derive(Debug, Default)]
pub struct Writer {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn kv(&mut self, key: &str, value: Value) -> &mut Writer {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// An f32 tensor; `dims` in ggml order (row length first).
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Writer {
        assert_eq!(
            dims.iter().product::<u64>(),
            data.len() as u64,
            "tensor {name}: dims and data disagree"
        );
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors
            .push((name.to_string(), dims.to_vec(), 0, bytes));
        self
    }

    /// A bfloat16 tensor from f32 values (rounded to nearest, ties to even);
    /// `dims` in ggml order.
    pub fn tensor_bf16(&mut self, name: &str, dims: &[u64], data: &[f32]) -> &mut Writer {
        assert_eq!(
            dims.iter().product::<u64>(),
            data.len() as u64,
            "tensor {name}: dims and data disagree"
        );
        let bytes = data
            .iter()
            .flat_map(|v| bf16_bits(*v).to_le_bytes())
            .collect();
        self.tensors
            .push((name.to_string(), dims.to_vec(), GGML_TYPE_BF16, bytes));
        self
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(path)?);
        w.write_all(&self.to_bytes())?;
        w.flush()
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut header, key);
            header.extend_from_slice(&value.type_id().to_le_bytes());
            write_value(&mut header, value);
        }
        let mut offset = 0u64;
        for (name, dims, ty, data) in &self.tensors {
            write_string(&mut header, name);
            header.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&ty.to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + data.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT);
        }
        let mut w = header;
        for (_, _, _, data) in &self.tensors {
            let pos = w.len() as u64;
            let pad = pos.next_multiple_of(DEFAULT_ALIGNMENT) - pos;
            w.extend(std::iter::repeat_n(0u8, pad as usize));
            w.extend_from_slice(data);
        }
        w
    }
}

/// ggml's type id of bfloat16 tensors.
pub const GGML_TYPE_BF16: u32 = 30;

/// The bfloat16 nearest to `x` (ties to even), as ggml stores it.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x40;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::Str(s) => write_string(out, s),
        Value::Array { elem, items, .. } => {
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        assert_eq!(bf16_bits(-2.0), 0xc000);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even one.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(bf16_bits(f32::MAX), 0x7f80); // rounds up to infinity
        assert!(bf16_bits(f32::NAN) & 0x7f != 0 && bf16_bits(f32::NAN) & 0x7f80 == 0x7f80);
    }

    fn small(dir: &Path) -> PathBuf {
        let path = dir.join("m.gguf");
        let mut w = Writer::new();
        w.kv("general.architecture", Value::Str("llama".into()))
            .kv("general.file_type", Value::U32(0))
            .kv("llama.context_length", Value::U32(512))
            .kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
            .kv(
                "tokenizer.ggml.tokens",
                Value::strings((0..100).map(|i| format!("t{i}"))),
            )
            .kv(
                "tokenizer.chat_template",
                Value::Str("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}".into()),
            )
            .tensor_f32("a", &[4, 3], &[0.5; 12])
            .tensor_f32("b", &[5], &[1.0; 5]);
        w.write(&path).unwrap();
        path
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gguf::open(&small(dir.path())).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.architecture(), Some("llama"));
        assert_eq!(g.parameters(), 17);
        assert_eq!(g.context_length(), Some(512));
        assert_eq!(g.quantization().as_deref(), Some("F32"));
        assert_eq!(g.vocab_size(), Some(100));
        assert_eq!(g.tokenizer_model(), Some("gpt2"));
        let s = g.summary();
        assert_eq!(s.chat_template.as_deref(), Some("chatml"));
        assert_eq!(s.kind, "model");
        assert_eq!(g.tensor("a").unwrap().dims, vec![4, 3]);
        assert_eq!(g.data_offset % 32, 0);
        assert_eq!(g.tensor("b").unwrap().offset, 64);
        assert_eq!(g.file_size, g.data_offset + 64 + 20);
    }

    #[test]
    fn a_cut_file_is_truncated_at_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = small(dir.path());
        let full = std::fs::read(&path).unwrap();
        // Cut in the tensor data, in the metadata, and in the magic.
        for cut in [full.len() - 10, 200, 3] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let err = Gguf::open(&path).unwrap_err();
            match &err {
                GgufError::Truncated { at, need, .. } => {
                    assert_eq!(*at, cut as u64, "{err}");
                    assert!(*need > *at);
                }
                other => panic!("cut at {cut}: {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("is truncated at byte {cut}")) && msg.contains("re-download"),
                "{msg}"
            );
        }
    }

    #[test]
    fn garbage_is_not_gguf_and_bad_types_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gguf");
        std::fs::write(&path, b"<html>not a model</html>").unwrap();
        let err = Gguf::open(&path).unwrap_err();
        assert!(matches!(err, GgufError::NotGguf { .. }), "{err}");
        assert!(err.to_string().contains("\"<htm\""), "{err}");

        let good = std::fs::read(small(dir.path())).unwrap();
        let mut bad = good.clone();
        // The first metadata value's type follows magic, version, counts and its key.
        let key_len = "general.architecture".len();
        let ty_at = 4 + 4 + 8 + 8 + 8 + key_len;
        bad[ty_at..ty_at + 4].copy_from_slice(&77u32.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let err = Gguf::open(&path).unwrap_err();
        match &err {
            GgufError::Corrupt { at, what, .. } => {
                assert_eq!(*at, ty_at as u64);
                assert!(what.contains("unknown type 77"), "{what}");
            }
            other => panic!("{other}"),
        }

        let mut huge = good;
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        let err = Gguf::open(&path).unwrap_err();
        assert!(matches!(err, GgufError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn template_families_are_recognised() {
        assert_eq!(template_name("<|im_start|>user"), "chatml");
        assert_eq!(template_name("<start_of_turn>user"), "gemma");
        assert_eq!(template_name("<|start_header_id|>"), "llama3");
        assert_eq!(template_name("{{ messages }}"), "custom");
        assert_eq!(human_params(134_515_008), "134.5M");
    }
}
