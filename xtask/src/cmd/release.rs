//! `cargo xtask release …`: the TUF repository the updater trusts (see
//! `xtask/crates/publish`). Role keys are files made by `release keygen`, sealed under a
//! password that comes from `$TIMB_RELEASE_KEY_PASSWORD` or, on a terminal, a prompt;
//! they are never committed (signing/ holds public halves only).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use publish::keyfile::{self, RoleKey};
use publish::repo::{self, Bundle, Expiry, RoleSpec, Roles, Signers};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use timb_release::builders::{join_signatures, PUBLISHED_SUMS_FILE};

#[derive(Subcommand)]
pub enum Release {
    /// Make a role key: FILE (sealed, owner-only) and FILE.pub.json (its public half)
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// scrypt cost as log2(N) (tests use a low one; releases keep the default)
        #[arg(long, value_name = "N", default_value_t = keyfile::DEFAULT_LOG_N)]
        kdf_log_n: u8,
    },
    /// Start a repository: root version 1 from a roles file, no bundles yet
    Init {
        #[command(flatten)]
        repo: RepoArgs,
        /// Which keys sign each role, and how many must (TOML; see signing/tuf-roles.toml)
        #[arg(long, value_name = "FILE")]
        roles: PathBuf,
    },
    /// Publish bundles on a channel: each with its .minisig beside it, and the release's
    /// sha256sums.txt vouched for by enough builders (signing/policy.toml's [builders])
    Add {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, default_value = "stable")]
        channel: String,
        /// The signing folder whose policy and keys the builders are checked with, laid out
        /// as signing/: the one the bundles being updated ship [default: this repository's]
        #[arg(long, value_name = "DIR")]
        signing: Option<PathBuf>,
        #[arg(value_name = "ARCHIVE", required = true)]
        archives: Vec<PathBuf>,
    },
    /// Sign a new timestamp over the current snapshot (the routine, online-key job)
    Timestamp {
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// A new root naming a new roles file, signed by the old and the new root keys
    Rotate {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_name = "FILE")]
        roles: PathBuf,
    },
    /// Write the channel every bundle ships (release/CHANNEL/): the repository's current
    /// root and the mirror list, onion mirrors first
    Channel {
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        #[arg(long, default_value = "stable")]
        channel: String,
        /// A mirror's base address (the folder holding metadata/ and targets/); repeat
        #[arg(long = "mirror", value_name = "URL", required = true)]
        mirrors: Vec<String>,
        /// Where to write (default: release/CHANNEL in this repository)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Read the repository back as a client would
    Check {
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
    },
}

#[derive(Args)]
pub struct RepoArgs {
    /// The repository folder (what a mirror serves)
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// A role key file to sign with; repeat for each key needed
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Sign as if it were this Unix time (tests; expiry counts from it)
    #[arg(long, value_name = "SECONDS", hide = true)]
    now: Option<i64>,
}

pub fn run(root: &Path, cmd: Release) -> Result<()> {
    match cmd {
        Release::Keygen { out, kdf_log_n } => keygen(&out, kdf_log_n),
        Release::Init { repo: a, roles } => {
            let roles = read_roles(&roles)?;
            let keys = open_keys(&a.keys)?;
            let root = pick(&keys, &[&roles.root]);
            repo::init(
                &a.repo,
                &roles,
                &root,
                &signers(&keys, &roles),
                now(&a)?,
                Expiry::default(),
            )?;
            eprintln!(
                "a repository with root version 1 is in {}",
                a.repo.display()
            );
            Ok(())
        }
        Release::Add {
            repo: a,
            channel,
            signing,
            archives,
        } => {
            if timb_release::tuf::Channel::new(&channel).is_none() {
                bail!("{channel:?} is not a channel name");
            }
            let mut bundles = archives
                .iter()
                .map(|p| bundle(p, &channel))
                .collect::<Result<Vec<_>>>()?;
            // No release without its builders: checked here as the updater will.
            let signing = signing.unwrap_or_else(|| root.join("signing"));
            let (policy, keys) = sign::signing_trust(&signing)?;
            for b in &mut bundles {
                if !sign::sig_path(&b.archive).is_file() {
                    bail!(
                        "{}: no minisign signature beside it; the updater checks one",
                        b.archive.display()
                    );
                }
                let dir = super::builders::folder_of(&b.archive);
                let vouched = super::builders::check_vouched(dir, &[&b.archive], &keys, &policy)?;
                eprintln!(
                    "{}: vouched for by {}",
                    b.archive.display(),
                    vouched.names()
                );
                let sums = std::fs::read(dir.join(PUBLISHED_SUMS_FILE))?;
                let mut sigs = Vec::new();
                for f in super::builders::signature_files(dir, PUBLISHED_SUMS_FILE)? {
                    sigs.push(std::fs::read_to_string(f)?);
                }
                b.vouched = Some((sums, join_signatures(&sigs).into_bytes()));
            }
            let keys = open_keys(&a.keys)?;
            let (_, roles) = repo::current_roles(&a.repo)?;
            repo::add(
                &a.repo,
                &bundles,
                &signers(&keys, &roles),
                now(&a)?,
                Expiry::default(),
            )?;
            eprintln!("published {} bundle(s) on {channel}", bundles.len());
            Ok(())
        }
        Release::Timestamp { repo: a } => {
            let keys = open_keys(&a.keys)?;
            let (_, roles) = repo::current_roles(&a.repo)?;
            let ts = pick(&keys, &[&roles.timestamp]);
            repo::resign_timestamp(&a.repo, &ts, now(&a)?, Expiry::default())
        }
        Release::Rotate { repo: a, roles } => {
            let new = read_roles(&roles)?;
            let keys = open_keys(&a.keys)?;
            let (_, old) = repo::current_roles(&a.repo)?;
            let root = pick(&keys, &[&old.root, &new.root]);
            repo::rotate(
                &a.repo,
                &new,
                &root,
                &signers(&keys, &new),
                now(&a)?,
                Expiry::default(),
            )?;
            eprintln!("root rotated in {}", a.repo.display());
            Ok(())
        }
        Release::Channel {
            repo: dir,
            channel,
            mirrors,
            out,
        } => write_channel(&dir, &channel, mirrors, out),
        Release::Check { repo: dir } => {
            repo::check(&dir, unix_now())?;
            eprintln!(
                "{}: every role verifies, every target matches",
                dir.display()
            );
            Ok(())
        }
    }
}

/// `release channel`: checks what a bundle would ship exactly as the bundle step and the
/// app do, then writes it.
fn write_channel(
    dir: &Path,
    channel: &str,
    mirrors: Vec<String>,
    out: Option<PathBuf>,
) -> Result<()> {
    use timb_release::tuf::{check_shipped_root, ShippedChannel, CHANNEL_FILE, ROOT_FILE};
    let name = timb_release::tuf::Channel::new(channel)
        .with_context(|| format!("{channel:?} is not a channel name"))?;
    let shipped = ShippedChannel::new(name, mirrors)?;
    let root_path = dir.join("metadata").join(ROOT_FILE);
    let root = std::fs::read(&root_path)
        .with_context(|| format!("reading {} (is it a repository?)", root_path.display()))?;
    let version = check_shipped_root(&root, unix_now())?;
    let out = match out {
        Some(o) => o,
        None => pipeline::util::repo_root().join("release").join(channel),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join(ROOT_FILE), &root)?;
    std::fs::write(out.join(CHANNEL_FILE), shipped.to_toml())?;
    eprintln!(
        "{}: root version {version} and {} mirror(s); bundles built from now on ship them",
        out.display(),
        shipped.mirrors.len()
    );
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now(a: &RepoArgs) -> Result<i64> {
    Ok(a.now.unwrap_or_else(unix_now))
}

fn keygen(out: &Path, log_n: u8) -> Result<()> {
    let public = pub_path(out);
    for p in [out, public.as_path()] {
        if p.exists() {
            bail!("{} exists; a key file is never overwritten", p.display());
        }
    }
    let password = password(&format!("password for the new key {}: ", out.display()))?;
    let (text, key) = keyfile::generate(&password, log_n)?;
    sign::write_private(out, text.as_bytes())?;
    let pub_text = serde_json::to_string_pretty(&json!({
        "format": keyfile::PUBLIC_FORMAT, "keyid": key.keyid, "public": key.public(),
    }))? + "\n";
    std::fs::write(&public, pub_text)?;
    println!("{}", key.keyid);
    eprintln!(
        "key {} in {} (sealed) and {} (public; list it in a roles file)",
        key.keyid,
        out.display(),
        public.display()
    );
    Ok(())
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub.json");
    PathBuf::from(p)
}

/// `$TIMB_RELEASE_KEY_PASSWORD` (scripts, tests), else a prompt on the terminal.
fn password(prompt: &str) -> Result<String> {
    if let Some(p) = std::env::var_os("TIMB_RELEASE_KEY_PASSWORD") {
        return p
            .into_string()
            .map_err(|_| anyhow::anyhow!("TIMB_RELEASE_KEY_PASSWORD is not UTF-8"));
    }
    rpassword::prompt_password(prompt).context("reading the key password from the terminal")
}

fn open_keys(paths: &[PathBuf]) -> Result<Vec<RoleKey>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let pw = password(&format!("password for {}: ", p.display()))?;
            keyfile::open(&text, &pw).with_context(|| p.display().to_string())
        })
        .collect()
}

/// The opened keys that belong to any of `specs`.
fn pick<'a>(keys: &'a [RoleKey], specs: &[&RoleSpec]) -> Vec<&'a RoleKey> {
    keys.iter()
        .filter(|k| {
            specs
                .iter()
                .any(|s| s.keys.iter().any(|(id, _)| *id == k.keyid))
        })
        .collect()
}

fn signers<'a>(keys: &'a [RoleKey], roles: &Roles) -> Signers<'a> {
    Signers {
        targets: pick(keys, &[&roles.targets]),
        snapshot: pick(keys, &[&roles.snapshot]),
        timestamp: pick(keys, &[&roles.timestamp]),
    }
}

/// A roles file: for each of root, targets, snapshot and timestamp, `threshold` and `keys`
/// (public key files, relative to the roles file).
fn read_roles(path: &Path) -> Result<Roles> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let spec = |role: &str| -> Result<RoleSpec> {
        let t = doc
            .get(role)
            .and_then(|v| v.as_table())
            .with_context(|| format!("{}: no [{role}] table", path.display()))?;
        let threshold = t
            .get("threshold")
            .and_then(|v| v.as_integer())
            .and_then(|n| u64::try_from(n).ok())
            .with_context(|| format!("[{role}] threshold"))?;
        let files = t
            .get("keys")
            .and_then(|v| v.as_array())
            .with_context(|| format!("[{role}] keys"))?;
        let keys = files
            .iter()
            .map(|f| {
                let f = base.join(f.as_str().context("a key file name")?);
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                keyfile::read_public(&text).with_context(|| f.display().to_string())
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            bail!("[{role}] in {} lists no keys", path.display());
        }
        Ok(RoleSpec { keys, threshold })
    };
    Ok(Roles {
        root: spec("root")?,
        targets: spec("targets")?,
        snapshot: spec("snapshot")?,
        timestamp: spec("timestamp")?,
    })
}

/// A bundle archive and its target's `custom.timb` fields, from its name.
fn bundle(archive: &Path, channel: &str) -> Result<Bundle> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: no file name", archive.display()))?;
    let (version, target) = timb_release::Target::parse_archive_name(name).with_context(|| {
        format!("{name} is not a bundle archive name (timb-VERSION-TARGET.EXT)")
    })?;
    let custom: Value = json!({"timb": {
        "version": version.as_str(), "target": target.name(), "channel": channel,
    }});
    Ok(Bundle {
        archive: archive.to_path_buf(),
        custom,
        vouched: None,
    })
}
