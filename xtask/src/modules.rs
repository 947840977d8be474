//! `cargo xtask module-cycles`: the import graph between the modules of each crate, read from
//! their `crate::` and `super::` paths, and any cycle in it; and the library crates' order
//! ([`LAYERS`]), which no dependency may go up.
//!
//! An edge from module `a::b` to `c::d` is an edge between the two siblings under their lowest
//! common ancestor (`a` and `c`, under the crate root): a module may use its children and its
//! ancestors, but siblings import one way (docs/architecture.md). Test modules (`#[cfg(test)]`) are
//! left out: a test may reach anywhere in its crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::project_root;

/// The library crates (under `crates/`) from the bottom up: each may depend only on those
/// before it (docs/architecture.md draws the same order).
const LAYERS: [&str; 10] = [
    "qa-data",
    "qa-stage",
    "qa-squad",
    "qa-metrics",
    "qa-filters",
    "t5-lora",
    "t5-stage",
    "qa-synth",
    "qa-report",
    "qa-experiment",
];

/// A module's path inside its crate (`["train", "state"]`; empty for the crate root).
type ModulePath = Vec<String>;

/// Checks every crate of the workspace (`crates/`, `bins/`, `xtask`) and the library crates'
/// order, and fails naming each cycle and each dependency on a crate after its own in
/// [`LAYERS`].
pub fn module_cycles() -> anyhow::Result<()> {
    let root = project_root();
    let mut packages: Vec<PathBuf> = Vec::new();
    for group in ["crates", "bins"] {
        let dir = root.join(group);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            packages.push(entry?.path());
        }
    }
    packages.push(root.join("xtask"));
    packages.sort();
    let mut found = Vec::new();
    let mut modules = 0;
    for package in &packages {
        let src = package.join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = ModuleGraph::read(&src)?;
        modules += graph.modules.len();
        for cycle in graph.cycles() {
            let name = package.strip_prefix(&root).unwrap_or(package);
            found.push(format!("{}: {}", name.display(), cycle.join(" → ")));
        }
    }
    found.extend(upward_dependencies(&root)?);
    if !found.is_empty() {
        bail!(
            "module cycles or upward dependencies:\n  {}",
            found.join("\n  ")
        );
    }
    println!(
        "module-cycles: {} crates, {modules} modules, no cycle; no crate depends on one after it",
        packages.len()
    );
    Ok(())
}

/// Each dependency of a library crate (normal, optional included) on one at or after it in
/// [`LAYERS`], and each crate under `crates/` that the list leaves out.
fn upward_dependencies(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let dir = root.join("crates");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(layer) = LAYERS.iter().position(|known| *known == name) else {
            found.push(format!("crates/{name}: not in xtask's LAYERS"));
            continue;
        };
        let manifest = dir.join(&name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("{}", manifest.display()))?;
        for dependency in normal_dependencies(&text) {
            if let Some(at) = LAYERS.iter().position(|known| *known == dependency)
                && at >= layer
            {
                found.push(format!("crates/{name} depends on {dependency}, above it"));
            }
        }
    }
    Ok(found)
}

/// The names in a manifest's `[dependencies]` table.
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
        } else if inside && !line.starts_with('#') {
            let name = line.split(['.', '=', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The modules of one crate (each file under `src/`, binaries under `src/bin/` as roots of
/// their own) and the modules each one imports.
struct ModuleGraph {
    /// Every module, by path, with the file that holds it.
    modules: BTreeMap<ModulePath, PathBuf>,
    /// For each module, the modules its non-test code names through `crate::` or `super::`.
    uses: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

impl ModuleGraph {
    fn read(src: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        rust_files(src, &mut files)?;
        let mut modules = BTreeMap::new();
        for file in &files {
            let relative = file.strip_prefix(src).unwrap_or(file);
            if relative.starts_with("bin") {
                // A binary's own crate (src/bin/), whose modules are not this crate's: skipped.
                continue;
            }
            modules.insert(module_path(relative), file.clone());
        }
        let mut uses = BTreeMap::new();
        for (module, file) in &modules {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
            let code = without_tests(&strip_comments_and_literals(&text));
            let named: BTreeSet<ModulePath> = named_paths(&code)
                .into_iter()
                .filter_map(|path| resolve(module, &path))
                .filter_map(|path| longest_module(&modules, &path))
                .filter(|target| target != module)
                .collect();
            uses.insert(module.clone(), named);
        }
        Ok(ModuleGraph { modules, uses })
    }

    /// The edges between siblings, each as (parent, from, to): `a::b` naming `c::d` is `a` to
    /// `c` under the root; a module naming its own ancestor or descendant is no edge.
    fn sibling_edges(&self) -> BTreeSet<(ModulePath, ModulePath, ModulePath)> {
        let mut edges = BTreeSet::new();
        for (from, targets) in &self.uses {
            for to in targets {
                let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue;
                }
                let parent = from[..common].to_vec();
                edges.insert((parent, from[..=common].to_vec(), to[..=common].to_vec()));
            }
        }
        edges
    }

    /// Cycles among siblings, each as its modules in order (the first repeated at the end):
    /// the shortest through each module that no cycle reported before passes.
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut by_parent: BTreeMap<ModulePath, BTreeMap<ModulePath, BTreeSet<ModulePath>>> =
            BTreeMap::new();
        for (parent, from, to) in self.sibling_edges() {
            by_parent
                .entry(parent)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
        let mut cycles = Vec::new();
        for graph in by_parent.values() {
            let mut reported: BTreeSet<ModulePath> = BTreeSet::new();
            for start in graph.keys() {
                if reported.contains(start) {
                    continue;
                }
                if let Some(cycle) = cycle_through(graph, start) {
                    reported.extend(cycle.iter().cloned());
                    let mut names: Vec<String> = cycle.iter().map(display).collect();
                    names.push(display(start));
                    cycles.push(names);
                }
            }
        }
        cycles
    }
}

/// A shortest path from `start` back to itself in `graph`, without the final `start`.
fn cycle_through(
    graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
    start: &ModulePath,
) -> Option<Vec<ModulePath>> {
    let mut previous: BTreeMap<&ModulePath, &ModulePath> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for next in graph.get(module).into_iter().flatten() {
            if next == start {
                let mut path = vec![module.clone()];
                let mut at = module;
                while at != start {
                    at = previous[at];
                    path.push(at.clone());
                }
                path.reverse();
                return Some(path);
            }
            if !previous.contains_key(next) {
                previous.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    None
}

fn display(module: &ModulePath) -> String {
    match module.is_empty() {
        true => "crate".to_string(),
        false => module.join("::"),
    }
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `lib.rs`/`main.rs` is the root, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_path(relative: &Path) -> ModulePath {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !(matches!(stem, "mod") || parts.is_empty() && matches!(stem, "lib" | "main")) {
        parts.push(stem.to_string());
    }
    parts
}

/// `text` with comments removed and string and character literals emptied, so that braces and
/// paths inside them count for nothing.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#, with as many hashes on both ends.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{7f}'), or a lifetime ('a), left as it is.
            let literal_end = match next {
                Some('\\') => (i + 2..chars.len()).find(|&j| chars[j] == '\''),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(i + 2),
                _ => None,
            };
            match literal_end {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `code` without the items marked `#[cfg(test)]` (a test module, or a test-only import or
/// declaration): up to the end of the item's block, or its `;`.
fn without_tests(code: &str) -> String {
    let marker = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let item = &rest[at + marker.len()..];
        let block = item.find('{');
        let semicolon = item.find(';');
        let end = match (block, semicolon) {
            (Some(open), Some(semi)) if semi < open => semi + 1,
            (Some(open), _) => {
                let mut depth = 0;
                let mut end = item.len();
                for (offset, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(semi)) => semi + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Every path in `code` that starts with `crate` or `super`, as its segments, with `use`
/// groups expanded (`use crate::{a::B, c}` names `crate::a::B` and `crate::c`).
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate", "super"]
            .into_iter()
            .find(|word| matches_word(&bytes, i, word));
        match starts {
            Some(word) => {
                let (end, found) = path_tree(&bytes, i + word.len(), vec![word.to_string()]);
                paths.extend(found);
                i = end;
            }
            None => i += 1,
        }
    }
    paths
}

fn matches_word(chars: &[char], at: usize, word: &str) -> bool {
    let len = word.chars().count();
    at + len <= chars.len()
        && chars[at..at + len].iter().copied().eq(word.chars())
        && !ident_before(chars, at)
        && chars
            .get(at + len)
            .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'))
}

/// Reads `::segment…` or `::{tree, …}` after `prefix` from `at`; returns where it stopped and
/// every full path it names.
fn path_tree(chars: &[char], mut at: usize, prefix: Vec<String>) -> (usize, Vec<Vec<String>>) {
    let skip_space = |mut at: usize| {
        while chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        at
    };
    let mut path = prefix;
    loop {
        let after = skip_space(at);
        if !(chars.get(after) == Some(&':') && chars.get(after + 1) == Some(&':')) {
            return (at, vec![path]);
        }
        at = skip_space(after + 2);
        if chars.get(at) == Some(&'{') {
            let mut found = Vec::new();
            at += 1;
            loop {
                at = skip_space(at);
                match chars.get(at) {
                    Some('}') => return (at + 1, found),
                    Some(',') => at += 1,
                    None => return (at, found),
                    Some(_) => {
                        let (name, end) = identifier(chars, at);
                        if name.is_empty() {
                            at += 1;
                            continue;
                        }
                        let mut inner = path.clone();
                        if name != "self" {
                            inner.push(name);
                        }
                        let (end, paths) = path_tree(chars, end, inner);
                        found.extend(paths);
                        at = end;
                        // `as alias`, up to the next `,` or `}`.
                        while chars.get(at).is_some_and(|c| *c != ',' && *c != '}') {
                            at += 1;
                        }
                    }
                }
            }
        }
        let (name, end) = identifier(chars, at);
        if name.is_empty() {
            return (at, vec![path]);
        }
        path.push(name);
        at = end;
    }
}

fn identifier(chars: &[char], mut at: usize) -> (String, usize) {
    let mut name = String::new();
    while let Some(&c) = chars.get(at) {
        if c.is_alphanumeric() || c == '_' || (c == '*' && name.is_empty()) {
            name.push(c);
            at += 1;
            if c == '*' {
                break;
            }
        } else {
            break;
        }
    }
    (name, at)
}

/// `path` as seen from `module` made absolute (`super` is the module's parent, for `a/mod.rs`
/// as for `a.rs`); `None` when it climbs above the root.
fn resolve(module: &ModulePath, path: &[String]) -> Option<ModulePath> {
    let mut segments = path.iter();
    let mut absolute = match segments.next()?.as_str() {
        "crate" => Vec::new(),
        _ => module[..module.len().checked_sub(1)?].to_vec(),
    };
    for segment in segments {
        match segment.as_str() {
            "super" => {
                absolute.pop()?;
            }
            "*" => break,
            name => absolute.push(name.to_string()),
        }
    }
    Some(absolute)
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_module(modules: &BTreeMap<ModulePath, PathBuf>, path: &[String]) -> Option<ModulePath> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> ModuleGraph {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
            std::fs::write(path, text).expect("write");
        }
        ModuleGraph::read(dir.path()).expect("reads")
    }

    #[test]
    fn a_cycle_between_siblings_is_found_through_groups_and_super() {
        let found = graph(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\npub use a::X;\n"),
            ("a.rs", "use crate::{b::{self, Y}, c as other};\n"),
            ("b.rs", "pub struct Y;\nfn f() -> super::c::Z { todo!() }\n"),
            ("c.rs", "pub struct Z(crate::a::X);\n"),
        ])
        .cycles();
        assert_eq!(found, [vec!["a", "c", "a"], vec!["b", "c", "a", "b"]]);
    }

    #[test]
    fn a_manifests_dependencies_are_its_dependencies_table() {
        let manifest = "[package]\nname = \"x\"\n\n[dependencies]\n# a note\nqa-data.workspace = true\n\
                        qa-squad = { workspace = true, optional = true }\n\n[dev-dependencies]\n\
                        qa-stage.workspace = true\n";
        assert_eq!(normal_dependencies(manifest), ["qa-data", "qa-squad"]);
    }

    #[test]
    fn parents_children_tests_comments_and_strings_make_no_cycle() {
        let found = graph(&[
            ("lib.rs", "mod train;\nmod model;\n"),
            (
                "train/mod.rs",
                "mod data;\nuse data::Batch;\npub struct Config;\n\
                 #[cfg(test)]\nmod tests { use crate::model::M; fn f() { let _ = \"{\"; } }\n",
            ),
            (
                "train/data.rs",
                "use super::Config; // crate::model::M\nconst S: &str = \"crate::model\";\n\
                 const C: char = '{';\n",
            ),
            (
                "model.rs",
                "use crate::train::Config;\npub struct M<'a>(&'a str);\n",
            ),
        ])
        .cycles();
        assert!(found.is_empty(), "{found:?}");
    }
}
