//! ARCHITECTURE.md's dependency rule, enforced: every `crate::` path in the product code
//! (tests excluded) must point at a module its row of the rule allows. The rule is read from
//! ARCHITECTURE.md itself, so the document and the code cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The rows of the table under "## Dependency rule": `| `module` | `a`, `b` |`.
fn rule(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section = architecture
        .split("\n## Dependency rule")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"## Dependency rule\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches('`').to_string())
                .filter(|n| !n.is_empty() && n != "—")
                .collect()
        };
        for module in names(cells[1]) {
            rows.insert(module, names(cells[2]));
        }
    }
    assert!(!rows.is_empty(), "the dependency rule table is empty");
    rows
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The product code of a file, without comments and test modules: an inline
/// `#[cfg(test)] mod x { … }` (always last in a file) ends it, and a `#[cfg(test)] mod x;`
/// declaration is skipped.
fn product_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            match lines.peek() {
                Some(next) if next.trim_start().starts_with("mod ") && next.ends_with(';') => {
                    lines.next();
                    continue;
                }
                Some(next) if next.trim_start().starts_with("mod ") => break,
                _ => {}
            }
        }
        let line = line.split("//").next().unwrap_or("");
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The top-level modules `code` names through `crate::`, including inside `use crate::{a, b}`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            used.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            used.insert(ident(rest));
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

#[test]
fn modules_depend_only_on_what_architecture_md_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rule = rule(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|m| m.trim_end_matches(".rs").to_string())
            .unwrap();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(allowed) = rule.get(&module) else {
            broken.push(format!(
                "src/{module}: not in ARCHITECTURE.md's dependency rule; add its row"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&product_code(&text)) {
            if used != module && !allowed.contains(&used) && !allowed.contains("*") {
                broken.push(format!(
                    "{}: uses `{used}`, which `{module}` may not (ARCHITECTURE.md, Dependency rule)",
                    Path::new("src").join(relative).display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_rule_has_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rule = rule(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    // Depth-first search over the allowed edges; `*` (the commands) is a sink by definition.
    fn visit(
        m: &str,
        rule: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!(
                "the dependency rule has a cycle: {}",
                path[at..].join(" → ")
            );
        }
        path.push(m.to_string());
        for next in rule.get(m).into_iter().flatten().filter(|n| *n != "*") {
            visit(next, rule, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in rule.keys() {
        visit(m, &rule, &mut Vec::new(), &mut done);
    }
}

#[test]
fn use_groups_and_comments_are_read_right() {
    let code = product_code(
        "#[cfg(test)]\nmod tests;\nuse crate::{money::Amount, state};\n// crate::cli in a comment\nlet x = crate::clock::now();\n#[cfg(test)]\nmod golden {\n    use crate::cli;\n}\n",
    );
    let used: Vec<String> = used_modules(&code).into_iter().collect();
    assert_eq!(used, ["clock", "money", "state"]);
}
