//! The dependency rules of ARCHITECTURE.md ("Architecture invariant:" lines),
//! checked over the graph `cargo metadata` reports.
//!
//! A [`Rule`] forbids edges from some crates to others, directly or through
//! any path, over chosen dependency kinds. [`RULES`] are the workspace's; each
//! carries the exact sentence that ARCHITECTURE.md states, and
//! `tests/invariants.rs` checks both that the sentences are there and that the
//! graph obeys them. Rules about crates that do not exist yet (a `pipeline`
//! or `package` crate, `timb-release`) hold vacuously until they do.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What kind of dependency an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Normal,
    Build,
    Dev,
}

/// One crate of the graph.
#[derive(Debug, Clone)]
pub struct Crate {
    pub name: String,
    /// A member of this workspace (not from a registry).
    pub workspace: bool,
    /// For workspace members: the folder relative to the workspace root
    /// (`app/timb-tor`); empty otherwise.
    pub path: String,
    /// Features enabled on this crate in the resolved graph.
    pub features: BTreeSet<String>,
    pub deps: Vec<Edge>,
}

/// A dependency edge, with the features the dependent asks for.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Index into [`Graph::crates`].
    pub to: usize,
    pub kinds: BTreeSet<Kind>,
    pub features: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub crates: Vec<Crate>,
}

/// Which crates a rule talks about.
#[derive(Debug, Clone, Copy)]
pub enum Select {
    /// Workspace members whose name contains the word (`pipeline`,
    /// `xtask-pipeline`, `timb-pipeline`).
    MemberNamed(&'static str),
    /// One crate by its exact name.
    Exactly(&'static str),
    /// Workspace members under a folder, except those named.
    MembersUnder(&'static str, &'static [&'static str]),
    /// Every workspace member.
    AllMembers,
    /// Any crate with one of these names; a `name[feature]` entry matches
    /// only when that feature is asked for (directly) or enabled (through a
    /// path); `tokio[net]` also matches tokio's `full`.
    Named(&'static [&'static str]),
    /// Every crate, in the workspace or not.
    AnyCrate,
}

/// How far a forbidden edge reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Direct,
    /// Through any path of the chosen kinds.
    Transitive,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The sentence ARCHITECTURE.md states after "Architecture invariant: ".
    pub text: &'static str,
    pub from: Select,
    pub to: Select,
    pub reach: Reach,
    pub kinds: &'static [Kind],
}

/// Crates that open network connections or listen: only timb-tor may use them.
pub const SOCKET_CRATES: &[&str] = &[
    "arti-client",
    "tor-rtcompat",
    "tor-chanmgr",
    "tor-proto",
    "tokio[net]",
    "mio",
    "socket2",
    "async-io",
    "async-std",
    "smol",
    "hyper",
    "hyper-util",
    "reqwest",
    "ureq",
    "curl",
    "isahc",
    "surf",
    "attohttpc",
    "minreq",
    "tungstenite",
    "tokio-tungstenite",
    "trust-dns-resolver",
    "hickory-resolver",
];

/// Crates that do I/O (files, sockets, processes, a runtime for them), or a
/// workspace crate that does: `timb-release` uses none of them.
pub const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-io",
    "async-std",
    "smol",
    "hyper",
    "reqwest",
    "ureq",
    "curl",
    "arti-client",
    "tor-rtcompat",
    "rusqlite",
    "tempfile",
    "walkdir",
    "notify",
    "fs-mistrust",
    "directories",
    "dirs",
    "fs-err",
    "memmap2",
    "anyhow",
    "timb-core",
    "timb-tor",
    "timb-tls",
    "timb-xmpp",
    "timb-irc",
    "timb-otr",
    "libotr-sys",
];

/// OpenSSL and the platform TLS wrappers.
pub const OPENSSL_CRATES: &[&str] = &[
    "openssl",
    "openssl-sys",
    "native-tls",
    "tokio-native-tls",
    "hyper-tls",
];

const SHIPPED: &[Kind] = &[Kind::Normal, Kind::Build];
const ALL: &[Kind] = &[Kind::Normal, Kind::Build, Kind::Dev];

/// The workspace's rules, in the order ARCHITECTURE.md lists them.
pub const RULES: &[Rule] = &[
    Rule {
        text: "a `pipeline` crate never depends, directly or not, on a `package` crate (the core knows packaging steps only through its step registry).",
        from: Select::MemberNamed("pipeline"),
        to: Select::MemberNamed("package"),
        reach: Reach::Transitive,
        kinds: SHIPPED,
    },
    Rule {
        text: "`timb-release` depends, directly or not, on nothing that does I/O (no tokio, no file or network crates, no `anyhow`, none of the app's I/O crates).",
        from: Select::Exactly("timb-release"),
        to: Select::Named(IO_CRATES),
        reach: Reach::Transitive,
        kinds: SHIPPED,
    },
    Rule {
        text: "of the crates that ship (`app/`), only `timb-tor` depends on crates that open sockets (arti, tokio's `net`, mio, socket2, HTTP clients and resolvers); tests, `tests/` and `xtask` may.",
        from: Select::MembersUnder("app/", &["timb-tor"]),
        to: Select::Named(SOCKET_CRATES),
        reach: Reach::Direct,
        kinds: SHIPPED,
    },
    Rule {
        text: "nothing in the workspace depends, directly or not and for any kind of dependency, on OpenSSL or native-tls.",
        from: Select::AllMembers,
        to: Select::Named(OPENSSL_CRATES),
        reach: Reach::Transitive,
        kinds: ALL,
    },
    Rule {
        text: "`timb-launcher` (the bundle's `timb`, which starts every version and is almost never replaced) depends on nothing but the standard library.",
        from: Select::Exactly("timb-launcher"),
        to: Select::AnyCrate,
        reach: Reach::Direct,
        kinds: SHIPPED,
    },
];

/// The prefix of each rule's line in ARCHITECTURE.md.
pub const PREFIX: &str = "Architecture invariant: ";

fn split_feature(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('[') {
        Some((n, f)) => (n, Some(f.trim_end_matches(']'))),
        None => (entry, None),
    }
}

fn has_feature(features: &BTreeSet<String>, f: &str) -> bool {
    features.contains(f) || (f == "net" && features.contains("full"))
}

impl Select {
    fn source(&self, c: &Crate) -> bool {
        match *self {
            Select::MemberNamed(w) => c.workspace && c.name.contains(w),
            Select::Exactly(n) => c.name == n,
            Select::MembersUnder(dir, except) => {
                c.workspace && c.path.starts_with(dir) && !except.contains(&c.name.as_str())
            }
            Select::AllMembers => c.workspace,
            Select::AnyCrate => true,
            Select::Named(names) => names.iter().any(|e| split_feature(e).0 == c.name),
        }
    }

    /// Whether `target` is forbidden, given the features in play.
    fn target(&self, target: &Crate, features: &BTreeSet<String>) -> bool {
        match *self {
            Select::Named(names) => names.iter().any(|e| match split_feature(e) {
                (n, None) => n == target.name,
                (n, Some(f)) => n == target.name && has_feature(features, f),
            }),
            other => other.source(target),
        }
    }
}

fn kind_of(v: &serde_json::Value) -> Kind {
    match v.as_str() {
        Some("dev") => Kind::Dev,
        Some("build") => Kind::Build,
        _ => Kind::Normal,
    }
}

impl Graph {
    /// The graph of `cargo metadata --format-version 1` output.
    pub fn from_metadata(meta: &serde_json::Value) -> Result<Graph, String> {
        let root = meta["workspace_root"].as_str().unwrap_or("");
        let members: BTreeSet<&str> = meta["workspace_members"]
            .as_array()
            .ok_or("no workspace_members")?
            .iter()
            .filter_map(|m| m.as_str())
            .collect();
        let packages = meta["packages"].as_array().ok_or("no packages")?;
        let mut index = BTreeMap::new();
        let mut crates = Vec::new();
        for p in packages {
            let id = p["id"].as_str().ok_or("a package without id")?;
            let name = p["name"].as_str().ok_or("a package without name")?;
            let workspace = members.contains(id);
            let path = if workspace {
                p["manifest_path"]
                    .as_str()
                    .and_then(|m| m.strip_prefix(root))
                    .map(|m| m.trim_start_matches('/').trim_end_matches("Cargo.toml"))
                    .unwrap_or("")
                    .to_owned()
            } else {
                String::new()
            };
            index.insert(id, crates.len());
            crates.push(Crate {
                name: name.to_owned(),
                workspace,
                path,
                features: BTreeSet::new(),
                deps: Vec::new(),
            });
        }
        // Declared features per (dependent, dependency name, kind): a dev
        // dependency on tokio with `net` says nothing about the normal one.
        let mut declared: BTreeMap<(usize, String, Kind), BTreeSet<String>> = BTreeMap::new();
        for p in packages {
            let Some(&from) = p["id"].as_str().and_then(|id| index.get(id)) else {
                continue;
            };
            for d in p["dependencies"].as_array().into_iter().flatten() {
                let name = d["name"].as_str().unwrap_or("").to_owned();
                let kind = kind_of(&d["kind"]);
                let set = declared.entry((from, name, kind)).or_default();
                for f in d["features"].as_array().into_iter().flatten() {
                    if let Some(f) = f.as_str() {
                        set.insert(f.to_owned());
                    }
                }
                if d["uses_default_features"].as_bool() == Some(true) {
                    set.insert("default".to_owned());
                }
            }
        }
        let nodes = meta["resolve"]["nodes"]
            .as_array()
            .ok_or("no resolve graph")?;
        for n in nodes {
            let Some(&from) = n["id"].as_str().and_then(|id| index.get(id)) else {
                continue;
            };
            let features = n["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect();
            let mut deps = Vec::new();
            for d in n["deps"].as_array().into_iter().flatten() {
                let Some(&to) = d["pkg"].as_str().and_then(|id| index.get(id)) else {
                    continue;
                };
                let kinds: BTreeSet<Kind> = d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| kind_of(&k["kind"]))
                    .collect();
                // One edge per kind, each with the features that kind asks for.
                for kind in kinds {
                    let features = declared
                        .get(&(from, crates[to].name.clone(), kind))
                        .cloned()
                        .unwrap_or_default();
                    deps.push(Edge {
                        to,
                        kinds: BTreeSet::from([kind]),
                        features,
                    });
                }
            }
            crates[from].features = features;
            crates[from].deps = deps;
        }
        Ok(Graph { crates })
    }

    /// Every violation of `rule`, as "from -> ... -> to" paths.
    pub fn violations(&self, rule: &Rule) -> Vec<String> {
        let mut found = Vec::new();
        for (start, c) in self.crates.iter().enumerate() {
            if !rule.from.source(c) {
                continue;
            }
            // Breadth-first over edges of the rule's kinds, remembering the way back.
            let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = VecDeque::from([start]);
            let mut seen = BTreeSet::from([start]);
            while let Some(at) = queue.pop_front() {
                for e in &self.crates[at].deps {
                    if !e.kinds.iter().any(|k| rule.kinds.contains(k)) {
                        continue;
                    }
                    let target = &self.crates[e.to];
                    // A direct edge is judged by the features it asks for;
                    // one further down by what the graph enables.
                    let features = if at == start {
                        &e.features
                    } else {
                        &target.features
                    };
                    if e.to != start && rule.to.target(target, features) {
                        let mut path = vec![target.name.clone()];
                        let mut back = at;
                        loop {
                            path.push(self.crates[back].name.clone());
                            match came_from.get(&back) {
                                Some(&b) => back = b,
                                None => break,
                            }
                        }
                        path.reverse();
                        found.push(path.join(" -> "));
                    }
                    if rule.reach == Reach::Transitive && seen.insert(e.to) {
                        came_from.insert(e.to, at);
                        queue.push_back(e.to);
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

/// The rule sentences ARCHITECTURE.md states, in order.
pub fn stated_invariants(architecture_md: &str) -> Vec<String> {
    architecture_md
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['-', '*', ' ']);
            l.strip_prefix(PREFIX).map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small synthetic workspace: (name, member path or "" for a registry
    /// crate, features enabled) and edges (from, to, kind, features asked).
    fn graph(crates: &[(&str, &str)], edges: &[(&str, &str, Kind, &[&str])]) -> Graph {
        let mut g = Graph::default();
        for (name, path) in crates {
            g.crates.push(Crate {
                name: (*name).to_owned(),
                workspace: !path.is_empty(),
                path: (*path).to_owned(),
                features: BTreeSet::new(),
                deps: Vec::new(),
            });
        }
        let at = |n: &str| g.crates.iter().position(|c| c.name == n).unwrap();
        let mut added = Vec::new();
        for (from, to, kind, features) in edges {
            let features: BTreeSet<String> = features.iter().map(|f| (*f).to_owned()).collect();
            added.push((at(from), at(to), *kind, features));
        }
        for (from, to, kind, features) in added {
            g.crates[to].features.extend(features.iter().cloned());
            g.crates[from].deps.push(Edge {
                to,
                kinds: BTreeSet::from([kind]),
                features,
            });
        }
        g
    }

    const CRATES: &[(&str, &str)] = &[
        ("xtask-pipeline", "xtask/crates/pipeline/"),
        ("xtask-package", "xtask/crates/package/"),
        ("xtask-sign", "xtask/crates/sign/"),
        ("timb-release", "app/timb-release/"),
        ("timb-core", "app/timb-core/"),
        ("timb-tor", "app/timb-tor/"),
        ("timb-xmpp", "app/timb-xmpp/"),
        ("timb-e2e", "tests/e2e/"),
        ("timb-launcher", "app/timb-launcher/"),
        ("tokio", ""),
        ("arti-client", ""),
        ("sha2", ""),
        ("hyper", ""),
        ("native-tls", ""),
        ("openssl", ""),
    ];

    type EdgeSpec = (&'static str, &'static str, Kind, &'static [&'static str]);

    /// The allowed shape: every rule holds.
    fn good_edges() -> Vec<EdgeSpec> {
        vec![
            ("xtask-package", "xtask-pipeline", Kind::Normal, &[]),
            ("xtask-sign", "timb-release", Kind::Normal, &[]),
            ("xtask-sign", "xtask-package", Kind::Normal, &[]),
            ("timb-release", "sha2", Kind::Normal, &[]),
            ("timb-core", "tokio", Kind::Normal, &["sync"]),
            ("timb-xmpp", "timb-core", Kind::Normal, &[]),
            ("timb-xmpp", "tokio", Kind::Normal, &["io-util"]),
            ("timb-xmpp", "tokio", Kind::Dev, &["net"]),
            ("timb-xmpp", "timb-tor", Kind::Dev, &[]),
            ("timb-tor", "arti-client", Kind::Normal, &[]),
            ("timb-tor", "tokio", Kind::Normal, &["net"]),
            ("timb-e2e", "tokio", Kind::Normal, &["full"]),
            ("timb-e2e", "hyper", Kind::Normal, &[]),
            ("timb-launcher", "sha2", Kind::Dev, &[]),
        ]
    }

    fn check(edges: &[(&str, &str, Kind, &[&str])]) -> Vec<(usize, String)> {
        let g = graph(CRATES, edges);
        RULES
            .iter()
            .enumerate()
            .flat_map(|(i, r)| g.violations(r).into_iter().map(move |v| (i, v)))
            .collect()
    }

    #[test]
    fn the_allowed_shape_passes() {
        assert_eq!(check(&good_edges()), vec![]);
    }

    #[test]
    fn each_forbidden_edge_fails_its_rule() {
        // (from, to, kind, features asked, the rule it breaks, the path reported)
        type Case = (
            &'static str,
            &'static str,
            Kind,
            &'static [&'static str],
            usize,
            &'static str,
        );
        let cases: &[Case] = &[
            // pipeline -> package, through sign: caught transitively.
            (
                "xtask-pipeline",
                "xtask-sign",
                Kind::Normal,
                &[],
                0,
                "xtask-pipeline -> xtask-sign -> xtask-package",
            ),
            (
                "xtask-pipeline",
                "xtask-package",
                Kind::Normal,
                &[],
                0,
                "xtask-pipeline -> xtask-package",
            ),
            // timb-release -> timb-core -> tokio: I/O, directly and not.
            (
                "timb-release",
                "timb-core",
                Kind::Normal,
                &[],
                1,
                "timb-release -> timb-core",
            ),
            (
                "timb-release",
                "tokio",
                Kind::Normal,
                &["sync"],
                1,
                "timb-release -> tokio",
            ),
            // A shipped crate other than timb-tor opening sockets.
            (
                "timb-xmpp",
                "tokio",
                Kind::Normal,
                &["net"],
                2,
                "timb-xmpp -> tokio",
            ),
            (
                "timb-core",
                "tokio",
                Kind::Normal,
                &["full"],
                2,
                "timb-core -> tokio",
            ),
            (
                "timb-xmpp",
                "arti-client",
                Kind::Normal,
                &[],
                2,
                "timb-xmpp -> arti-client",
            ),
            (
                "timb-core",
                "hyper",
                Kind::Build,
                &[],
                2,
                "timb-core -> hyper",
            ),
            // OpenSSL anywhere, even as a test dependency, even deep down.
            (
                "timb-e2e",
                "openssl",
                Kind::Dev,
                &[],
                3,
                "timb-e2e -> openssl",
            ),
            (
                "arti-client",
                "native-tls",
                Kind::Normal,
                &[],
                3,
                "timb-tor -> arti-client -> native-tls",
            ),
            // The launcher: any shipped dependency at all.
            (
                "timb-launcher",
                "sha2",
                Kind::Normal,
                &[],
                4,
                "timb-launcher -> sha2",
            ),
        ];
        for (from, to, kind, features, rule, path) in cases {
            let mut edges = good_edges();
            edges.push((from, to, *kind, features));
            let found = check(&edges);
            assert!(
                found.iter().any(|(i, p)| i == rule && p.starts_with(path)),
                "{from} -> {to} ({kind:?}) should break rule {rule} ({path}): {found:?}"
            );
        }
    }

    #[test]
    fn dev_dependencies_and_test_harnesses_may_open_sockets() {
        let mut edges = good_edges();
        edges.push(("timb-xmpp", "hyper", Kind::Dev, &[]));
        edges.push(("timb-e2e", "arti-client", Kind::Normal, &[]));
        assert_eq!(check(&edges), vec![]);
    }

    #[test]
    fn stated_lines_are_read() {
        let md = "# x\n\nArchitecture invariant: a.\n- Architecture invariant: b.\ntext\n";
        assert_eq!(stated_invariants(md), vec!["a.", "b."]);
    }
}
