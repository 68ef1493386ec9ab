//! The README's snippet, compiled as a program the way a new user would (`fn main` around
//! it, no allowances), must build without a single warning and run. Rustdoc's doctest of the
//! same snippet (`rcu_core::ReadmeDoctests`) cannot show this: doctests allow `unused` lints.
//!
//! It invokes `rustc` against the `rcu_core` this test was built with (the newest
//! `librcu_core-*.rlib` beside the test binary), so it needs no network and no second build.
// Sanitizer and loom builds make rlibs a plain rustc cannot link against.
#![cfg(not(any(loom, rcu_sanitizer = "address", rcu_sanitizer = "thread")))]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The first ```rust block of README.md.
fn readme_snippet() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let start = readme.find("```rust\n").expect("a ```rust block in README.md") + "```rust\n".len();
    let len = readme[start..].find("```").expect("the block's end");
    readme[start..start + len].to_string()
}

/// The directory holding this test's dependencies, and the newest rcu_core rlib in it.
fn rcu_core_rlib() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("deps directory").to_path_buf();
    let newest = std::fs::read_dir(&deps)
        .expect("deps directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("librcu_core-") && name.ends_with(".rlib")
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("librcu_core-*.rlib beside the test binary");
    (deps, newest)
}

#[test]
fn the_readme_snippet_compiles_as_a_program_without_warnings_and_runs() {
    let snippet = readme_snippet();
    assert!(snippet.contains("Sleepable::enter()"), "found the quick-start snippet");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-snippet");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("main.rs");
    let indented: String = snippet.lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(&source, format!("fn main() {{\n{indented}}}\n")).unwrap();

    let (deps, rlib) = rcu_core_rlib();
    let binary = dir.join("readme-snippet");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin", "--crate-name", "readme_snippet"])
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("--extern")
        .arg(format!("rcu_core={}", rlib.display()))
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("rustc runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the README snippet does not compile:\n{stderr}");
    assert!(
        !stderr.contains("warning"),
        "the README snippet compiles with warnings (users see them):\n{stderr}"
    );
    let run = Command::new(&binary).output().expect("the snippet runs");
    assert!(
        run.status.success(),
        "the README snippet failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}
