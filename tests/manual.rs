//! The committed man page and completions match what rscp generates.

mod common;

use common::*;

#[test]
fn generated_files_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (kind, file) in [
        ("man", "docs/rscp.1"),
        ("bash", "completions/rscp.bash"),
        ("zsh", "completions/_rscp"),
        ("fish", "completions/rscp.fish"),
    ] {
        let out = run(rscp().arg("--generate").arg(kind));
        assert_success(&out);
        let committed = std::fs::read(root.join(file)).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "{file} is out of date: run scripts/generate"
        );
    }
}

#[test]
fn an_unknown_kind_is_a_usage_error() {
    let out = run(rscp().arg("--generate=tcsh"));
    assert_exit(&out, 1);
}
