//! No import circles among the crate's modules: of two sibling modules (`config` and
//! `source`, `http` and `passthrough`, `source::oceanbase` and `source::dbss`), one
//! that uses the other, directly or through its submodules, must not be used back.
//! Leaf modules (status, errors, secrets, statistics, the web configuration) are what
//! keeps it so; this test keeps it checked.
//!
//! A module and its own submodules count as one unit: a kind's module implements its
//! parent's trait and the parent registers it, the one mutual reference the layout
//! allows (a crate and its modules do the same).
//!
//! It reads `src/` itself: every `use` tree and every path outside comments and test
//! code that starts with `crate`, `super`, `self` or a declared submodule, resolved to
//! the deepest module it names. (cargo-modules does the same from rust-analyzer's
//! view, but would have to be built from source on every CI run.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `module -> modules it uses`, for every non-test module of the library.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_files(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .into_iter()
        .filter_map(|file| Some((module_of(&src, &file)?, file)))
        .collect();
    let known: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("readable source file");
        let code = code_of(&text);
        let mut uses = BTreeSet::new();
        for path in paths(&code, &submodules(&code)) {
            if let Some(target) = resolve(module, &path, &known) {
                if target != *module {
                    uses.insert(target);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is `crate`. The binary
/// (`main.rs`) and test-only modules (`tests.rs`, `testing.rs`) are left out.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.last().map(String::as_str) {
        Some("main" | "tests" | "testing") => return None,
        Some("lib") if parts.len() == 1 => return Some("crate".to_string()),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts.join("::"))
}

/// The text without comments and without the inline `#[cfg(test)] mod …` at the end.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.ends_with('{'))
        {
            break;
        }
        let line = match line.find("//") {
            Some(cut) => &line[..cut],
            None => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The submodules a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn submodules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub ")
                .or_else(|| line.strip_prefix("pub(crate) "))
                .unwrap_or(line);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// Every path starting with `crate`, `super`, `self` or one of `children` (read as
/// `self::child`), with `use` trees expanded (`use super::{a, b::{c, d}}` gives
/// `super::a`, `super::b::c`, `super::b::d`).
fn paths(code: &str, children: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        let anchored = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| rest.starts_with(*p));
        let child = children
            .iter()
            .any(|c| rest.starts_with(c.as_str()) && rest[c.len()..].starts_with("::"));
        if boundary && (anchored || child) {
            let end = tree_end(rest);
            let mut prefix = if child {
                vec!["self".to_string()]
            } else {
                Vec::new()
            };
            expand(&rest[..end], &mut prefix, &mut found);
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// Where a path or `use` tree starting at `text` ends: the end of its last segment,
/// or the brace closing its group.
fn tree_end(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            c if depth == 0 && !(c.is_ascii_alphanumeric() || c == '_' || c == ':') => return i,
            _ => {}
        }
    }
    text.len()
}

/// Expands one `use` tree (`a::b::{c, d::e}`) into paths, each after `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let (head, group) = match tree.find('{') {
        Some(open) => (
            &tree[..open],
            Some(&tree[open + 1..tree.rfind('}').unwrap_or(tree.len())]),
        ),
        None => (tree, None),
    };
    let depth = prefix.len();
    prefix.extend(
        head.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_string),
    );
    match group {
        None => out.push(prefix.clone()),
        Some(group) => {
            for item in split_top_level(group) {
                let item = item.split(" as ").next().unwrap_or("").trim();
                if item == "self" || item.is_empty() {
                    out.push(prefix.clone());
                } else {
                    expand(item, prefix, out);
                }
            }
        }
    }
    prefix.truncate(depth);
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// The deepest known module `path` names, seen from `module`.
fn resolve(module: &str, path: &[String], known: &BTreeSet<&str>) -> Option<String> {
    let mut base: Vec<String> = match module {
        "crate" => Vec::new(),
        m => m.split("::").map(str::to_string).collect(),
    };
    let mut segments = path.iter().peekable();
    match segments.next()?.as_str() {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                base.pop();
            }
        }
        _ => return None,
    }
    let mut full = base;
    full.extend(segments.cloned());
    (0..=full.len()).rev().find_map(|n| {
        let candidate = if n == 0 {
            "crate".to_string()
        } else {
            full[..n].join("::")
        };
        known.contains(candidate.as_str()).then_some(candidate)
    })
}

/// The use graph between siblings: an edge `a::x::… -> a::y::…` is `a::x -> a::y`;
/// edges between a module and its own ancestors are left out (see the module docs).
fn sibling_graph(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let parts = |m: &str| -> Vec<String> {
        if m == "crate" {
            Vec::new()
        } else {
            m.split("::").map(str::to_string).collect()
        }
    };
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph {
        for to in targets {
            let (a, b) = (parts(from), parts(to));
            let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            if common == a.len() || common == b.len() {
                continue;
            }
            siblings
                .entry(a[..=common].join("::"))
                .or_default()
                .insert(b[..=common].join("::"));
        }
    }
    siblings
}

/// Every cycle, each as the modules along it (first repeated at the end).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_module_graph_has_no_cycles() {
    let graph = graph();
    assert!(graph.len() > 20, "modules were found: {graph:?}");
    // The reader sees what it must: a kind's module uses the shared leaves and
    // implements the session API's traits, and neither the session API nor the HTTP
    // side uses a kind.
    assert!(graph["source::oceanbase"].contains("source::collect"));
    assert!(graph["source::oceanbase::sessions"].contains("api::processlist"));
    for (module, uses) in &graph {
        if module.starts_with("api") || module.starts_with("http") {
            assert!(
                !uses
                    .iter()
                    .any(|u| u == "source::oceanbase" || u == "source::mysql"),
                "{module} uses a kind: {uses:?}"
            );
        }
    }
    let found = cycles(&sibling_graph(&graph));
    assert!(
        found.is_empty(),
        "import circles among src/ modules:\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" -> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn use_trees_are_expanded() {
    let code =
        "mod child;\nuse super::{a, b::{c, d as e}, self};\nlet x = crate::f::g(1);\nchild::h();";
    let found = paths(code, &submodules(code));
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "super::a",
            "super::b::c",
            "super::b::d",
            "super",
            "crate::f::g",
            "self::child::h"
        ]
    );
    let known = BTreeSet::from(["crate", "a", "a::b", "c"]);
    let path = |p: &str| p.split("::").map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        resolve("a::b", &path("super::x"), &known).as_deref(),
        Some("a")
    );
    assert_eq!(
        resolve("a::b", &path("crate::c::T"), &known).as_deref(),
        Some("c")
    );
    assert_eq!(
        resolve("a", &path("self::b::f"), &known).as_deref(),
        Some("a::b")
    );
}

#[test]
fn a_circle_between_siblings_is_found_and_parent_child_uses_are_not() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["a::x"]),
        ("a::x", vec!["a", "b::y"]),
        ("b", vec![]),
        ("b::y", vec!["a::z"]),
        ("a::z", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(cycles(&sibling_graph(&graph)), [["a", "b", "a"]]);
}
