//! The shape of the tree, checked: modules import one way (no cycle between `ferrum/src`'s
//! top-level modules), no source file does two jobs' worth of lines, and RocksDB's column
//! families and write batch are named only inside `store/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines past which a file is doing two jobs (tests and generated references aside).
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file's path under `src/` and its text without its `#[cfg(test)]` part (unit tests may
/// reach anywhere).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            (p.strip_prefix(src()).unwrap().to_string_lossy().replace('\\', "/"), code)
        })
        .collect()
}

fn top_module(path: &str) -> &str {
    let first = path.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

/// `crate::x` references in `code`: the `x`s.
fn crate_refs(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter(|(at, _)| !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(at, m)| code[at + m.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .filter(|name: &String| !name.is_empty())
        .collect()
}

/// The modules of a strongly connected component of more than one module, if any.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability by repeated search: the graph is a few dozen nodes.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &reachable {
        let component: Vec<String> =
            r.iter().filter(|other| reachable.get(other).is_some_and(|back| back.contains(*m))).cloned().collect();
        if component.len() > 1 {
            found.insert(component);
        }
    }
    found.into_iter().collect()
}

#[test]
fn modules_import_one_way() {
    let files = sources();
    let modules: BTreeSet<&str> =
        files.iter().map(|(p, _)| top_module(p)).filter(|m| !matches!(*m, "lib" | "main")).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in &files {
        let from = top_module(path);
        if !modules.contains(from) {
            continue;
        }
        let deps = crate_refs(code).into_iter().filter(|d| d != from && modules.contains(d.as_str()));
        graph.entry(from.to_string()).or_default().extend(deps);
    }
    assert!(graph.len() > 10, "the walk found the modules: {graph:?}");
    assert!(graph["query"].contains("index"), "the walk sees imports: {graph:?}");
    assert_eq!(cycles(&graph), Vec::<Vec<String>>::new(), "import cycles between modules");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edges = |list: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in list {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert!(cycles(&edges(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(cycles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        crate_refs("use crate::index::Index; let a = mycrate::no; crate::store"),
        ["index", "store"].map(String::from).into()
    );
}

#[test]
fn no_file_does_two_jobs() {
    let mut long = Vec::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines = code.lines().count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "files over {MAX_LINES} lines: split them along their jobs: {long:?}");
}

#[test]
fn column_families_stay_in_the_store() {
    let names = ["cf_handle", "WriteBatch", "ColumnFamily"];
    let leaks: Vec<String> = sources()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("store/"))
        .flat_map(|(path, code)| {
            names.iter().filter(|n| code.contains(**n)).map(move |n| format!("{path}: {n}")).collect::<Vec<_>>()
        })
        .collect();
    assert!(leaks.is_empty(), "RocksDB's tables are store/'s business: {leaks:?}");
    let store = sources().into_iter().filter(|(p, _)| p.starts_with("store/")).map(|(_, c)| c).collect::<String>();
    assert!(store.contains("cf_handle"), "the check looks for what store/ really uses");
}
