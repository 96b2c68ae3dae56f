//! docs/claims.md names, for each promise vault makes, the test that proves
//! it (`FILE::FUNCTION`) or the benchmark that shows it. These checks keep
//! the table and the tests in step: every named test must exist, as a
//! `#[test]` that is not `#[ignore]`d, in the named file, and every promise
//! in the table must name a proof. No rig needed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn claims() -> String {
    let path = repo().join("docs/claims.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `` `FILE.rs::NAME` `` in `text`, in order.
fn references(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| {
            let (file, name) = code.split_once("::")?;
            (file.ends_with(".rs") && !name.is_empty())
                .then(|| (file.to_string(), name.to_string()))
        })
        .collect()
}

/// Whether `source` defines `fn name` as a test that runs: `#[test]` among
/// the attributes and doc comments right above it, and no `#[ignore`.
fn is_running_test(source: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = source.lines().collect();
    let defs: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("fn ")
                .and_then(|rest| rest.strip_prefix(name))
                .is_some_and(|rest| rest.starts_with('(') || rest.starts_with('<'))
        })
        .map(|(i, _)| i)
        .collect();
    let &[def] = defs.as_slice() else {
        return Err(format!("{} definitions of fn {name}", defs.len()));
    };
    let above: Vec<&str> = lines[..def]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
        .collect();
    if !above.contains(&"#[test]") {
        return Err(format!("fn {name} is not a #[test]"));
    }
    if above.iter().any(|l| l.starts_with("#[ignore")) {
        return Err(format!(
            "fn {name} is #[ignore]d, so it proves nothing in a normal run"
        ));
    }
    Ok(())
}

#[test]
fn every_test_the_claims_table_names_exists_and_runs() {
    let text = claims();
    let refs = references(&text);
    assert!(
        refs.len() >= 20,
        "only {} test references found",
        refs.len()
    );
    let mut wrong = Vec::new();
    for (file, name) in &refs {
        let path = repo().join(file);
        let Ok(source) = std::fs::read_to_string(&path) else {
            wrong.push(format!("{file}::{name}: no file {file}"));
            continue;
        };
        if let Err(e) = is_running_test(&source, name) {
            wrong.push(format!("{file}::{name}: {e}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/claims.md names tests that are not there:\n{}",
        wrong.join("\n")
    );
}

/// Every row of the tables (above "Not yet proven") names a test or a
/// benchmark command: a promise without proof belongs in that section.
#[test]
fn every_promise_in_the_table_names_its_proof() {
    let text = claims();
    let table_part = text
        .split_once("## Not yet proven")
        .expect("docs/claims.md has a \"## Not yet proven\" section")
        .0;
    let rows: Vec<&str> = table_part
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| promise") && !l.starts_with("| ---"))
        .collect();
    assert!(rows.len() >= 20, "only {} rows", rows.len());
    for row in rows {
        let proof = row.trim_end_matches('|').rsplit('|').next().unwrap();
        // A benchmark or test command under hw/ counts if it exists.
        let hw_command = proof.split('`').skip(1).step_by(2).any(|p| {
            p.starts_with("hw/")
                && std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(p.split_whitespace().next().unwrap_or(p))
                    .exists()
        });
        assert!(
            !references(proof).is_empty() || hw_command,
            "this promise names no test or benchmark: {row}"
        );
    }
}

/// The checker itself: it finds a test, and refuses a helper, an ignored
/// test and a missing name.
#[test]
fn the_checker_tells_tests_from_other_functions() {
    let source = "\
/// A doc.
#[test]
fn real() {}

#[test]
#[ignore = \"helper\"]
fn helper() {}

fn plain() {}
";
    assert_eq!(is_running_test(source, "real"), Ok(()));
    assert!(is_running_test(source, "helper").is_err());
    assert!(is_running_test(source, "plain").is_err());
    assert!(is_running_test(source, "missing").is_err());
    assert!(
        is_running_test(source, "rea").is_err(),
        "a prefix is not a match"
    );
    assert_eq!(
        references("`tests/a.rs::b` and `hw/bench` and `x::y`"),
        [("tests/a.rs".to_string(), "b".to_string())]
    );
    assert!(Path::new(&repo().join("docs/claims.md")).is_file());
}
