//! Finding model files in the models folder. The chat issue adds GGUF metadata
//! (architecture, parameters, template); this module only says what is there.

use std::path::{Path, PathBuf};

use serde::Serialize;

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
        found.push(ModelFile {
            name,
            path,
            kind,
            bytes: meta.len(),
        });
    }
    Ok(())
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
                ("ggml-tiny.en.bin", ModelKind::Whisper),
                ("minilm", ModelKind::Embedding)
            ]
        );
        assert_eq!(found[2].bytes, 2);
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
