//! `cargo xtask layout`: the source layout's two rules, checked.
//!
//! - No source file holds more than [`MAX_LINES`] lines before its
//!   `#[cfg(test)]` part (test files and folders are not counted).
//! - No two files of a crate import each other, directly or round a loop:
//!   `crate::` and `super::` paths are resolved to the file of the module they
//!   name; an import of a module's own ancestor (a parent's re-export) is not a
//!   loop, since the parent only declares the child.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Most lines a source file may hold before its tests.
pub const MAX_LINES: usize = 700;

/// The source folders of the workspace's crates, relative to its root, and
/// whether they form one crate, or hold several crate roots (benchmarks,
/// binaries): then each subfolder is a crate of its own, and the files beside
/// them are only measured.
const SOURCE_DIRS: [(&str, bool); 8] = [
    ("crates/gamenet_core/src", true),
    ("crates/gamenet/src", true),
    ("crates/bevy_gamenet/src", true),
    ("crates/xtask/src", true),
    ("signaling/src", true),
    ("examples/arena/src", true),
    ("tests/src", false),
    ("benches/benches", false),
];

/// One module file: its module path inside the crate and what it imports.
struct Module {
    /// The file, relative to the workspace root.
    file: PathBuf,
    /// Its module path, `[]` for the crate root.
    path: Vec<String>,
    /// Its lines before `#[cfg(test)]`.
    code: String,
}

/// Checks both rules over every crate, printing each breach.
pub fn check(root: &Path) -> Result<()> {
    let mut breaches = Vec::new();
    for (dir, one_crate) in SOURCE_DIRS {
        let modules = read_crate(root, &root.join(dir))?;
        for m in &modules {
            let lines = m.code.lines().count();
            if lines > MAX_LINES {
                breaches.push(format!(
                    "{}: {lines} lines before its tests (at most {MAX_LINES})",
                    m.file.display()
                ));
            }
        }
        let crates = if one_crate {
            vec![modules]
        } else {
            let mut subfolders = Vec::new();
            for entry in std::fs::read_dir(root.join(dir))? {
                let path = entry?.path();
                if path.is_dir() {
                    subfolders.push(read_crate(root, &path)?);
                }
            }
            subfolders
        };
        for modules in &crates {
            for cycle in cycles(modules) {
                let names: Vec<String> = cycle
                    .iter()
                    .map(|&i| modules[i].file.display().to_string())
                    .collect();
                breaches.push(format!("import loop: {}", names.join(" <-> ")));
            }
        }
    }
    for b in &breaches {
        eprintln!("layout: {b}");
    }
    if !breaches.is_empty() {
        bail!("{} layout breaches", breaches.len());
    }
    eprintln!("layout: no file over {MAX_LINES} lines before its tests, no import loop");
    Ok(())
}

/// Every non-test `.rs` file under `src`, with its module path.
fn read_crate(root: &Path, src: &Path) -> Result<Vec<Module>> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    files.sort();
    let mut modules = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let mut path: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path.iter().any(|p| p == "tests") || path.last().is_some_and(|l| l == "golden") {
            continue;
        }
        if matches!(
            path.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            path.pop();
        }
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        let code = match test_block(&text) {
            Some(at) => text[..at].to_owned(),
            None => text,
        };
        modules.push(Module {
            file: file.strip_prefix(root).unwrap_or(&file).to_path_buf(),
            path,
            code,
        });
    }
    Ok(modules)
}

/// Where the file's inline test module starts: a `#[cfg(test)]` line followed
/// by `mod name {` (a `mod tests;` declaration is no test part).
fn test_block(text: &str) -> Option<usize> {
    let mut at = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim_end() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.starts_with("mod ") && next.trim_end().ends_with('{'))
        {
            return Some(at);
        }
        at += line.len();
    }
    None
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module paths each file's `crate::` and `super::` paths name.
fn imports(m: &Module) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let text = &m.code;
    for (at, _) in text
        .match_indices("crate::")
        .chain(text.match_indices("super::"))
    {
        // Only whole words: not `gamenet_core::` or `my_crate::`.
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let mut base: Vec<String> = if text[at..].starts_with("crate::") {
            Vec::new()
        } else {
            m.path.clone()
        };
        let mut rest = &text[at..];
        if rest.starts_with("crate::") {
            rest = &rest["crate::".len()..];
        }
        // `super::super::x`: each `super` climbs one module.
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        for segment in rest.split("::") {
            let ident: String = segment
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() || ident.len() != segment.len() {
                if !ident.is_empty() {
                    base.push(ident);
                }
                break;
            }
            base.push(ident);
        }
        out.push(base);
    }
    out
}

/// The import loops between the files of one crate, each as file indices.
fn cycles(modules: &[Module]) -> Vec<Vec<usize>> {
    let by_path: BTreeMap<&[String], usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.as_slice(), i))
        .collect();
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); modules.len()];
    for (i, m) in modules.iter().enumerate() {
        for target in imports(m) {
            // The deepest module file the path names.
            let Some(j) = (0..=target.len())
                .rev()
                .find_map(|n| by_path.get(&target[..n]).copied())
            else {
                continue;
            };
            let to = &modules[j].path;
            let ancestor = to.len() <= m.path.len() && m.path[..to.len()] == to[..];
            if !ancestor {
                edges[i].insert(j);
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect()
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let n = edges.len();
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &[&str], code: &str) -> Module {
        Module {
            file: PathBuf::from(path.join("/")),
            path: path.iter().map(|s| s.to_string()).collect(),
            code: code.to_owned(),
        }
    }

    #[test]
    fn only_an_inline_test_module_ends_the_counted_part() {
        let text = "use x;\n#[cfg(test)]\nmod tests;\nfn a() {}\n#[cfg(test)]\nmod tests {\n}\n";
        let at = test_block(text).unwrap();
        assert_eq!(&text[..at], "use x;\n#[cfg(test)]\nmod tests;\nfn a() {}\n");
        assert_eq!(test_block("fn a() {}\n"), None);
    }

    #[test]
    fn a_loop_between_siblings_is_found() {
        let modules = [
            module(&[], "mod a; mod b; pub use a::X;"),
            module(&["a"], "use crate::b::Y;"),
            module(&["b"], "use super::a::{X, Z};"),
        ];
        assert_eq!(cycles(&modules), vec![vec![1, 2]]);
    }

    #[test]
    fn imports_of_ancestors_and_one_way_imports_are_no_loop() {
        let modules = [
            module(&[], "mod a; mod b; pub use a::X; use crate::a::deep::Q;"),
            module(&["a"], "use crate::Instant; use crate::b::Y;"),
            module(&["a", "deep"], "use super::super::Instant; use super::Z;"),
            module(
                &["b"],
                "use gamenet_core::a::X; fn f() -> my_crate::a::X {}",
            ),
        ];
        assert!(cycles(&modules).is_empty());
    }
}
