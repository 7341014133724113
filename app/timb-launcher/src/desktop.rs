//! `timb --register-app` and `timb --unregister-app`: a menu entry for this bundle in the
//! user's own applications folder, only when asked, and nothing else outside the bundle.
//!
//! The entry is `$XDG_DATA_HOME/applications/timb-<id>.desktop` (`~/.local/share` when
//! `XDG_DATA_HOME` is unset or not absolute, as the XDG spec says), where `<id>` is derived
//! from the bundle's folder, so two bundles get two entries. It names the folders it had to
//! create, and unregistering removes the entry and then those folders if they are empty:
//! registering then unregistering leaves the home folder as it was.

use std::io;
use std::path::{Path, PathBuf};

/// The bundle's icon, beside the launcher.
pub const ICON: &str = "timb.svg";
const CREATED_KEY: &str = "X-Timb-Created=";
const BUNDLE_KEY: &str = "X-Timb-Bundle=";

/// Where entries go, from the environment's `HOME` and `XDG_DATA_HOME`.
#[derive(Debug, Clone)]
pub struct Home {
    pub home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
}

impl Home {
    pub fn from_env() -> Home {
        Home {
            home: std::env::var_os("HOME").map(PathBuf::from),
            xdg_data_home: std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        }
    }

    fn applications(&self) -> Result<PathBuf, String> {
        let data = match &self.xdg_data_home {
            Some(d) if d.is_absolute() => d.clone(),
            _ => match &self.home {
                Some(h) if h.is_absolute() => h.join(".local/share"),
                _ => return Err("neither XDG_DATA_HOME nor HOME is an absolute folder".into()),
            },
        };
        Ok(data.join("applications"))
    }
}

/// The entry file for the bundle at `root`.
pub fn entry_path(root: &Path, home: &Home) -> Result<PathBuf, String> {
    Ok(home.applications()?.join(format!(
        "timb-{:016x}.desktop",
        fnv1a(root_text(root)?.as_bytes())
    )))
}

/// Writes the menu entry for the bundle at `root` (replacing an earlier one of this bundle).
pub fn register(root: &Path, home: &Home) -> Result<PathBuf, String> {
    let root_s = root_text(root)?;
    let entry = entry_path(root, home)?;
    let dir = entry
        .parent()
        .ok_or("the applications folder has no parent")?;
    // Folders this creates, deepest first; an earlier entry's list is kept.
    let mut created = match std::fs::read_to_string(&entry) {
        Ok(old) => created_dirs(&old),
        Err(_) => Vec::new(),
    };
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    created.extend(missing);
    let text = entry_text(&root_s, &created)?;
    let tmp = dir.join(format!(".{}.tmp", file_name(&entry)));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &entry))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", entry.display())
        })?;
    Ok(entry)
}

/// Removes this bundle's menu entry, and the folders registering created if they are
/// empty now. `Ok(false)` when there was no entry.
pub fn unregister(root: &Path, home: &Home) -> Result<bool, String> {
    let root_s = root_text(root)?;
    let entry = entry_path(root, home)?;
    let text = match std::fs::read_to_string(&entry) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", entry.display())),
    };
    if !text
        .lines()
        .any(|l| l.strip_prefix(BUNDLE_KEY) == Some(root_s.as_str()))
    {
        return Err(format!(
            "{} was not written for this bundle; left alone",
            entry.display()
        ));
    }
    std::fs::remove_file(&entry).map_err(|e| format!("{}: {e}", entry.display()))?;
    for d in created_dirs(&text) {
        // Only if empty: anything the user put there stays, and so does its folder.
        let _ = std::fs::remove_dir(&d);
    }
    Ok(true)
}

fn entry_text(root: &str, created: &[PathBuf]) -> Result<String, String> {
    let exe = format!("{root}/timb");
    let created = created
        .iter()
        .map(|p| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{} is not UTF-8", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=timb\n\
         GenericName=Instant messenger over Tor\n\
         Comment=Chat over XMPP and IRC through Tor, encrypted with OTR\n\
         Categories=Network;InstantMessaging;\n\
         Exec={}\n\
         Icon={}\n\
         Terminal=false\n\
         StartupNotify=true\n\
         {BUNDLE_KEY}{}\n\
         {CREATED_KEY}{}\n",
        exec_quote(&exe),
        escape_value(&format!("{root}/{ICON}")),
        escape_value(root),
        escape_value(&created.join(":")),
    ))
}

fn created_dirs(entry: &str) -> Vec<PathBuf> {
    entry
        .lines()
        .find_map(|l| l.strip_prefix(CREATED_KEY))
        .map(|v| {
            unescape_value(v)
                .split(':')
                .filter(|s| s.starts_with('/'))
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn root_text(root: &Path) -> Result<String, String> {
    let s = root
        .to_str()
        .ok_or_else(|| format!("the bundle's folder {} is not UTF-8", root.display()))?;
    if !root.is_absolute() || s.contains(['\n', '\r', ':']) {
        return Err(format!(
            "the bundle's folder {s:?} cannot be written into a menu entry (it must be absolute, without ':' or line breaks)"
        ));
    }
    Ok(s.to_owned())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The desktop entry spec's quoting of one Exec argument, then its string escaping.
fn exec_quote(arg: &str) -> String {
    let mut q = String::from("\"");
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    escape_value(&q).replace('%', "%%")
}

/// A string value as the desktop entry spec escapes it.
fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape_value(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('\\') => out.push('\\'),
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// FNV-1a: a stable name for a folder's entry, std only (not a security property).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    out.insert(p.clone(), None);
                    stack.push(p);
                } else {
                    out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    #[test]
    fn register_then_unregister_leaves_home_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join(".local")).unwrap();
        std::fs::write(home.join(".local/keep"), "mine").unwrap();
        let root = t.path().join("a bundle $with \"odd\" 100% name");
        std::fs::create_dir_all(&root).unwrap();
        let h = Home {
            home: Some(home.clone()),
            xdg_data_home: Some("relative/ignored".into()),
        };
        let before = tree(&home);
        let entry = register(&root, &h).unwrap();
        assert_eq!(
            entry.parent().unwrap(),
            home.join(".local/share/applications")
        );
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            text.contains(r#"Exec="/"#)
                && text.contains(r#"a bundle \\$with \\"odd\\" 100%% name/timb""#),
            "{text}"
        );
        assert!(text.contains(&format!("Icon={}/timb.svg", root.display())));
        // Again: replaced, and still knows what it created.
        assert_eq!(register(&root, &h).unwrap(), entry);
        assert!(unregister(&root, &h).unwrap());
        assert_eq!(tree(&home), before, "home changed");
        assert!(!unregister(&root, &h).unwrap(), "nothing left to remove");
    }

    #[test]
    fn unregister_keeps_what_the_user_added_and_refuses_another_bundles_entry() {
        let t = tempfile::tempdir().unwrap();
        let h = Home {
            home: Some(t.path().to_path_buf()),
            xdg_data_home: Some(t.path().join("data")),
        };
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let entry = register(&a, &h).unwrap();
        assert!(entry.starts_with(t.path().join("data/applications")));
        std::fs::write(t.path().join("data/applications/other.desktop"), "x").unwrap();
        assert_ne!(
            entry_path(&b, &h).unwrap(),
            entry,
            "two bundles, two entries"
        );
        // An entry file of this name not written for this bundle is left alone.
        std::fs::write(entry_path(&b, &h).unwrap(), "[Desktop Entry]\n").unwrap();
        assert!(unregister(&b, &h).is_err());
        assert!(unregister(&a, &h).unwrap());
        assert!(t.path().join("data/applications/other.desktop").exists());
        assert!(entry_path(&b, &h).unwrap().exists());
    }

    #[test]
    fn a_relative_or_unusable_folder_is_refused() {
        let h = Home {
            home: None,
            xdg_data_home: None,
        };
        assert!(register(Path::new("/b"), &h).is_err());
        let h = Home {
            home: Some("/h".into()),
            xdg_data_home: None,
        };
        assert!(register(Path::new("relative"), &h).is_err());
        assert!(register(Path::new("/with:colon"), &h).is_err());
    }
}
