//! Diagnostics for user files (config, keymaps, themes): every problem names the
//! file, the line and the column, and says what to do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, or `<built-in NAME>` for an embedded one.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at byte `span` of `src`.
    pub fn at(
        file: &Path,
        src: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = span.map(|s| line_col(src, s.start)).unwrap_or((1, 1));
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A TOML syntax or type error from the `toml` crate.
    pub fn from_toml(file: &Path, src: &str, err: &toml::de::Error) -> Self {
        Diagnostic::at(file, src, err.span(), err.message().trim().to_string())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..floor_char_boundary(src, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// The entries of a parsed TOML table in the order they appear in the file
/// (the parser's map is sorted by key), so "the later one wins" means what it says.
pub fn in_order<'a, 'i>(
    table: &'a toml::de::DeTable<'i>,
) -> Vec<(
    &'a toml::Spanned<toml::de::DeString<'i>>,
    &'a toml::Spanned<toml::de::DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 11), (2, 6));
        assert_eq!(line_col(src, 999), (3, 1));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_col("é = x", 3), (1, 3));
    }
}
