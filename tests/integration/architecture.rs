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

/// The product code of a file: comments and `#[cfg(test)]` modules (inline ones by their
/// braces, and `mod x;` declarations) left out.
fn product_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") {
            if next.ends_with(';') {
                i += 2;
                continue;
            }
            // Skip to the brace that closes the module.
            let mut depth = 0i32;
            let mut j = i + 1;
            while j < lines.len() {
                depth += lines[j].matches('{').count() as i32;
                depth -= lines[j].matches('}').count() as i32;
                j += 1;
                if depth <= 0 && lines[j - 1].contains('}') {
                    break;
                }
            }
            i = j;
            continue;
        }
        code.push_str(without_comment(line));
        code.push('\n');
        i += 1;
    }
    code
}

/// `line` without a trailing `//` comment (one inside a string literal is kept).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for (k, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if k == 0 || bytes[k - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(k + 1) == Some(&b'/') => return &line[..k],
            _ => {}
        }
    }
    line
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first segments of every path in a `use` group body (`a::b, c::{d, e}`), nested
/// groups included: only their first segment names a module at this level.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (k, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                heads.push(ident(&group[k..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The body of the `{ … }` group at the start of `rest`, by brace matching.
fn group_body(rest: &str) -> &str {
    let mut depth = 0;
    for (k, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &rest[1..k];
                }
            }
            _ => {}
        }
    }
    &rest[1..]
}

/// The top-level modules `code` names through `crate::` (groups included), and through
/// `super::` chains that climb out of `module_path` (the file's module, e.g. `["daemon",
/// "housekeeping"]`) to the crate root.
fn used_modules(code: &str, module_path: &[String]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut names = |rest: &str| {
        if rest.starts_with('{') {
            used.extend(group_heads(group_body(rest)));
        } else {
            used.insert(ident(rest));
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with('$')
            || code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        names(&code[i + "crate::".len()..]);
    }
    for (i, _) in code.match_indices("super::") {
        if code[..i].ends_with("super::") {
            continue; // counted from the first `super` of the chain
        }
        let mut rest = &code[i..];
        let mut depth = module_path.len();
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            depth = depth.saturating_sub(1);
        }
        if depth == 0 {
            names(rest);
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
        // The file's module path: `daemon/housekeeping/gateway.rs` is daemon::housekeeping::gateway,
        // `daemon/mod.rs` is daemon.
        let mut module_path: Vec<String> = relative
            .with_extension("")
            .components()
            .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
            .collect();
        if module_path.last().is_some_and(|m| m == "mod") {
            module_path.pop();
        }
        for used in used_modules(&product_code(&text), &module_path) {
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
    let code = product_code(concat!(
        "#[cfg(test)]\nmod tests;\n",
        "use crate::{money::Amount, engine::{Engine, x::Y}, api::Z};\n",
        "// crate::cli in a comment\n",
        "let x = crate::clock::now(); let s = \"http://host\"; crate::state::A;\n",
        "#[cfg(test)]\nmod golden {\n    fn f() {\n        crate::cli::x();\n    }\n}\n",
        "pub fn after_the_tests() { crate::journal::x(); }\n",
        "use super::super::report;\n",
    ));
    let path = ["output".to_string(), "receipt".to_string()];
    let used: Vec<String> = used_modules(&code, &path).into_iter().collect();
    assert_eq!(
        used,
        [
            "api", "clock", "engine", "journal", "money", "report", "state"
        ]
    );
    // From a top-level file, one `super` reaches the crate root.
    let used = used_modules("use super::gateway::Outcome;", &["watchdog".to_string()]);
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["gateway"]);
}
