//! Builds libgpg-error, libgcrypt and libotr from the source archives pinned in
//! `rbm-projects/*.toml` (read with the `pins` crate, as xtask reads them), and links them statically, so timb never depends on (or picks up)
//! a system libotr.
//!
//! The archives are fetched and verified by `cargo xtask fetch` into `TIMB_SOURCES_DIR`
//! (default `<workspace>/out/sources`); this script never touches the network, and verifies
//! each archive's sha256 again before using it, so a swapped file fails the build.
//!
//! `TIMB_GCRYPT_PREFIX` may name an install prefix with `lib/libgcrypt.a`,
//! `lib/libgpg-error.a` and their headers (the output of the libgcrypt and libgpg-error rbm
//! projects); the configure+make step below is then skipped.

use std::env;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const LIBOTR_FILES: [&str; 13] = [
    "privkey",
    "context",
    "proto",
    "b64",
    "dh",
    "mem",
    "message",
    "userstate",
    "tlv",
    "auth",
    "sm",
    "context_priv",
    "instag",
];

fn main() {
    if let Err(e) = run() {
        eprintln!("libotr-sys: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let workspace = manifest
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the workspace root")?
        .to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let sources = env::var_os("TIMB_SOURCES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("out/sources"));
    println!("cargo:rerun-if-env-changed=TIMB_SOURCES_DIR");
    println!("cargo:rerun-if-env-changed=TIMB_GCRYPT_PREFIX");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/abi_probe.c");

    // libotr's pins and those of the projects it takes as input (libgcrypt, libgpg-error).
    let pinned = pins::sources(&workspace, "libotr").map_err(|e| e.to_string())?;
    for d in &pinned.definitions {
        println!("cargo:rerun-if-changed={}", d.display());
    }
    let archive = |name: &str| -> Result<PathBuf, String> {
        let want = &pinned
            .get(name)
            .ok_or(format!("{name} is not pinned in rbm-projects"))?
            .sha256;
        let path = sources.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.exists() {
            return Err(format!(
                "source archive {} is missing; run `cargo xtask fetch` (or cargo xtask test) first",
                path.display()
            ));
        }
        let got = sha256_file(&path)?;
        if &got != want {
            return Err(format!(
                "sha256 mismatch for {}: pinned {want}, found {got}; delete it and run `cargo xtask fetch`",
                path.display()
            ));
        }
        Ok(path)
    };

    let prefix = match env::var_os("TIMB_GCRYPT_PREFIX") {
        Some(p) => PathBuf::from(p),
        None => build_gcrypt(
            &out,
            &archive("libgpg-error_1.46.orig.tar.bz2")?,
            &archive("libgcrypt20_1.10.1.orig.tar.bz2")?,
            &archive("libgcrypt20_1.10.1-3+deb12u1.debian.tar.xz")?,
        )?,
    };
    let include = prefix.join("include");
    for lib in ["libgcrypt.a", "libgpg-error.a"] {
        if !prefix.join("lib").join(lib).exists() {
            return Err(format!("{} has no lib/{lib}", prefix.display()));
        }
    }

    // Our patches to libotr (patches/, in name order; rbm-projects/libotr/build applies the
    // same ones): extracted afresh whenever they change, so no stale or half-patched tree.
    let patches_dir = manifest.join("patches");
    println!("cargo:rerun-if-changed={}", patches_dir.display());
    let mut patches: Vec<PathBuf> = fs::read_dir(&patches_dir)
        .map_err(|e| format!("{}: {e}", patches_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    let mut stamp = String::new();
    for p in &patches {
        println!("cargo:rerun-if-changed={}", p.display());
        stamp += &format!("{}\n", sha256_file(p)?);
    }
    let otr_top = out.join("libotr-4.1.1");
    let otr_src = otr_top.join("src");
    let stamp_file = out.join("libotr-patched");
    if fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
        if otr_top.exists() {
            fs::remove_dir_all(&otr_top).map_err(|e| format!("{}: {e}", otr_top.display()))?;
        }
        extract_tar_gz(&archive("libotr_4.1.1.orig.tar.gz")?, &out)?;
        for p in &patches {
            let f = fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            sh(
                Command::new("patch")
                    .args(["-p1", "-s", "--no-backup-if-mismatch"])
                    .current_dir(&otr_top)
                    .stdin(f),
                &format!("applying {}", p.display()),
            )?;
        }
        fs::write(&stamp_file, &stamp).map_err(|e| format!("{}: {e}", stamp_file.display()))?;
    }
    let mut build = cc::Build::new();
    build
        .include(&otr_src)
        .include(&include)
        .flag_if_supported("-fno-strict-aliasing")
        .flag_if_supported(format!("-ffile-prefix-map={}=/build/libotr", out.display()))
        // libotr's own warnings are upstream's business; ours would only bury real ones.
        .warnings(false)
        .pic(true);
    for f in LIBOTR_FILES {
        build.file(otr_src.join(format!("{f}.c")));
    }
    build.compile("otr");

    cc::Build::new()
        .include(&otr_src)
        .include(&include)
        .file(manifest.join("csrc/abi_probe.c"))
        .compile("otr_abi_probe");

    println!(
        "cargo:rustc-link-search=native={}",
        prefix.join("lib").display()
    );
    println!("cargo:rustc-link-lib=static=gcrypt");
    println!("cargo:rustc-link-lib=static=gpg-error");
    println!("cargo:include={}", otr_src.display());
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<(), String> {
    let f = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut t = tar::Archive::new(flate2::read::GzDecoder::new(f));
    // `unpack` refuses entries that would land outside `dest`.
    t.unpack(dest)
        .map_err(|e| format!("extracting {}: {e}", archive.display()))
}

fn sh(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {status}"))
    }
}

/// configure+make of libgpg-error and libgcrypt into `out/gcrypt-prefix`; a stamp naming
/// the archives' hashes makes later runs of this script reuse it.
fn build_gcrypt(
    out: &Path,
    gpgerr: &Path,
    gcrypt: &Path,
    debian: &Path,
) -> Result<PathBuf, String> {
    let prefix = out.join("gcrypt-prefix");
    let stamp = prefix.join("BUILT-FROM");
    let work = out.join("gcrypt-work");
    // The same C compiler cargo uses for this target, and no build path in the objects:
    // builders in different directories get the same bytes.
    let cc = cc::Build::new().get_compiler();
    let cflags = format!("-O2 -ffile-prefix-map={}=/build/gcrypt", work.display());
    // Rebuild when the archives, the compiler or the flags change.
    let key = format!(
        "{}\n{}\n{}\n{}\n{cflags}\n",
        sha256_file(gpgerr)?,
        sha256_file(gcrypt)?,
        sha256_file(debian)?,
        cc.path().display()
    );
    if fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(prefix);
    }
    let _ = fs::remove_dir_all(&work);
    let _ = fs::remove_dir_all(&prefix);
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let jobs = env::var("NUM_JOBS").unwrap_or_else(|_| "1".into());
    let host = env::var("TARGET").map_err(|e| e.to_string())?;
    let host = gnu_triplet(&host);
    // A fixed epoch keeps any build date libgcrypt records out of the output.
    let epoch = env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| "1".into());

    sh(
        Command::new("tar")
            // In a user namespace (the build sandbox) restoring owners fails.
            .arg("--no-same-owner")
            .arg("-C")
            .arg(&work)
            .arg("-xjf")
            .arg(gpgerr),
        "extracting libgpg-error",
    )?;
    sh(
        Command::new("tar")
            // In a user namespace (the build sandbox) restoring owners fails.
            .arg("--no-same-owner")
            .arg("-C")
            .arg(&work)
            .arg("-xjf")
            .arg(gcrypt),
        "extracting libgcrypt",
    )?;
    let gpg_dir = work.join("libgpg-error-1.46");
    let gcry_dir = work.join("libgcrypt-1.10.1");
    sh(
        Command::new("tar")
            // In a user namespace (the build sandbox) restoring owners fails.
            .arg("--no-same-owner")
            .arg("-C")
            .arg(&gcry_dir)
            .arg("-xJf")
            .arg(debian),
        "extracting libgcrypt's Debian patches",
    )?;
    let series = fs::read_to_string(gcry_dir.join("debian/patches/series"))
        .map_err(|e| format!("libgcrypt debian/patches/series: {e}"))?;
    for p in series
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let patch = fs::File::open(gcry_dir.join("debian/patches").join(p))
            .map_err(|e| format!("patch {p}: {e}"))?;
        sh(
            Command::new("patch")
                .args(["-p1", "-s"])
                .current_dir(&gcry_dir)
                .stdin(patch),
            &format!("applying libgcrypt patch {p}"),
        )?;
    }

    let common = |dir: &Path| {
        let mut c = Command::new("./configure");
        c.current_dir(dir)
            .env("CC", cc.path())
            .env("CFLAGS", &cflags)
            .env("SOURCE_DATE_EPOCH", &epoch)
            .arg(format!("--host={host}"))
            .arg(format!("--prefix={}", prefix.display()))
            .args([
                "--disable-shared",
                "--enable-static",
                "--with-pic",
                "--disable-doc",
            ]);
        c
    };
    let mut gpg = common(&gpg_dir);
    gpg.args(["--disable-nls", "--disable-languages", "--disable-tests"]);
    if host.ends_with("-mingw32") {
        // libgpg-error 1.46 installs no gpg-error-config by default, and libgcrypt's
        // configure finds libgpg-error only through it under a cross compiler.
        gpg.arg("--enable-install-gpg-error-config");
    }
    sh(&mut gpg, "configuring libgpg-error")?;
    let mut make_gpg = Command::new("make");
    make_gpg.arg(format!("-j{jobs}"));
    if host.ends_with("-mingw32") {
        // Only the library, its headers and gpg-error-config: the top folder's install hook
        // for Windows compiles the translations with msgfmt, which the build container lacks
        // and the bundle would not ship.
        make_gpg.args(["-C", "src"]);
    }
    sh(
        make_gpg.arg("install").current_dir(&gpg_dir),
        "building libgpg-error",
    )?;
    sh(
        common(&gcry_dir).arg(format!("--with-libgpg-error-prefix={}", prefix.display())),
        "configuring libgcrypt",
    )?;
    // Only the library's directories: the test programs would double the build time.
    sh(
        Command::new("make")
            .arg(format!("-j{jobs}"))
            .arg("SUBDIRS=compat mpi cipher random src")
            .arg("install")
            .current_dir(&gcry_dir),
        "building libgcrypt",
    )?;
    fs::write(&stamp, key).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&work);
    Ok(prefix)
}

/// Rust's target triple to the GNU one configure expects.
fn gnu_triplet(target: &str) -> String {
    match target {
        "x86_64-unknown-linux-gnu" => "x86_64-linux-gnu".into(),
        "aarch64-unknown-linux-gnu" => "aarch64-linux-gnu".into(),
        "x86_64-pc-windows-gnu" => "x86_64-w64-mingw32".into(),
        other => other.into(),
    }
}
