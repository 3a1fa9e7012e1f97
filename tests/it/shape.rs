//! The shape of the code, checked on every run: a kind of target lives in its own
//! modules and is named elsewhere only by its registrations; every kind has taken
//! each step of docs/architecture.md's checklist; no file grows past 800 lines of
//! code. (`modules.rs` checks that no two sibling modules use each other.)
//!
//! The kinds are the folders of `src/source/`: a new kind is found as soon as its
//! module exists, and these tests then say which step it still misses.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Lines of code (neither blank nor only a comment) a file may have.
const MAX_LINES_OF_CODE: usize = 800;

/// Lines of code outside a kind's own modules that may name it: its module's
/// declaration and its registrations (the variant of `TargetKind`, its entry in
/// `KINDS`, its arms in `source::build` and `source::api_backend`, its settings type).
const MAX_NAMING_LINES: usize = 8;

/// Every kind: the folders of `src/source/`, by name (`kind:`).
fn kinds() -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("src/source"))
        .expect("src/source is readable")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.is_dir()
                .then(|| path.file_name()?.to_str().map(str::to_string))?
        })
        .collect();
    kinds.sort();
    assert!(kinds.len() >= 4, "kinds found: {kinds:?}");
    kinds
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of code of `text`: neither blank nor only a comment.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with("//")
    })
}

/// The lines of code before a file's test module, comments cut and string literals
/// left out (a message or a metric's help may name an engine).
fn production_code(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    // A string may go on over several lines.
    let mut quoted = false;
    let mut text = text.lines().peekable();
    while let Some(line) = text.next() {
        let test_module = text.peek().is_some_and(|next| {
            let next = next.trim_start();
            next.starts_with("mod ") || next.starts_with("pub(crate) mod ")
        });
        if line.trim() == "#[cfg(test)]" && test_module {
            break;
        }
        let line = match (quoted, line.find("//")) {
            (false, Some(cut)) => &line[..cut],
            _ => line,
        };
        let mut code = String::new();
        let mut escaped = false;
        for c in line.chars() {
            match (quoted, escaped, c) {
                (true, false, '\\') => escaped = true,
                (true, true, _) => escaped = false,
                (_, false, '"') => quoted = !quoted,
                (false, _, c) => code.push(c),
                _ => {}
            }
        }
        if !code.trim().is_empty() {
            lines.push(code);
        }
    }
    lines
}

/// Whether `line` names kind `kind`: its module (`kind::…`, `mod kind;`) or its
/// type (`Kind`, as in `TargetKind::Kind` and the settings type), as whole words.
fn names_kind(line: &str, kind: &str) -> bool {
    let type_name = format!("{}{}", kind[..1].to_uppercase(), &kind[1..]);
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == ';'))
        .collect();
    words.iter().any(|word| {
        word.split("::").any(|segment| {
            let segment = segment.trim_end_matches(';');
            segment == kind || segment == type_name
        })
    })
}

#[test]
fn no_file_has_more_than_800_lines_of_code() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "bench"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let n = code_lines(&read(file)).count();
            (n > MAX_LINES_OF_CODE).then(|| format!("{} ({n})", file.display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "over {MAX_LINES_OF_CODE} lines of code: split them by what they do: {long:?}"
    );
}

#[test]
fn a_kind_is_named_only_by_its_modules_and_its_registrations() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    for kind in kinds() {
        let own_folder = Path::new(ROOT).join("src/source").join(&kind);
        let own_settings = Path::new(ROOT).join(format!("src/config/{kind}.rs"));
        let mut naming = Vec::new();
        for file in &files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if file.starts_with(&own_folder)
                || *file == own_settings
                || matches!(name, "tests.rs" | "testing.rs")
            {
                continue;
            }
            for line in production_code(&read(file)) {
                if names_kind(&line, &kind) {
                    let relative = file.strip_prefix(ROOT).unwrap_or(file);
                    naming.push(format!("{}: {}", relative.display(), line.trim()));
                }
            }
        }
        assert!(
            naming.len() <= MAX_NAMING_LINES,
            "kind `{kind}` is named by {} lines of code outside src/source/{kind}/ and \
             src/config/{kind}.rs (at most {MAX_NAMING_LINES}: its registrations); move \
             what it decides into its module:\n{}",
            naming.len(),
            naming.join("\n")
        );
    }
}

/// docs/architecture.md's checklist for a new kind, step by step.
#[test]
fn every_kind_has_taken_every_step_of_the_checklist() {
    let root = Path::new(ROOT);
    let config_mod = read(&root.join("src/config/mod.rs"));
    let source_mod = read(&root.join("src/source/mod.rs"));
    let configuration = read(&root.join("docs/configuration.md"));
    let example = read(&root.join("config.example.yaml"));
    let architecture = read(&root.join("docs/architecture.md"));
    let mut tests = Vec::new();
    rust_files(&root.join("tests/it"), &mut tests);
    let tests: Vec<String> = tests.iter().map(|file| read(file)).collect();
    for kind in kinds() {
        let type_name = format!("{}{}", kind[..1].to_uppercase(), &kind[1..]);
        let settings = read(&root.join(format!("src/config/{kind}.rs")));
        let module = read(&root.join(format!("src/source/{kind}/mod.rs")));
        let steps = [
            (
                "its settings and their checks, with its entry (`const KIND`), in src/config/{kind}.rs",
                settings.contains("pub(crate) const KIND: super::KindEntry"),
            ),
            (
                "its variant of TargetKind, and its entry in KINDS and TargetKind::entry",
                config_mod.contains(&format!("{type_name}({kind}::{type_name})"))
                    && config_mod.contains(&format!("&{kind}::KIND")),
            ),
            (
                "its Source, built in source::build",
                module.contains("impl Source for")
                    && source_mod.contains(&format!("TargetKind::{type_name}(")),
            ),
            (
                "what the session API serves of it, in source::api_backend",
                module.contains("pub fn api_backend(")
                    && source_mod.contains(&format!("{kind}::api_backend(")),
            ),
            (
                "its name in the `targets[].kind` row of docs/configuration.md, and its keys there \
                 or in a page of its own, docs/{kind}.md",
                configuration.lines().any(|line| {
                    line.starts_with("| `targets[].kind` |") && line.contains(&format!("`{kind}`"))
                }),
            ),
            (
                "a target of it in config.example.yaml",
                example.contains(&format!("kind: {kind}")),
            ),
            (
                "its place in docs/architecture.md",
                architecture.contains(&format!("source/{kind}/")),
            ),
            (
                "integration tests against a real server in tests/it",
                tests
                    .iter()
                    .any(|text| text.contains(&format!("kind: {kind}"))),
            ),
        ];
        let missing: Vec<String> = steps
            .iter()
            .filter(|(_, done)| !done)
            .map(|(step, _)| step.replace("{kind}", &kind))
            .collect();
        assert!(
            missing.is_empty(),
            "kind `{kind}` misses steps of docs/architecture.md's checklist: {missing:?}"
        );
    }
}

#[test]
fn a_line_names_a_kind_by_its_module_or_its_type_only() {
    assert!(names_kind("mod mysql;", "mysql"));
    assert!(names_kind(
        "TargetKind::Mysql(s) => mysql::api_backend(t, s, l),",
        "mysql"
    ));
    assert!(names_kind("use crate::config::mysql::Mysql;", "mysql"));
    assert!(!names_kind("use mysql_async::Conn;", "mysql"));
    assert!(!names_kind("let mysqlish = 1;", "mysql"));
    assert_eq!(
        production_code(
            "let a = \"kind: mysql\"; // mysql::x\nfn f() {}\n#[cfg(test)]\nmod tests { mysql::x }"
        ),
        ["let a = ; ", "fn f() {}"]
    );
}
