//! One answer to "which token do I pass?": the decision table lives in
//! `docs/which-token.md` (included in the crate docs), and the guide carries the same table
//! verbatim. A change to one that is not made to the other fails here.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of the first markdown table in `text` that starts with `header`.
fn table(text: &str, header: &str) -> Vec<String> {
    let start = text.find(header).unwrap_or_else(|| panic!("no table starting {header:?}"));
    text[start..].lines().take_while(|l| l.starts_with('|')).map(str::to_owned).collect()
}

#[test]
fn the_guide_and_the_crate_docs_carry_the_same_decision_table() {
    const HEADER: &str = "| situation | token | how you get it | why | what it costs |";
    let canonical = table(&read("docs/which-token.md"), HEADER);
    assert!(canonical.len() >= 2 + 12, "the table has its twelve situations: {canonical:#?}");
    for situation in [
        "plain code",
        "`Mutex`",
        "spinlock",
        "reclaim path",
        "read section",
        "callback",
        "`Drop`",
        "async",
        "sleepable read section",
        "across `.await`",
        "online in a QSBR domain",
        "reading a QSBR domain",
    ] {
        assert!(canonical.iter().any(|row| row.contains(situation)), "no row for {situation}");
    }
    assert_eq!(
        table(&read("docs/guide.md"), HEADER),
        canonical,
        "guide §3 differs from docs/which-token.md"
    );
    assert!(
        read("rcu-core/src/lib.rs").contains("include_str!(\"../docs/which-token.md\")"),
        "the crate docs include the table"
    );
    assert!(read("README.md").contains("docs/which-token.md"), "the README points to the table");
}
