//! Path completion for the import prompt, like a shell's: `~` expands, a
//! unique match completes, several extend to their common prefix.

use std::path::{Path, PathBuf};

/// `~/x` -> `$HOME/x`.
pub fn expand_tilde(input: &str) -> PathBuf {
    match (input.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(input),
    }
}

/// Complete `input`; returns the new input and the candidate names (at most 50).
pub fn complete(input: &str) -> (String, Vec<String>) {
    let (dir_part, stem) = match input.rfind('/') {
        Some(i) => (&input[..=i], &input[i + 1..]),
        None => ("", input),
    };
    let dir = if dir_part.is_empty() {
        PathBuf::from(".")
    } else {
        expand_tilde(dir_part)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (input.to_string(), Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let is_dir =
                e.file_type().map(|t| t.is_dir()).unwrap_or(false) || dir.join(&name).is_dir();
            Some(if is_dir { format!("{name}/") } else { name })
        })
        .collect();
    names.sort();
    let completed = match names.as_slice() {
        [] => return (input.to_string(), Vec::new()),
        [one] => format!("{dir_part}{one}"),
        many => format!("{dir_part}{}", common_prefix(many)),
    };
    let shown = if names.len() > 1 {
        names.into_iter().take(50).collect()
    } else {
        Vec::new()
    };
    (completed, shown)
}

fn common_prefix(names: &[String]) -> String {
    let first = &names[0];
    let mut end = first.len();
    for n in &names[1..] {
        end = end.min(
            first
                .bytes()
                .zip(n.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    first[..end].to_string()
}

/// Whether `p` exists, for a helpful message before starting a job.
pub fn exists(p: &Path) -> bool {
    p.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_unique_and_common_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        std::fs::create_dir(dir.path().join("exports")).unwrap();
        std::fs::write(dir.path().join("chat-2021.txt"), "").unwrap();
        std::fs::write(dir.path().join("chat-2022.txt"), "").unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        assert_eq!(
            complete(&format!("{d}/ex")),
            (format!("{d}/exports/"), vec![])
        );
        let (c, cands) = complete(&format!("{d}/ch"));
        assert_eq!(c, format!("{d}/chat-202"));
        assert_eq!(cands, vec!["chat-2021.txt", "chat-2022.txt"]);
        assert_eq!(complete(&format!("{d}/zz")).0, format!("{d}/zz"));
        let (_, all) = complete(&format!("{d}/"));
        assert!(
            !all.iter().any(|n| n.starts_with('.')),
            "hidden files only when asked for"
        );
    }

    #[test]
    fn tilde_expands_to_home() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(expand_tilde("~/x"), PathBuf::from(&home).join("x"));
        assert_eq!(expand_tilde("~"), PathBuf::from(&home));
        assert_eq!(expand_tilde("/a/~b"), PathBuf::from("/a/~b"));
    }
}
