//! Finding model files in the models folder, with what their GGUF headers say
//! (architecture, parameters, quantisation, context, chat template), and
//! `twin models`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::llm::gguf::{Gguf, ModelSummary, human_params};
use crate::status::human_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A llama.cpp model or adapter (`*.gguf`).
    Gguf,
    /// A sentence-embedding model folder (`model.safetensors` + `tokenizer.json`).
    Embedding,
    /// A whisper.cpp model (`ggml-*.bin`).
    Whisper,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFile {
    pub name: String,
    pub path: PathBuf,
    pub kind: ModelKind,
    pub bytes: u64,
    /// A GGUF file's header (`None` for other kinds, or when it cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf: Option<ModelSummary>,
    /// Why a GGUF file cannot be used: truncated, corrupt, not GGUF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ModelFile {
    /// A GGUF language model twin can chat with and fine-tune: no problem
    /// reading it, not an adapter, and not an encoder (the embedding model is
    /// a BERT GGUF). A file whose header was not read counts, as before.
    pub fn is_chat_model(&self) -> bool {
        self.kind == ModelKind::Gguf
            && self.problem.is_none()
            && self.gguf.as_ref().is_none_or(|g| {
                g.kind == "model"
                    && !g
                        .architecture
                        .as_deref()
                        .is_some_and(|a| a.contains("bert"))
            })
    }
}

/// Model files directly in `dir` or one folder below. A missing folder has none.
pub fn discover(dir: &Path) -> std::io::Result<Vec<ModelFile>> {
    let mut found = Vec::new();
    if !dir.exists() {
        return Ok(found);
    }
    scan(dir, 0, &mut found)?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn scan(dir: &Path, depth: usize, found: &mut Vec<ModelFile>) -> std::io::Result<()> {
    if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
        let bytes = std::fs::metadata(dir.join("model.safetensors"))?.len();
        found.push(ModelFile {
            name: file_name(dir),
            path: dir.to_path_buf(),
            kind: ModelKind::Embedding,
            bytes,
            gguf: None,
            problem: None,
        });
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = file_name(&path);
        let meta = entry.metadata()?;
        if meta.is_dir() {
            if depth < 1 {
                scan(&path, depth + 1, found)?;
            }
            continue;
        }
        let kind = if name.ends_with(".gguf") {
            ModelKind::Gguf
        } else if name.starts_with("ggml-") && name.ends_with(".bin") {
            ModelKind::Whisper
        } else {
            continue;
        };
        let (gguf, problem) = if kind == ModelKind::Gguf {
            match Gguf::open(&path) {
                Ok(g) => (Some(g.summary()), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        found.push(ModelFile {
            name,
            path,
            kind,
            bytes: meta.len(),
            gguf,
            problem,
        });
    }
    Ok(())
}

/// `twin models`: every model in the folder with its metadata.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub models: Vec<ModelFile>,
}

impl Report {
    pub fn gather(dir: &Path) -> std::io::Result<Report> {
        Ok(Report {
            dir: dir.to_path_buf(),
            models: discover(dir)?,
        })
    }
}

impl crate::jobs::Summary for Report {}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "models in {}", self.dir.display())?;
        if self.models.is_empty() {
            return write!(
                f,
                "  (none: `bash scripts/fetch-models.sh` fetches the default ones)"
            );
        }
        writeln!(
            f,
            "  {:<38} {:<9} {:>7} {:<8} {:>7} {:<9} {:>9}",
            "name", "arch", "params", "quant", "context", "template", "size"
        )?;
        for m in &self.models {
            let dash = || "-".to_string();
            match (&m.gguf, &m.problem) {
                (Some(g), _) => writeln!(
                    f,
                    "  {:<38} {:<9} {:>7} {:<8} {:>7} {:<9} {:>9}",
                    m.name,
                    g.architecture.clone().unwrap_or_else(dash),
                    human_params(g.parameters),
                    g.quantization.clone().unwrap_or_else(dash),
                    g.context_length.map(|c| c.to_string()).unwrap_or_else(dash),
                    if g.kind == "adapter" {
                        "(adapter)".to_string()
                    } else {
                        g.chat_template.clone().unwrap_or_else(|| "none".into())
                    },
                    human_bytes(m.bytes)
                )?,
                (None, Some(problem)) => writeln!(f, "  {:<38} PROBLEM: {problem}", m.name)?,
                (None, None) => writeln!(
                    f,
                    "  {:<38} {:<9} {:>7} {:<8} {:>7} {:<9} {:>9}",
                    m.name,
                    format!("{:?}", m.kind).to_lowercase(),
                    "-",
                    "-",
                    "-",
                    "-",
                    human_bytes(m.bytes)
                )?,
            }
        }
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_gguf_whisper_and_embedding_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.gguf"), b"GGUF").unwrap();
        crate::llm::tiny::TinyLlama::default()
            .write(&d.join("b.gguf"))
            .unwrap();
        std::fs::write(d.join("ggml-tiny.en.bin"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(d.join("minilm")).unwrap();
        std::fs::write(d.join("minilm/model.safetensors"), b"xx").unwrap();
        std::fs::write(d.join("minilm/tokenizer.json"), b"{}").unwrap();
        let found = discover(d).unwrap();
        let kinds: Vec<_> = found.iter().map(|m| (m.name.as_str(), m.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("a.gguf", ModelKind::Gguf),
                ("b.gguf", ModelKind::Gguf),
                ("ggml-tiny.en.bin", ModelKind::Whisper),
                ("minilm", ModelKind::Embedding)
            ]
        );
        assert_eq!(found[3].bytes, 2);
        // A four-byte file is cut short; the tiny model reads whole.
        assert!(
            found[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("truncated at byte 4")
        );
        let g = found[1].gguf.as_ref().unwrap();
        assert_eq!(g.architecture.as_deref(), Some("llama"));
        assert_eq!(g.chat_template.as_deref(), Some("chatml"));
        let text = Report {
            dir: d.to_path_buf(),
            models: found,
        }
        .to_string();
        assert!(text.contains("PROBLEM: file"), "{text}");
        assert!(text.contains("chatml"), "{text}");
    }

    #[test]
    fn only_language_models_count_as_chat_models() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tiny = crate::llm::tiny::TinyLlama::default();
        tiny.write(&d.join("base.gguf")).unwrap();
        tiny.write_adapter(&d.join("lora.gguf"), 2, 4.0).unwrap();
        std::fs::write(d.join("broken.gguf"), b"GGUF").unwrap();
        let mut found = discover(d).unwrap();
        // The embedding model as twin converts it: a BERT GGUF.
        let mut bert = found
            .iter()
            .find(|m| m.name == "base.gguf")
            .unwrap()
            .clone();
        bert.name = "all-MiniLM-L6-v2.gguf".into();
        bert.gguf.as_mut().unwrap().architecture = Some("bert".into());
        found.push(bert);
        let chat: Vec<&str> = found
            .iter()
            .filter(|m| m.is_chat_model())
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(chat, vec!["base.gguf"]);
    }

    #[test]
    fn missing_folder_has_no_models() {
        assert!(
            discover(Path::new("/nonexistent/twin/models"))
                .unwrap()
                .is_empty()
        );
    }
}
