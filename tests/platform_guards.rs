//! Issue 14.7, honest platforms. Only x86_64 Linux is built and tested
//! here: no other target's standard library is installed, and `--cfg`
//! cannot switch `unix` off, so nothing compiles the macOS or Windows
//! build. This test stands in for that compile as far as text can:
//!
//! - every line of product code (`src/` and `crates/*/src/`, walked from
//!   each crate root through its `mod` declarations, without
//!   `#[cfg(test)]` modules and `tests.rs` files) that names a Unix- or
//!   Linux-only API lies inside an item, block or statement whose `#[cfg]`
//!   keeps it to platforms that have that API;
//! - the crates providing such APIs are target dependencies
//!   (`[target.'cfg(unix)'.dependencies]` or the Linux one) of every
//!   product crate.
//!
//! What it cannot see: a Unix-only trait or type used by its short name
//! once its `use` is guarded (`folder.mode(0o700)` after
//! `use std::os::unix::fs::DirBuilderExt`); whether the `#[cfg(not(unix))]`
//! counterpart of a guarded item exists, has the same signature or compiles;
//! runtime differences (`sh -c`, XDG paths); APIs missing from `APIS`. It is
//! a scanner, not a parser: where it loses track of strings or braces it
//! fails, it never passes quietly. No rig needed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where an API exists, as the OS words (`unix`, a `target_os`) a `#[cfg]`
/// keeping code to it may name.
const UNIX: &[&str] = &[
    "unix", "linux", "macos", "ios", "android", "freebsd", "openbsd", "netbsd",
];
const LINUX: &[&str] = &["linux"];
/// keyring builds its Secret Service store on Linux and two BSDs.
const SECRET_SERVICE: &[&str] = &["linux", "freebsd", "openbsd"];

/// Text naming a Unix- or Linux-only API, and where that API exists. A
/// pattern starting with `"` is a path in a string literal; the others are
/// looked for in code only (not in comments or strings).
const APIS: &[(&str, &[&str])] = &[
    ("std::os::unix", UNIX),
    ("std::os::fd", UNIX),
    ("std::os::linux", LINUX),
    ("rustix::", UNIX),
    ("signal_hook", UNIX),
    ("libc::", UNIX),
    ("nix::", UNIX),
    ("linux_keyutils", LINUX),
    ("keyring::keyutils", LINUX),
    ("keyring::secret_service", SECRET_SERVICE),
    ("dbus::", LINUX),
    ("\"/dev/", UNIX),
    ("\"/proc/", LINUX),
    ("\"/sys/", LINUX),
];

/// The crates behind those APIs, which a manifest may only list for the
/// platforms that have them.
const CRATES: &[(&str, &[&str])] = &[
    ("rustix", UNIX),
    ("signal-hook", UNIX),
    ("nix", UNIX),
    ("linux-keyutils", LINUX),
    ("dbus", LINUX),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a `#[cfg(...)]` keeps its item to.
#[derive(Clone, Debug, PartialEq)]
enum Guard {
    /// Test-only code: not product code, not checked.
    Test,
    /// The platforms named (`unix`, `windows`, `target_os` values); none
    /// when the predicate names no platform (a feature) or negates anything
    /// but Windows, as such a cfg keeps nothing off any platform.
    Os(BTreeSet<String>),
}

fn guard(predicate: &str) -> Guard {
    let words: BTreeSet<String> = predicate
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| *w == "test" || *w == "windows" || UNIX.contains(w))
        .map(String::from)
        .collect();
    if predicate.trim_start().starts_with("not(") {
        // `not(windows)` is everywhere else: Unix, for what vault builds on.
        let unix = words.iter().eq(["windows"]);
        return Guard::Os(unix.then(|| "unix".to_string()).into_iter().collect());
    }
    if words.contains("test") {
        return Guard::Test;
    }
    Guard::Os(words)
}

/// Whether one of `guards` keeps code to platforms within `allowed`.
fn fits(guards: &[Guard], allowed: &[&str]) -> bool {
    guards.iter().any(|g| match g {
        Guard::Test => true,
        Guard::Os(w) => !w.is_empty() && w.iter().all(|w| allowed.contains(&w.as_str())),
    })
}

/// Where the lexer is at the end of a line: strings span lines.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Lex {
    Code,
    Str,
    /// A raw string with this many `#`.
    Raw(usize),
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Whether the `r` at `i` starts a raw string (`r"`, `r#"`, `br"`), not
/// ends a name (`for"` cannot occur, but `bar` can).
fn raw_prefix(c: &[char], i: usize) -> bool {
    let before = |k: usize| i.checked_sub(k).and_then(|j| c.get(j));
    let prefix = !ident(before(1)) || (before(1) == Some(&'b') && !ident(before(2)));
    let hashes = c[i + 1..].iter().take_while(|h| **h == '#').count();
    prefix && c.get(i + 1 + hashes) == Some(&'"')
}

/// Splits a line into its code (comment cut off, strings kept) and its bare
/// code (strings and char literals blanked, so their braces, quotes and
/// words do not count).
fn split(line: &str, lex: &mut Lex) -> (String, String) {
    let c: Vec<char> = line.chars().collect();
    let (mut code, mut bare) = (String::new(), String::new());
    let mut i = 0;
    while i < c.len() {
        let (start, in_code) = (i, *lex == Lex::Code);
        match *lex {
            Lex::Str if c[i] == '\\' => i += 1,
            Lex::Str if c[i] == '"' => *lex = Lex::Code,
            Lex::Raw(n)
                if c[i] == '"' && c[i + 1..].iter().take_while(|h| **h == '#').count() >= n =>
            {
                i += n;
                *lex = Lex::Code;
            }
            Lex::Str | Lex::Raw(_) => {}
            Lex::Code if c[i] == '/' && c.get(i + 1) == Some(&'/') => break,
            Lex::Code if c[i] == '"' => *lex = Lex::Str,
            Lex::Code if c[i] == 'r' && raw_prefix(&c, i) => {
                let hashes = c[i + 1..].iter().take_while(|h| **h == '#').count();
                i += 1 + hashes;
                *lex = Lex::Raw(hashes);
            }
            // '\n', '\'', '\u{1F}' and 'x'; a lifetime ('a) has no closing quote.
            Lex::Code if c[i] == '\'' && c.get(i + 1) == Some(&'\\') => {
                let rest = c.get(i + 3..).unwrap_or_default();
                i += rest.iter().position(|q| *q == '\'').map_or(0, |p| p + 3);
            }
            Lex::Code if c[i] == '\'' && c.get(i + 2) == Some(&'\'') => i += 2,
            Lex::Code => {}
        }
        i = (i + 1).min(c.len());
        code.extend(&c[start..i]);
        // A literal (string, raw string or char, quotes included) is blank.
        let literal = !in_code || *lex != Lex::Code || i - start > 1;
        bare.extend(c[start..i].iter().map(|&ch| if literal { ' ' } else { ch }));
    }
    (code, bare)
}

/// Whether `pattern` occurs in `text` as a name of its own (not the end of
/// a longer one, as `dbus::` in `libdbus::`).
fn names(text: &str, pattern: &str) -> bool {
    text.match_indices(pattern)
        .any(|(at, _)| pattern.starts_with('"') || !ident(text[..at].chars().next_back().as_ref()))
}

/// One file's scan: the lines using an API outside a fitting guard, and
/// its `mod x;` declarations with the guards over each.
#[derive(Default)]
struct Scan {
    unguarded: Vec<(usize, String)>,
    mods: Vec<(String, Vec<Guard>)>,
}

/// First words of items and statements, which end at a `;` or their block;
/// anything else under an attribute (a field, a variant, a match arm, an
/// expression) may also end at a `,`.
const ITEMS: &[&str] = &[
    "fn", "struct", "enum", "impl", "mod", "trait", "use", "let", "static", "const", "type",
    "unsafe", "async", "extern", "if", "match", "for", "while", "loop",
];

/// Scans `source`, whose module is under `inherited`. Scopes follow
/// braces: an attribute's guards wait (`pending`) for its item's first `{`
/// and then hold until the matching `}`, or end with the item's `;` (or
/// `,`, see `ITEMS`) at the attribute's own level.
fn scan(source: &str, inherited: &[Guard]) -> Result<Scan, String> {
    let mut out = Scan::default();
    let mut lex = Lex::Code;
    let (mut depth, mut parens) = (0usize, 0usize);
    let mut scopes: Vec<(usize, Guard)> = Vec::new();
    let mut pending: Vec<Guard> = Vec::new();
    // Where the pending attributes stand (braces, parens) and what ends
    // their item ("" until its first line is seen).
    let mut pending_at = (0, 0, "");
    let mut attribute: Option<(String, i32)> = None;
    for (n, line) in source.lines().enumerate() {
        let (code, bare) = split(line, &mut lex);
        let shape: String = bare.chars().filter(|c| "{}()[];,".contains(*c)).collect();
        // Attributes, over as many lines as their brackets take.
        if attribute.is_some() || code.trim_start().starts_with("#[") {
            let (text, open) = attribute.get_or_insert_with(|| (String::new(), 0));
            text.push_str(code.trim());
            *open += shape.matches('[').count() as i32 - shape.matches(']').count() as i32;
            if *open <= 0 {
                if let Some(predicate) = text
                    .strip_prefix("#[cfg(")
                    .and_then(|t| t.strip_suffix(")]"))
                {
                    if pending.is_empty() {
                        pending_at = (depth, parens, "");
                    }
                    pending.push(guard(predicate));
                }
                attribute = None;
            }
            continue;
        }
        let active: Vec<Guard> = (inherited.iter().cloned())
            .chain(scopes.iter().map(|(_, g)| g.clone()))
            .chain(pending.iter().cloned())
            .collect();
        for (pattern, allowed) in APIS {
            let text = if pattern.starts_with('"') {
                &code
            } else {
                &bare
            };
            if names(text, pattern) && !fits(&active, allowed) {
                out.unguarded.push((n + 1, line.trim().to_string()));
                break;
            }
        }
        let words: Vec<&str> = bare.split_whitespace().collect();
        if !pending.is_empty() && pending_at.2.is_empty() {
            let first = words.iter().find(|w| !w.starts_with("pub"));
            let item = first.is_some_and(|w| ITEMS.contains(w));
            pending_at.2 = if item { ";" } else { ";," };
        }
        if let Some(at) = words.iter().position(|w| *w == "mod") {
            if at <= 1 && words.len() == at + 2 && words[at + 1].ends_with(';') {
                out.mods
                    .push((words[at + 1].trim_end_matches(';').to_string(), active));
            }
        }
        for c in shape.chars() {
            match c {
                '{' => {
                    depth += 1;
                    scopes.extend(pending.drain(..).map(|g| (depth, g)));
                }
                '}' => {
                    scopes.retain(|(d, _)| *d < depth);
                    depth = depth
                        .checked_sub(1)
                        .ok_or(format!("line {}: unmatched }}", n + 1))?;
                    if depth < pending_at.0 {
                        pending.clear();
                    }
                }
                '(' | '[' => parens += 1,
                ')' | ']' => {
                    parens = parens
                        .checked_sub(1)
                        .ok_or(format!("line {}: unmatched )", n + 1))?;
                }
                c if pending_at.2.contains(c)
                    && (depth, parens) == (pending_at.0, pending_at.1) =>
                {
                    pending.clear()
                }
                _ => {}
            }
        }
    }
    if depth != 0 || parens != 0 || lex != Lex::Code || attribute.is_some() {
        return Err(format!(
            "the scanner lost track (depth {depth}, parens {parens}, {lex:?} at the end)"
        ));
    }
    Ok(out)
}

/// The product's crates under `crates/`.
fn crates() -> Vec<PathBuf> {
    let entries = std::fs::read_dir(repo().join("crates")).unwrap();
    entries.map(|e| e.unwrap().path()).collect()
}

/// The crate roots of the product: the `vault` crate's library and two
/// binaries, and each library under `crates/`.
fn crate_roots() -> Vec<PathBuf> {
    let vault = ["lib.rs", "main.rs", "core_main.rs"].map(|f| repo().join("src").join(f));
    let libs = crates().into_iter().map(|c| c.join("src/lib.rs"));
    vault.into_iter().chain(libs).collect()
}

fn rust_files(dir: &Path, into: &mut BTreeSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.insert(path);
        }
    }
}

#[test]
fn unix_only_apis_are_used_only_under_a_cfg_that_keeps_them_to_unix() {
    let root = repo();
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    // (file, whether its modules sit beside it, the guards over it)
    let mut todo: Vec<(PathBuf, bool, Vec<Guard>)> = crate_roots()
        .into_iter()
        .map(|r| (r, true, Vec::new()))
        .collect();
    while let Some((file, is_root, guards)) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let scan = scan(&text, &guards).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        failures.extend(
            scan.unguarded
                .iter()
                .map(|(n, l)| format!("{rel}:{n}: {l}")),
        );
        let dir = if is_root || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for (name, guards) in scan.mods {
            let candidates = [
                dir.join(format!("{name}.rs")),
                dir.join(&name).join("mod.rs"),
            ];
            let child = candidates.iter().find(|p| p.exists());
            let child = child.unwrap_or_else(|| panic!("{rel}: no file for mod {name}"));
            if guards.contains(&Guard::Test) || name == "tests" {
                seen.insert(child.clone()); // test code, not scanned
            } else {
                todo.push((child.clone(), false, guards));
            }
        }
    }
    // A source file the walk did not reach would go unchecked.
    let mut all = BTreeSet::new();
    rust_files(&root.join("src"), &mut all);
    for r in crate_roots() {
        rust_files(r.parent().unwrap(), &mut all);
    }
    let missed: Vec<_> = all.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "not reached from a crate root: {missed:?}"
    );
    assert!(
        failures.is_empty(),
        "Unix- or Linux-only APIs outside a #[cfg] keeping them to the platforms that have \
         them (put the item, block or statement under #[cfg(unix)] or \
         #[cfg(target_os = \"linux\")], with a #[cfg(not(...))] counterpart or a cfg'd \
         caller):\n{}",
        failures.join("\n")
    );
}

#[test]
fn unix_only_crates_are_target_dependencies() {
    let root = repo();
    let mut manifests = vec![root.join("Cargo.toml")];
    manifests.extend(crates().iter().map(|c| c.join("Cargo.toml")));
    let mut failures = Vec::new();
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            }
            // `[dependencies]` and `[target.'cfg(…)'.dependencies]` (with
            // `name = …` lines) or `[….dependencies.name]`; dev-dependencies
            // are tests'.
            let (head, name) = match section.split_once("dependencies") {
                Some((head, "")) if !line.starts_with('[') => {
                    (head, line.split(['=', '.', ' ']).next().unwrap_or(""))
                }
                Some((head, table)) if line.starts_with('[') => {
                    (head, table.trim_start_matches('.'))
                }
                _ => continue,
            };
            if head.ends_with("dev-") {
                continue;
            }
            let Some((_, allowed)) = CRATES.iter().find(|(c, _)| *c == name.trim_matches('"'))
            else {
                continue;
            };
            let target = head
                .strip_prefix("target.'cfg(")
                .and_then(|t| t.strip_suffix(")'."));
            if !target.is_some_and(|t| fits(&[guard(t)], allowed)) {
                let rel = manifest.strip_prefix(&root).unwrap().display();
                failures.push(format!("{rel}: {name} in [{section}]"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "Unix- or Linux-only crates for every platform:\n{}",
        failures.join("\n")
    );
}

/// The checker itself: guarded uses pass (a `use`, a statement, a block, a
/// module, an item whose signature has a `,`, a field); an unguarded one, a
/// Linux API under a mere `unix`, a use in the `not(unix)` counterpart and
/// the field after a guarded one fail; comments, strings and tests are not
/// uses; `mod x;` carries its guards to its file.
#[test]
fn the_scanner_tells_guarded_uses_from_unguarded_ones() {
    let source = r##"
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
fn open(b: &mut std::fs::DirBuilder) {
    #[cfg(target_os = "linux")]
    let _ = std::fs::read("/proc/self/status");
    let _ = rustix::process::getuid();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(b, 0o700);
    let _ = "/dev/tty";
}
#[cfg(all(unix, feature = "x"))]
mod signals {
    fn f() { let _ = signal_hook::consts::SIGINT; }
}
#[cfg(unix)]
fn keyring() -> Option<linux_keyutils::KeyRing> { None }
#[cfg(not(unix))]
fn elsewhere() { let _ = rustix::process::getuid(); }
#[cfg(not(windows))]
fn not_windows() -> Result<(), std::io::Error> { let _ = rustix::process::getuid(); Ok(()) }
struct Ui {
    #[cfg(target_os = "linux")]
    bus: dbus::blocking::Connection,
    other: dbus::blocking::Connection,
}
#[cfg(any(
    target_os = "linux",
    target_os = "openbsd"
))]
use keyring::secret_service::SsCredential;
#[cfg(test)]
mod tests { use std::os::unix::process::ExitStatusExt; }
// rustix:: in a comment is no use, nor in a string: "rustix:: {"
const S: &str = r#"rustix:: " { "#;
const C: char = '{';
"##;
    let found = scan(source, &[]).unwrap();
    let lines: Vec<usize> = found.unguarded.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [7, 10, 17, 19, 25], "{:?}", found.unguarded);
    assert!(found.mods.is_empty());
    let mods = scan(
        "#[cfg(target_os = \"linux\")]\npub mod desktop;\n#[cfg(test)]\nmod tests;\nmod cli;\n",
        &[],
    );
    let linux = Guard::Os(BTreeSet::from(["linux".to_string()]));
    let expected = [
        ("desktop", vec![linux]),
        ("tests", vec![Guard::Test]),
        ("cli", vec![]),
    ];
    assert_eq!(
        mods.unwrap().mods,
        expected.map(|(m, g)| (m.to_string(), g))
    );
}
