//! The workspace as it is obeys ARCHITECTURE.md's "Architecture invariant:"
//! lines, and those lines are exactly the rules checked here.

use std::path::Path;
use std::process::Command;
use timb_architecture::{
    stated_invariants, Graph, Kind, Reach, Rule, Select, RULES, SOCKET_CRATES,
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn architecture_md_states_exactly_the_checked_rules() {
    let md = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let stated = stated_invariants(&md);
    let checked: Vec<String> = RULES.iter().map(|r| r.text.to_owned()).collect();
    assert_eq!(
        stated, checked,
        "ARCHITECTURE.md's 'Architecture invariant:' lines and tests/architecture's RULES differ"
    );
}

#[test]
fn the_workspace_obeys_the_architecture_invariants() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let graph = Graph::from_metadata(&meta).unwrap();
    // The graph is the real one: the crates the rules name are in it.
    for name in [
        "timb",
        "timb-tor",
        "timb-core",
        "xtask",
        "pipeline",
        "package",
        "sign",
        "pins",
        "arti-client",
        "tokio",
    ] {
        assert!(
            graph.crates.iter().any(|c| c.name == name),
            "{name} missing from cargo metadata"
        );
    }
    // ... and the checker reads its edges and features: the socket rule, applied to
    // the test harnesses (which may open sockets), finds timb-test-support's tokio "net".
    let harnesses = Rule {
        text: "",
        from: Select::MembersUnder("tests/", &[]),
        to: Select::Named(SOCKET_CRATES),
        reach: Reach::Direct,
        kinds: &[Kind::Normal],
    };
    let seen = graph.violations(&harnesses);
    assert!(
        seen.iter().any(|v| v == "timb-test-support -> tokio"),
        "the checker missed a real edge: {seen:?}"
    );
    // The pipeline rule's selectors pick the real crates: turned around, it finds the
    // edge that must exist (package registers its steps into pipeline's registry), so the
    // rule is not holding only because no crate is named `pipeline` or `package`.
    let reversed = Rule {
        text: "",
        from: Select::MemberNamed("package"),
        to: Select::MemberNamed("pipeline"),
        reach: Reach::Transitive,
        kinds: &[Kind::Normal],
    };
    let seen = graph.violations(&reversed);
    assert!(
        seen.iter().any(|v| v == "package -> pipeline"),
        "the checker missed package -> pipeline: {seen:?}"
    );
    let mut broken = Vec::new();
    for rule in RULES {
        for v in graph.violations(rule) {
            broken.push(format!("{v}\n    breaks: {}", rule.text));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
