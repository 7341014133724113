//! The `deb` repositories of an apt configuration, read once for both users: the build
//! container (which suites mmdebstrap installs from) and the pinned-source fetcher (which
//! mirrors it asks for `deb-src` indexes). Each applies its own choice on top (the container
//! its suites, the fetcher Debian's archives only); the reading is the same, so the two can no
//! longer disagree about what the machine's apt is configured with.
//!
//! Both formats apt reads: one-line `sources.list` (`deb [opts] URI SUITE COMPONENT...`) and
//! deb822 `.sources` stanzas, where a line starting with a space or tab continues the field
//! before it (multi-line `Suites:`, an inline `Signed-By:` key).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One `deb` repository: a URI and one suite, with its components and keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptRepo {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// A keyring path; an inline key (deb822 allows one) is left out, as neither user can
    /// pass it on.
    pub signed_by: Option<String>,
}

/// Which of apt's two formats a text is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `sources.list` and `*.list`.
    OneLine,
    /// `*.sources`.
    Deb822,
}

impl Format {
    /// The format apt gives a file by its name; `None` for names apt ignores.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("list") => Some(Format::OneLine),
            Some("sources") => Some(Format::Deb822),
            _ => None,
        }
    }
}

/// The `deb` entries of an apt configuration directory (`sources.list`, then
/// `sources.list.d/*.{list,sources}` in name order). A missing file or folder is no entry;
/// one that exists but cannot be read is an error naming it.
pub fn read_config(etc: &Path) -> Result<Vec<AptRepo>> {
    let mut files = Vec::new();
    let main = etc.join("sources.list");
    if main.exists() {
        files.push(main);
    }
    let dir = etc.join("sources.list.d");
    if dir.is_dir() {
        let mut more: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut repos = Vec::new();
    for f in files {
        let Some(format) = Format::of(&f) else {
            continue;
        };
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        repos.extend(parse(&text, format));
    }
    Ok(repos)
}

/// The `deb` entries of one file's text (`deb-src` and disabled entries left out).
pub fn parse(text: &str, format: Format) -> Vec<AptRepo> {
    match format {
        Format::OneLine => parse_one_line(text),
        Format::Deb822 => parse_deb822(text),
    }
}

fn parse_one_line(text: &str) -> Vec<AptRepo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut signed_by = None;
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                let opt = w.trim_start_matches('[').trim_end_matches(']');
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptRepo {
            uri: uri.to_string(),
            suite: suite.to_string(),
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

fn parse_deb822(text: &str) -> Vec<AptRepo> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // Continuation line (for example an inline key); appended to the last field.
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb")) {
            continue;
        }
        let components: Vec<String> = get("components")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        // An inline key (not a path) is left to mmdebstrap's and apt's own keyring lookup.
        let signed_by = get("signed-by")
            .map(str::trim)
            .filter(|s| s.starts_with('/'))
            .map(str::to_string);
        for uri in get("uris").unwrap_or("").split_whitespace() {
            for suite in get("suites").unwrap_or("").split_whitespace() {
                out.push(AptRepo {
                    uri: uri.to_string(),
                    suite: suite.to_string(),
                    components: components.clone(),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(uri: &str, suite: &str, components: &[&str], signed_by: Option<&str>) -> AptRepo {
        AptRepo {
            uri: uri.into(),
            suite: suite.into(),
            components: components.iter().map(|c| c.to_string()).collect(),
            signed_by: signed_by.map(str::to_string),
        }
    }

    /// What the fetcher (sources.rs) used to parse on its own.
    #[test]
    fn the_fetchers_inputs() {
        let deb822 = "Types: deb\n# comment\nURIs: http://mirror.invalid/debian\n\
                      Suites: bookworm bookworm-updates\nComponents: main\n\
                      Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb-src\nURIs: http://x.invalid\nSuites: s\nComponents: c\n";
        let r = parse(deb822, Format::Deb822);
        let key = Some("/usr/share/keyrings/debian-archive-keyring.gpg");
        assert_eq!(
            r,
            vec![
                repo("http://mirror.invalid/debian", "bookworm", &["main"], key),
                repo(
                    "http://mirror.invalid/debian",
                    "bookworm-updates",
                    &["main"],
                    key
                ),
            ]
        );
        let one = parse(
            "deb [arch=amd64 signed-by=/k.gpg] http://m.invalid/d bookworm main contrib\n",
            Format::OneLine,
        );
        assert_eq!(
            one,
            vec![repo(
                "http://m.invalid/d",
                "bookworm",
                &["main", "contrib"],
                Some("/k.gpg")
            )]
        );
    }

    /// What the container (container.rs) used to parse on its own.
    #[test]
    fn the_containers_inputs() {
        let d822 = "Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates bookworm-backports\n\
                    Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n";
        let r = parse(d822, Format::Deb822);
        let suites: Vec<&str> = r.iter().map(|r| r.suite.as_str()).collect();
        assert_eq!(
            suites,
            ["bookworm", "bookworm-updates", "bookworm-backports"]
        );
        assert!(r.iter().all(|r| r.uri == "http://m.example/debian"));
        let one = "# comment\ndeb [signed-by=/k.gpg] http://s.example/debian-security bookworm-security main\n\
                   deb http://t.example/debian trixie main\ndeb-src http://m.example/debian bookworm main\n";
        assert_eq!(
            parse(one, Format::OneLine),
            vec![
                repo(
                    "http://s.example/debian-security",
                    "bookworm-security",
                    &["main"],
                    Some("/k.gpg")
                ),
                repo("http://t.example/debian", "trixie", &["main"], None),
            ]
        );
    }

    /// Where the two old parsers disagreed: continuation lines. The container's skipped
    /// them, so a `Suites:` field written over several lines lost its suites; the fetcher's
    /// joined them, which is what apt does.
    #[test]
    fn continuation_lines_continue_their_field_and_an_inline_key_is_left_out() {
        let text = "Types: deb\nURIs: http://m.example/debian\nSuites:\n bookworm\n bookworm-updates\n\
                    Components: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL\n \
                    -----END PGP PUBLIC KEY BLOCK-----\n";
        let r = parse(text, Format::Deb822);
        assert_eq!(
            r,
            vec![
                repo("http://m.example/debian", "bookworm", &["main"], None),
                repo(
                    "http://m.example/debian",
                    "bookworm-updates",
                    &["main"],
                    None
                ),
            ]
        );
    }

    #[test]
    fn malformed_lines_are_no_entries() {
        assert!(parse(
            "deb\ndeb http://only-uri\ndeb [signed-by=/k\n",
            Format::OneLine
        )
        .is_empty());
        assert!(parse("Types: deb\nSuites: bookworm\n", Format::Deb822).is_empty());
        assert!(parse("no colon here\n\n:\n", Format::Deb822).is_empty());
    }

    #[test]
    fn a_configuration_folder_is_read_in_order_and_unreadable_files_are_errors() {
        let etc = std::env::temp_dir().join(format!("timb-apt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&etc);
        std::fs::create_dir_all(etc.join("sources.list.d")).unwrap();
        // No sources.list at all is fine (deb822-only systems).
        assert!(read_config(&etc).unwrap().is_empty());
        std::fs::write(
            etc.join("sources.list.d/b.sources"),
            "Types: deb\nURIs: http://b.example\nSuites: b\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sources.list.d/a.list"),
            "deb http://a.example a main\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sources.list.d/c.list.disabled"),
            "deb http://c x\n",
        )
        .unwrap();
        std::fs::write(etc.join("sources.list"), "deb http://main.example m main\n").unwrap();
        let uris: Vec<String> = read_config(&etc)
            .unwrap()
            .into_iter()
            .map(|r| r.uri)
            .collect();
        assert_eq!(
            uris,
            [
                "http://main.example",
                "http://a.example",
                "http://b.example"
            ]
        );
        // A file apt would read but that is not text is reported, not skipped.
        std::fs::write(etc.join("sources.list.d/d.list"), [0xff, 0xfe]).unwrap();
        let e = format!("{:#}", read_config(&etc).unwrap_err());
        assert!(e.contains("d.list"), "{e}");
        std::fs::remove_dir_all(&etc).unwrap();
    }
}
