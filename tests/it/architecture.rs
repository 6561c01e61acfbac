//! The layering of ARCHITECTURE.md, checked on the source text (a tidy
//! test, as rust-analyzer keeps them): an invariant that is only written
//! down becomes false.
//!
//! Every `src/**.rs` file belongs to the module named by its first path
//! component (`src/cli/decision.rs` → `cli`). Its code — comments, doc
//! comments, string literals and `#[cfg(test)]` modules left out — may name
//! `crate::<module>` only for the modules [`LAYERS`] allows it, and may
//! name the external crates in [`CRATES`] only where that table allows. Unit
//! tests are exempt, as dev-dependencies are: a test may look past the
//! layer it tests. A `super::` path may not climb out of its module (it
//! would hide an edge). `main.rs` and `lib.rs` tie everything together and
//! are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module of `src/` and the modules it may import. Listed foundation
/// first: a module may only use modules listed before it (checked by
/// `the_layers_have_no_cycle`). ARCHITECTURE.md shows this same table
/// (checked by `architecture_md_shows_the_same_layers`).
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("error_code", &[]),
    ("background", &[]),
    ("clock", &[]),
    ("middleware", &[]),
    ("proto", &[]),
    ("metrics", &["domain"]),
    ("telemetry", &[]),
    ("stats", &["domain"]),
    ("audit", &["domain"]),
    ("auth", &["domain", "error_code", "metrics"]),
    (
        "store",
        &["domain", "error_code", "stats", "clock", "metrics", "audit"],
    ),
    (
        "engine",
        &[
            "domain",
            "error_code",
            "middleware",
            "store",
            "metrics",
            "telemetry",
        ],
    ),
    ("executor", &["domain"]),
    (
        "manager",
        &[
            "domain",
            "error_code",
            "engine",
            "executor",
            "store",
            "stats",
            "clock",
            "metrics",
            "audit",
        ],
    ),
    (
        "watch",
        &[
            "domain",
            "error_code",
            "manager",
            "store",
            "clock",
            "metrics",
        ],
    ),
    (
        "ingest",
        &[
            "domain",
            "error_code",
            "manager",
            "stats",
            "store",
            "clock",
            "metrics",
            "audit",
        ],
    ),
    (
        "notify",
        &[
            "domain",
            "error_code",
            "manager",
            "store",
            "clock",
            "metrics",
        ],
    ),
    (
        "api",
        &[
            "domain",
            "error_code",
            "clock",
            "stats",
            "store",
            "engine",
            "manager",
            "watch",
            "ingest",
            "proto",
            "audit",
            "auth",
        ],
    ),
    (
        "config",
        &[
            "domain",
            "clock",
            "middleware",
            "stats",
            "store",
            "engine",
            "executor",
            "manager",
            "watch",
            "ingest",
            "notify",
            "auth",
        ],
    ),
    (
        "server",
        &[
            "domain",
            "error_code",
            "background",
            "clock",
            "middleware",
            "proto",
            "stats",
            "store",
            "engine",
            "executor",
            "manager",
            "watch",
            "ingest",
            "notify",
            "api",
            "config",
            "auth",
            "metrics",
            "telemetry",
            "audit",
        ],
    ),
    ("client", &["proto"]),
    ("cli", &["client", "proto", "audit"]),
    (
        "bench",
        &[
            "client", "proto", "server", "config", "store", "stats", "engine", "domain", "auth",
            "metrics",
        ],
    ),
    ("app", &["cli", "bench", "config", "auth"]),
];

/// External crates that carry an invariant, and the only places (module,
/// or a folder below one) that may name them.
const CRATES: &[(&[&str], &[&str])] = &[
    // Only `store/` knows Redis.
    (&["redis", "bb8", "bb8_redis"], &["store"]),
    // Only the edge knows gRPC and protobuf: the API, the wiring, the
    // generated code and the clients.
    (
        &[
            "tonic",
            "tonic_types",
            "tonic_health",
            "tonic_reflection",
            "tonic_web",
            "tonic_prost",
            "prost",
            "prost_types",
            "prost_reflect",
        ],
        &[
            "api",
            "server",
            "proto",
            "client",
            "cli",
            "bench",
            "error_code",
            // The store's own record messages (prost derive, not the API).
            "store/redis/record",
        ],
    ),
    // Only `telemetry` knows OpenTelemetry: the rest of verdict speaks
    // `tracing`.
    (
        &[
            "opentelemetry",
            "opentelemetry_sdk",
            "opentelemetry_otlp",
            "tracing_opentelemetry",
        ],
        &["telemetry"],
    ),
    // Only the engines (to an LLM, from `engine/llm/`), the chat notifier
    // (to the Telegram Bot API and Slack's Web API), the JWKS fetch and the
    // load generator (a server's `/metrics`) speak HTTP as clients.
    (&["reqwest"], &["engine", "notify", "auth", "bench"]),
    // Only the executor speaks to a Kubernetes cluster.
    (&["kube", "k8s_openapi"], &["executor"]),
    // Command-line parsing belongs to the command line; `config` maps the
    // flags of `serve` onto settings.
    (&["clap"], &["app", "cli", "bench", "config"]),
];

/// A reference from one file to a module or crate.
struct Edge {
    file: String,
    line: usize,
    target: String,
}

#[test]
fn modules_import_only_what_the_layering_allows() {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    for (file, module, code) in sources() {
        modules.insert(module.clone());
        let Some(allowed) = layers.get(module.as_str()) else {
            problems.push(format!(
                "{file}: module `{module}` is not in LAYERS (tests/architecture.rs): \
                 decide what it may import"
            ));
            continue;
        };
        for edge in crate_paths(&file, &code) {
            if edge.target != module && !allowed.contains(&edge.target.as_str()) {
                problems.push(format!(
                    "{}:{}: {module} → {} is forbidden (`{module}` may use: {})",
                    edge.file,
                    edge.line,
                    edge.target,
                    list(allowed)
                ));
            }
        }
        for line in escaping_supers(&file, &code) {
            problems.push(format!(
                "{file}:{line}: a `super::` path leaves `{module}`: name other modules \
                 with `crate::` so this test sees the edge"
            ));
        }
        let rel = file.trim_start_matches("src/");
        for edge in external_paths(&file, &code) {
            let Some((_, places)) = CRATES
                .iter()
                .find(|(crates, _)| crates.contains(&edge.target.as_str()))
            else {
                continue;
            };
            let inside = places
                .iter()
                .any(|p| rel.starts_with(&format!("{p}/")) || rel == format!("{p}.rs"));
            if !inside {
                problems.push(format!(
                    "{}:{}: {module} uses the crate `{}`, which only {} may use",
                    edge.file,
                    edge.line,
                    edge.target,
                    list(places)
                ));
            }
        }
    }
    for name in layers.keys() {
        if !modules.contains(*name) {
            problems.push(format!("LAYERS lists `{name}`, which src/ does not have"));
        }
    }
    assert!(
        problems.is_empty(),
        "the layering of ARCHITECTURE.md is broken:\n{}",
        problems.join("\n")
    );
}

/// Inside `store/`: the key layout is built in `keys.rs` alone, and the
/// memory store shares nothing with the Redis store (each implements the
/// `Store` trait on its own; what both need lives in `store/` proper).
#[test]
fn keys_are_built_in_keys_rs_and_the_stores_stand_alone() {
    let mut problems = Vec::new();
    for (file, _, text) in raw_sources() {
        let code = strip_keeping_strings(&text);
        if file != "src/store/keys.rs" {
            for (at, _) in code.match_indices("\"verdict:") {
                if !code[at + 9..].starts_with(':') {
                    problems.push(format!(
                        "{file}:{}: a Redis key is built outside store/keys.rs",
                        line_of(&code, at)
                    ));
                }
            }
        }
        if file == "src/store/memory.rs" {
            let code = strip(&text);
            for (at, _) in code.match_indices("redis::") {
                problems.push(format!(
                    "{file}:{}: the memory store uses the Redis store",
                    line_of(&code, at)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each module may use only modules listed before it, so the allowed
/// edges can never form a cycle.
#[test]
fn the_layers_have_no_cycle() {
    let mut seen = BTreeSet::new();
    for (module, allowed) in LAYERS {
        for dep in *allowed {
            assert!(
                seen.contains(dep),
                "`{module}` may use `{dep}`, which is not listed before it"
            );
        }
        seen.insert(*module);
    }
}

/// ARCHITECTURE.md's layering table says what `LAYERS` says.
#[test]
fn architecture_md_shows_the_same_layers() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut documented = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| `module` | `a`, `b` |` rows; the key table's rows do not parse.
        let [_, module, uses, ..] = cells.as_slice() else {
            continue;
        };
        let Some(module) = module
            .strip_prefix('`')
            .and_then(|m| m.strip_suffix("/`").or_else(|| m.strip_suffix('`')))
        else {
            continue;
        };
        if !LAYERS.iter().any(|(m, _)| *m == module) {
            continue;
        }
        let uses: BTreeSet<String> = uses
            .split(',')
            .map(|u| u.trim().trim_matches('`').trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty() && u != "—" && u != "nothing")
            .collect();
        documented.insert(module.to_owned(), uses);
    }
    let expected: BTreeMap<String, BTreeSet<String>> = LAYERS
        .iter()
        .map(|(m, a)| (m.to_string(), a.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(
        documented, expected,
        "ARCHITECTURE.md's layering table and LAYERS (tests/architecture.rs) differ"
    );
}

/// The checker itself: comments, strings and test modules are not code.
#[test]
fn the_scanner_sees_only_code() {
    let code = strip(
        r####"
use crate::{domain::Token, store::{self, Store}};
// crate::api in a comment
/// [`crate::api`] in a doc comment
/* crate::api /* nested */ crate::api */
let s = "crate::api";
let r = r#"crate::api "quoted" "#;
let c = '"'; let l: &'static str = x::<'a>;
fn f() -> crate::manager::ManagerError { todo!() }
#[derive(clap::Parser)]
struct S(crate::store::redis::PoolConfig, $crate::watch::Hub);
#[cfg(test)]
mod tests {
    use crate::api::status;
}
let after = crate::engine::X;
"####,
    );
    let targets: Vec<(usize, String)> = crate_paths("x.rs", &code)
        .into_iter()
        .map(|e| (e.line, e.target))
        .collect();
    let expect = [
        (2, "domain"),
        (2, "store"),
        (9, "manager"),
        (11, "store"),
        (11, "watch"),
        (16, "engine"),
    ];
    assert_eq!(
        targets,
        expect.map(|(l, t)| (l, t.to_owned())).to_vec(),
        "{code}"
    );
    let crates: Vec<String> = external_paths("x.rs", &code)
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(crates, ["clap"]);
    assert_eq!(
        escaping_supers("src/a/b.rs", "use super::x; use super::super::y;"),
        [1]
    );
    assert!(escaping_supers("src/a/mod.rs", "use self::x;").is_empty());
    assert_eq!(escaping_supers("src/a/mod.rs", "\nuse super::x;"), [2]);
    let kept = strip_keeping_strings("let k = \"verdict:x\"; // \"verdict:y\"");
    assert_eq!(kept.trim_end(), "let k = \"verdict:x\";");
}

/// `(path, module, code)` for every checked file, the code stripped.
fn sources() -> Vec<(String, String, String)> {
    raw_sources()
        .into_iter()
        .map(|(file, module, text)| (file, module, strip(&text)))
        .collect()
}

/// `(path, module, text)` for every checked file, as written.
fn raw_sources() -> Vec<(String, String, String)> {
    let src = root().join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        let module = rel
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("readable source");
        out.push((format!("src/{rel}"), module, text));
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

/// `source` with comments, string and char literals and `#[cfg(test)]`
/// modules blanked out; newlines are kept, so line numbers still hold.
fn strip(source: &str) -> String {
    scrub(source, false)
}

/// [`strip`], but string literals are kept (to find Redis keys in them).
fn strip_keeping_strings(source: &str) -> String {
    scrub(source, true)
}

fn scrub(source: &str, keep_strings: bool) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < s.len() {
        let at = |k: usize| s.get(i + k).copied().unwrap_or('\0');
        let start = i;
        let mut is_string = false;
        if at(0) == '/' && at(1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&s, i) {
            // r"…", r#"…"#, br"…": ends at a quote followed by the hashes.
            is_string = true;
            i += s[i..].iter().position(|&c| c == '"').unwrap_or(0) + 1;
            while i < s.len() {
                if s[i] == '"' && (0..hashes).all(|k| s.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if at(0) == '"' {
            is_string = true;
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if at(0) == '\'' && (at(1) == '\\' || at(2) == '\'') {
            // A char literal ('x', '\n', '\''); a lifetime has no closing quote.
            i += 1;
            while i < s.len() && s[i] != '\'' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let end = i.min(s.len());
        if is_string && keep_strings {
            out.extend(&s[start..end]);
        } else {
            out.extend(s[start..end].iter().map(|&c| blank(c)));
        }
        i = end;
    }
    blank_test_modules(&out)
}

/// How many `#` a raw string starting at `i` has, if one starts there.
fn raw_string_start(s: &[char], i: usize) -> Option<usize> {
    if i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if s.get(j) == Some(&'b') {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
    (s.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Blanks each `#[cfg(test)] mod … { … }` (code already stripped, so the
/// braces balance).
fn blank_test_modules(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut s: Vec<char> = code.chars().collect();
    let attr: Vec<char> = ATTR.chars().collect();
    let mut i = 0;
    while i + attr.len() <= s.len() {
        if s[i..i + attr.len()] != attr[..] {
            i += 1;
            continue;
        }
        let rest: String = s[i + attr.len()..].iter().collect();
        let item = rest.trim_start();
        if !(item.starts_with("mod ") || item.starts_with("pub(crate) mod ")) {
            i += attr.len();
            continue;
        }
        let mut j = i + attr.len();
        while j < s.len() && s[j] != '{' && s[j] != ';' {
            j += 1;
        }
        let mut depth = 0;
        while j < s.len() {
            match s[j] {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            j += 1;
            if depth == 0 {
                break;
            }
        }
        for c in &mut s[i..j] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j;
    }
    s.into_iter().collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where a path starting with `word::` begins (not inside a longer path,
/// so `crate::store::redis::X` is not the crate `redis`).
fn path_starts(code: &str, word: &str) -> Vec<usize> {
    code.match_indices(&format!("{word}::"))
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = &code[..at];
            !before.chars().next_back().is_some_and(is_ident) && !before.ends_with("::")
        })
        .collect()
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// Every `crate::<module>` in `code`, grouped imports
/// (`use crate::{a::X, b}`) split into their modules.
fn crate_paths(file: &str, code: &str) -> Vec<Edge> {
    let mut out = Vec::new();
    for at in path_starts(code, "crate") {
        let rest = &code[at + "crate::".len()..];
        let line = line_of(code, at);
        let targets = if let Some(group) = rest.strip_prefix('{') {
            group_heads(group)
        } else {
            vec![rest.chars().take_while(|&c| is_ident(c)).collect()]
        };
        for target in targets {
            if !target.is_empty() && target != "self" {
                out.push(Edge {
                    file: file.to_owned(),
                    line,
                    target,
                });
            }
        }
    }
    out
}

/// Lines of `code` whose `super::super::…` climbs out of the file's
/// top-level module (`src/a/b.rs` may climb once, `src/a/mod.rs` not at
/// all), which would hide an edge from [`crate_paths`].
fn escaping_supers(file: &str, code: &str) -> Vec<usize> {
    let rel = file.trim_start_matches("src/");
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    // Module depth below the crate root: `a.rs` and `a/mod.rs` are 1.
    let depth = parts.len() - usize::from(parts.last() == Some(&"mod"));
    let mut out = Vec::new();
    for at in path_starts(code, "super") {
        let climbs = code.as_bytes()[at..]
            .chunks(7)
            .take_while(|c| *c == b"super::")
            .count();
        if climbs >= depth {
            out.push(line_of(code, at));
        }
    }
    out
}

/// The first segment of each item of a `{…}` group (text after the `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item = true;
    let mut chars = group.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item = true,
            c if at_item && is_ident(c) && depth == 0 => {
                let mut head = c.to_string();
                while let Some(&n) = chars.peek().filter(|&&n| is_ident(n)) {
                    head.push(n);
                    chars.next();
                }
                heads.push(head);
                at_item = false;
            }
            _ => {}
        }
    }
    heads
}

/// Every path in `code` that starts with a crate of [`CRATES`].
fn external_paths(file: &str, code: &str) -> Vec<Edge> {
    let mut out = Vec::new();
    for (crates, _) in CRATES {
        for name in *crates {
            for at in path_starts(code, name) {
                out.push(Edge {
                    file: file.to_owned(),
                    line: line_of(code, at),
                    target: (*name).to_owned(),
                });
            }
            // `use redis;` or `use redis as r;` name the crate without `::`.
            for (at, _) in code.match_indices(&format!("use {name}")) {
                let next = code[at + 4 + name.len()..].chars().next();
                if matches!(next, Some(';' | ' ')) {
                    out.push(Edge {
                        file: file.to_owned(),
                        line: line_of(code, at),
                        target: (*name).to_owned(),
                    });
                }
            }
        }
    }
    out.sort_by_key(|e| e.line);
    out
}
