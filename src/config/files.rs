//! `targets_files`: more files of targets beside the main one, each matched by a
//! pattern and read in a stable order, whose problems name their own file and lines.

use super::locate::KeyLines;
use super::{validate_targets, yaml_message, Checker, Defaults, Problem, RawTarget, Target};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A file matched by `targets_files`: targets only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargetsFile {
    #[serde(default)]
    targets: Vec<RawTarget>,
}

/// The files matching `pattern` (relative to `base_dir`), sorted so the target order
/// does not depend on the file system.
pub(super) fn expand_pattern(base_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base_dir.join(pattern);
    let full = full
        .to_str()
        .ok_or_else(|| format!("`{pattern}` is not valid UTF-8"))?;
    let matches =
        glob::glob(full).map_err(|err| format!("`{pattern}` is not a valid pattern: {err}"))?;
    let mut files = Vec::new();
    for entry in matches {
        match entry {
            Ok(path) if path.is_file() => files.push(path),
            Ok(_) => {}
            Err(err) => return Err(format!("cannot read a match of `{pattern}`: {err}")),
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one `targets_files` match; its problems name that file and its lines.
pub(super) fn load_targets_file(
    file: &Path,
    global: &Defaults,
    env: &dyn Fn(&str) -> Option<String>,
    check: &mut Checker,
    names: &mut HashSet<String>,
) -> Vec<Target> {
    let mut local = Checker {
        file: Some(file.to_path_buf()),
        lines: KeyLines::default(),
        problems: Vec::new(),
    };
    let targets = match std::fs::read_to_string(file) {
        Err(err) => {
            local.problem("targets", format!("cannot read this file: {err}"));
            Vec::new()
        }
        Ok(text) => match serde_yaml::from_str::<RawTargetsFile>(&text) {
            Err(err) => {
                local.problems.push(Problem {
                    file: Some(file.to_path_buf()),
                    line: err.location().map(|l| l.line()),
                    key: "targets".to_string(),
                    message: yaml_message(&err),
                });
                Vec::new()
            }
            Ok(raw) => {
                local.lines = KeyLines::index(&text);
                let base_dir = file.parent().unwrap_or(Path::new("."));
                validate_targets(raw.targets, global, base_dir, env, &mut local, names)
            }
        },
    };
    check.problems.append(&mut local.problems);
    targets
}
