//! Changing `config.toml` from twin itself (the Check-ins view's rule editor,
//! `twin checkin --add-rule`): only the keys asked for change; every comment,
//! blank line, key order and other setting stays as the person wrote it.
//! The file is replaced atomically (a temporary file beside it, then a rename),
//! and the result must load again before it replaces anything.

use std::io::Write;
use std::path::Path;

use super::{KEYS, Kind};

/// Set string-list keys (`section.name`, each registered in [`KEYS`] as a list)
/// in `file`, creating the file or its section when missing. An error names the
/// file and what to do; the file is then unchanged.
pub fn set_lists(file: &Path, values: &[(&str, &[String])]) -> Result<(), String> {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let mut doc: toml_edit::DocumentMut = src.parse().map_err(|e: toml_edit::TomlError| {
        let line = e
            .span()
            .map(|s| src[..s.start.min(src.len())].lines().count().max(1))
            .unwrap_or(1);
        format!(
            "{}:{line}: the file does not parse ({}); fix it first (`twin doctor` shows the problem)",
            file.display(),
            e.message()
        )
    })?;
    for (key, list) in values {
        let spec = KEYS
            .iter()
            .find(|k| k.key == *key)
            .ok_or_else(|| format!("`{key}` is not a config key"))?;
        if !matches!(spec.kind, Kind::StrList) {
            return Err(format!("`{key}` is not a list of strings"));
        }
        let (section, name) = key.split_once('.').expect("keys are section.name");
        let table = doc
            .entry(section)
            .or_insert_with(toml_edit::table)
            .as_table_like_mut()
            .ok_or_else(|| {
                format!(
                    "{}: `{section}` is not a table; make it a [{section}] section",
                    file.display()
                )
            })?;
        let mut array = toml_edit::Array::new();
        for v in list.iter() {
            array.push(v.as_str());
        }
        match table.get_mut(name) {
            // Keep the comment above the key and the spacing around its value.
            Some(toml_edit::Item::Value(old)) => {
                let decor = old.decor().clone();
                *old = toml_edit::Value::Array(array);
                *old.decor_mut() = decor;
            }
            Some(other) => *other = toml_edit::value(array),
            None => {
                table.insert(name, toml_edit::value(array));
            }
        }
    }
    let text = doc.to_string();
    // What we write must load as twin's config, or nothing is written.
    super::load_str(file, Some(&text), &|_| None).map_err(|e| e.to_string())?;
    write_atomic(file, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        opts.mode(mode);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_change_and_everything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let src = "# my twin\n[ui]\ntheme = \"light\" # bright\n\n[checkin]\n# when to say hi\nrules = [\"daily 08:30\"]   # mornings\nmax_per_day = 2\n";
        std::fs::write(&file, src).unwrap();
        set_lists(
            &file,
            &[
                ("checkin.rules", &["weekdays 18:00".to_string()]),
                ("checkin.disabled_rules", &["daily 08:30".to_string()]),
            ],
        )
        .unwrap();
        let out = std::fs::read_to_string(&file).unwrap();
        assert!(
            out.starts_with("# my twin\n[ui]\ntheme = \"light\" # bright\n"),
            "{out}"
        );
        assert!(
            out.contains("# when to say hi\nrules = [\"weekdays 18:00\"]   # mornings\n"),
            "{out}"
        );
        assert!(out.contains("max_per_day = 2"), "{out}");
        assert!(out.contains("disabled_rules = [\"daily 08:30\"]"), "{out}");
        let loaded = crate::config::load(&file, &|_| None).unwrap();
        assert_eq!(loaded.config.checkin.rules, vec!["weekdays 18:00"]);
        assert_eq!(loaded.config.checkin.disabled_rules, vec!["daily 08:30"]);
        assert_eq!(loaded.config.checkin.max_per_day, 2);
    }

    #[test]
    fn a_missing_file_is_created_and_a_broken_one_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("config.toml");
        set_lists(&file, &[("checkin.rules", &["daily 07:00".to_string()])]).unwrap();
        let loaded = crate::config::load(&file, &|_| None).unwrap();
        assert_eq!(loaded.config.checkin.rules, vec!["daily 07:00"]);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[checkin]\nrules = [\"daily 08:30\"\nx = 1\n").unwrap();
        let err = set_lists(&bad, &[("checkin.rules", &[])]).unwrap_err();
        assert!(
            err.contains("bad.toml:") && err.contains("fix it first"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&bad).unwrap(),
            "[checkin]\nrules = [\"daily 08:30\"\nx = 1\n"
        );
        let err = set_lists(&file, &[("checkin.max_per_day", &[])]).unwrap_err();
        assert!(err.contains("not a list"), "{err}");
    }
}
