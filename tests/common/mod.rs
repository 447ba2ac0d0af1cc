//! Shared by the integration tests that need a downloaded model.

use std::path::PathBuf;

/// `file` in `$TWIN_MODELS_DIR`, or `None` with the reason printed (the test
/// then skips): scripts/test.sh sets the folder and fetches the models.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("TWIN_MODELS_DIR") else {
        eprintln!(
            "SKIPPED: TWIN_MODELS_DIR is not set (scripts/test.sh sets it and fetches {file})"
        );
        return None;
    };
    let path = PathBuf::from(dir).join(file);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; `bash scripts/fetch-models.sh` fetches it",
            path.display()
        );
        None
    }
}
