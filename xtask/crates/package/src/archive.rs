//! Deterministic archives: the same entries give the same bytes, whatever order they come
//! in and whoever builds them: `.tar.xz` (Linux) and `.zip` (Windows).

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// One file or folder in the archive.
#[derive(Debug)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    /// `None` for a folder.
    pub data: Option<Vec<u8>>,
}

impl Entry {
    /// A folder (`path` ends in `/`).
    pub fn dir(path: String, mode: u32) -> Entry {
        Entry {
            path,
            mode,
            data: None,
        }
    }

    pub fn file(path: String, mode: u32, data: Vec<u8>) -> Entry {
        Entry {
            path,
            mode,
            data: Some(data),
        }
    }
}

/// Sorted entries, fixed owner/mtime/modes, xz preset 9 single-threaded with
/// CRC64 after the x86 branch filter: the same entries always give the same bytes.
///
/// The filter (BCJ: relative call and jump targets made absolute, so that repeated calls
/// to one function look alike to LZMA2) makes the Linux bundle, mostly x86-64 code, about
/// 4 % smaller. Every xz decoder reads it: xz-utils (`tar -xJf`), Python's `lzma`, and the
/// liblzma the updater unpacks with (xz2's static build has the x86 decoder).
pub fn write_tar_xz(mut entries: Vec<Entry>, out: &Path, mtime: u64) -> Result<()> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for w in entries.windows(2) {
        if w[0].path == w[1].path {
            bail!("two bundle entries named {}", w[0].path);
        }
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut filters = xz2::stream::Filters::new();
    filters
        .x86()
        .lzma2(&xz2::stream::LzmaOptions::new_preset(9)?);
    let stream = xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc64)?;
    let xz = xz2::write::XzEncoder::new_stream(std::io::BufWriter::new(file), stream);
    let mut tar = tar::Builder::new(xz);
    for e in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_mtime(mtime);
        match &e.data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, &e.path, std::io::empty())?;
            }
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                tar.append_data(&mut h, &e.path, d.as_slice())?;
            }
        }
    }
    let xz = tar.into_inner()?;
    let mut w = xz.finish()?;
    w.flush()?;
    Ok(())
}

/// Sorted entries, every one with the same modification time (`mtime`, in the DOS format's
/// two-second steps, UTC), its Unix mode and deflate at level 9 (flate2's Rust backend):
/// the same entries always give the same bytes. Folders are entries too, so an empty
/// `profile\` exists after unpacking.
pub fn write_zip(mut entries: Vec<Entry>, out: &Path, mtime: u64) -> Result<()> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for w in entries.windows(2) {
        if w[0].path == w[1].path {
            bail!("two bundle entries named {}", w[0].path);
        }
    }
    let when = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(mtime).context("SOURCE_DATE_EPOCH out of range")?,
    )
    .context("SOURCE_DATE_EPOCH out of range")?;
    let when = zip::DateTime::try_from(time::PrimitiveDateTime::new(when.date(), when.time()))
        .map_err(|e| anyhow::anyhow!("SOURCE_DATE_EPOCH {mtime} has no zip time: {e}"))?;
    write_zip_at(entries, out, when)
}

fn write_zip_at(entries: Vec<Entry>, out: &Path, when: zip::DateTime) -> Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    for e in &entries {
        let opts = zip::write::SimpleFileOptions::default()
            .last_modified_time(when)
            .unix_permissions(e.mode);
        match &e.data {
            None => zip.add_directory(e.path.trim_end_matches('/'), opts)?,
            Some(d) => {
                let opts = opts
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(Some(9));
                zip.start_file(e.path.as_str(), opts)?;
                zip.write_all(d)?;
            }
        }
    }
    zip.finish()?.flush()?;
    Ok(())
}

/// Writes `input` again into `out` with each file's bytes passed through `change(path,
/// bytes)`: the same entries, modes and time, so a zip whose exes were signed gives back,
/// with the signatures stripped, the very bytes the build wrote.
pub fn rewrite_zip(
    input: &Path,
    out: &Path,
    mut change: impl FnMut(&str, Vec<u8>) -> Result<Vec<u8>>,
) -> Result<()> {
    let f = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).context("reading the zip")?;
    let mut entries = Vec::new();
    let mut when = None;
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).context("reading a zip entry")?;
        let path = e.name().context("a zip entry's name")?.to_string();
        let mode = e.unix_mode().context("a zip entry without a mode")? & 0o7777;
        match when {
            None => when = e.last_modified(),
            Some(w) if Some(w) != e.last_modified() => {
                bail!("{path} has another time than the entries before it")
            }
            Some(_) => {}
        }
        if e.is_dir() {
            entries.push(Entry::dir(path, mode));
        } else {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf)
                .with_context(|| format!("reading {path} from the zip"))?;
            let data = change(&path, buf)?;
            entries.push(Entry::file(path, mode, data));
        }
    }
    write_zip_at(entries, out, when.context("an empty zip")?)
}

/// Writes `input` again into `out` after `sign_app` has signed, in place, every `.app` folder
/// it holds (unpacked under `work`, the innermost first: an outer signature covers what is
/// inside it): the same modes and time, sorted, plus what signing adds
/// (`Contents/_CodeSignature/`). Signing the same bytes the same way gives the same zip.
pub fn sign_apps_in_zip(
    input: &Path,
    out: &Path,
    work: &Path,
    mut sign_app: impl FnMut(&Path) -> Result<()>,
) -> Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).context("reading the zip")?;
    pipeline::util::remove_dir(work)?;
    std::fs::create_dir_all(work)?;
    let mut when = None;
    let mut apps = Vec::new();
    let mut modes = BTreeMap::new();
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).context("reading a zip entry")?;
        let path = e
            .enclosed_name()
            .context("a zip entry leaving its folder")?;
        let mode = e.unix_mode().context("a zip entry without a mode")? & 0o7777;
        when = when.or(e.last_modified());
        let to = work.join(&path);
        modes.insert(path.clone(), mode);
        if e.is_dir() {
            std::fs::create_dir_all(&to)?;
            if path.extension().is_some_and(|x| x == "app") {
                apps.push(path.clone());
            }
        } else {
            std::fs::create_dir_all(to.parent().context("a file has a folder")?)?;
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf)?;
            std::fs::write(&to, buf)?;
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
    }
    apps.sort_by_key(|a| std::cmp::Reverse(a.components().count()));
    for app in &apps {
        sign_app(&work.join(app)).with_context(|| format!("signing {}", app.display()))?;
    }
    let mut entries = Vec::new();
    collect_entries(work, work, &modes, &mut entries)?;
    write_zip_at(entries, out, when.context("an empty zip")?)?;
    pipeline::util::remove_dir(work)?;
    Ok(apps.len())
}

/// Every file and folder under `dir` as entries named relative to `base` (folders with `/`),
/// with the mode `modes` gives the ones the zip held; what signing added gets 0755 or 0644
/// (its mode on disk came from the signer's umask, which must not change the bytes).
fn collect_entries(
    base: &Path,
    dir: &Path,
    modes: &BTreeMap<std::path::PathBuf, u32>,
    entries: &mut Vec<Entry>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = std::fs::symlink_metadata(e.path())?;
        let rel = e
            .path()
            .strip_prefix(base)?
            .to_str()
            .context("a file name that is not UTF-8")?
            .to_string();
        let on_disk = meta.permissions().mode();
        let mode = match modes.get(Path::new(&rel)) {
            Some(m) => *m,
            None if meta.is_dir() || on_disk & 0o100 != 0 => 0o755,
            None => 0o644,
        };
        if meta.is_dir() {
            entries.push(Entry::dir(format!("{rel}/"), mode));
            collect_entries(base, &e.path(), modes, entries)?;
        } else if meta.is_file() {
            entries.push(Entry::file(rel, mode, std::fs::read(e.path())?));
        } else {
            bail!("{rel}: only files and folders go into a bundle");
        }
    }
    Ok(())
}

/// Reads every regular file of a `.zip` into memory.
pub fn read_zip(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).context("reading the zip")?;
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).context("reading a zip entry")?;
        if e.is_file() {
            let name = e.name().context("a zip entry's name")?.to_string();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf)
                .with_context(|| format!("reading {name} from the zip"))?;
            files.insert(name, buf);
        }
    }
    Ok(files)
}

/// Reads every regular file of a `.tar.xz` into memory (bundles are small).
pub fn read_tar_xz(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ar = tar::Archive::new(xz2::read::XzDecoder::new(std::io::BufReader::new(f)));
    let mut files = BTreeMap::new();
    for e in ar.entries().context("reading the archive")? {
        let mut e = e.context("reading an archive entry")?;
        let p = e.path()?.to_string_lossy().into_owned();
        if e.header().entry_type().is_file() {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut buf)
                .with_context(|| format!("reading {p} from the archive"))?;
            files.insert(p, buf);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry {
                path: "t/b".into(),
                mode: 0o644,
                data: Some(b"bee".to_vec()),
            },
            Entry {
                path: "t/".into(),
                mode: 0o755,
                data: None,
            },
            Entry {
                path: "t/a".into(),
                mode: 0o755,
                data: Some(vec![0u8; 70_000]),
            },
        ]
    }

    #[test]
    fn the_same_entries_give_the_same_bytes_in_any_order() {
        let dir = std::env::temp_dir().join(format!("timb-tar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.tar.xz");
        let b = dir.join("b.tar.xz");
        write_tar_xz(sample(), &a, 1_700_000_000).unwrap();
        let mut rev = sample();
        rev.reverse();
        write_tar_xz(rev, &b, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let files = read_tar_xz(&a).unwrap();
        assert_eq!(files["t/b"], b"bee");
        assert_eq!(files["t/a"].len(), 70_000);
        // A different mtime must change the bytes: the test above is not vacuous.
        write_tar_xz(sample(), &b, 1_700_000_001).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Code goes through the x86 branch filter, as stock xz reports it, and stock tar
    /// unpacks the archive to the same bytes.
    #[test]
    fn code_gets_the_x86_filter_and_stock_tar_reads_it() {
        let dir = std::env::temp_dir().join(format!("timb-tar-x86-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut code = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        code.truncate(512 * 1024);
        let a = dir.join("code.tar.xz");
        write_tar_xz(
            vec![Entry::file("c/code".into(), 0o755, code.clone())],
            &a,
            0,
        )
        .unwrap();
        let list = std::process::Command::new("xz")
            .args(["--robot", "--list", "-vv"])
            .arg(&a)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(list.contains("--x86 --lzma2"), "{list}");
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let tar = std::process::Command::new("tar")
            .arg("-xJf")
            .arg(&a)
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap();
        assert!(tar.success());
        assert_eq!(std::fs::read(out.join("c/code")).unwrap(), code);
        // And the liblzma the updater unpacks with (xz2's static build).
        assert_eq!(read_tar_xz(&a).unwrap()["c/code"], code);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The innermost `.app` is signed first, what signing writes is kept, and modes and the
    /// time are the zip's; the same signing gives the same bytes.
    #[test]
    fn apps_are_signed_inside_out_and_the_zip_stays_deterministic() {
        let tmp = tempfile::tempdir().unwrap();
        let entries = vec![
            Entry::dir("t/".to_string(), 0o755),
            Entry::dir("t/Timb.app/".to_string(), 0o755),
            Entry::file(
                "t/Timb.app/Contents/MacOS/timb".to_string(),
                0o755,
                b"outer".to_vec(),
            ),
            Entry::dir("t/app/1/Timb.app/".to_string(), 0o755),
            Entry::file(
                "t/app/1/Timb.app/Contents/MacOS/timb".to_string(),
                0o755,
                b"in".to_vec(),
            ),
            Entry::dir("t/profile/".to_string(), 0o700),
        ];
        let input = tmp.path().join("in.zip");
        write_zip(entries, &input, 1_700_000_000).unwrap();
        let sign = |out: &Path| {
            let mut order = Vec::new();
            let n = sign_apps_in_zip(&input, out, &tmp.path().join("work"), |app| {
                order.push(app.strip_prefix(tmp.path().join("work"))?.to_path_buf());
                let seal = app.join("Contents/_CodeSignature");
                std::fs::create_dir_all(&seal)?;
                std::fs::write(seal.join("CodeResources"), b"sealed")?;
                // As a signer under umask 077 would leave them: the zip must not care.
                use std::os::unix::fs::PermissionsExt;
                let private = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(seal.join("CodeResources"), private)?;
                std::fs::set_permissions(&seal, std::fs::Permissions::from_mode(0o700))?;
                Ok(())
            })
            .unwrap();
            assert_eq!(n, 2);
            order
        };
        let (a, b) = (tmp.path().join("a.zip"), tmp.path().join("b.zip"));
        let order = sign(&a);
        assert_eq!(
            order,
            [Path::new("t/app/1/Timb.app"), Path::new("t/Timb.app")]
        );
        sign(&b);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let files = read_zip(&a).unwrap();
        assert_eq!(
            files["t/Timb.app/Contents/_CodeSignature/CodeResources"],
            b"sealed"
        );
        assert_eq!(files["t/app/1/Timb.app/Contents/MacOS/timb"], b"in");
        let f = std::fs::File::open(&a).unwrap();
        let mut z = zip::ZipArchive::new(f).unwrap();
        let mode = |z: &mut zip::ZipArchive<std::fs::File>, name: &str| {
            z.by_name(name).unwrap().unix_mode().unwrap() & 0o777
        };
        assert_eq!(mode(&mut z, "t/profile/"), 0o700, "the zip's own mode");
        assert_eq!(
            mode(&mut z, "t/Timb.app/Contents/_CodeSignature/CodeResources"),
            0o644
        );
        assert_eq!(mode(&mut z, "t/Timb.app/Contents/_CodeSignature/"), 0o755);
        assert!(
            !tmp.path().join("work").exists(),
            "the unpacked copy was left"
        );
    }

    #[test]
    fn the_same_entries_give_the_same_zip_in_any_order() {
        let dir = std::env::temp_dir().join(format!("timb-zip-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.zip");
        let b = dir.join("b.zip");
        write_zip(sample(), &a, 1_700_000_000).unwrap();
        let mut rev = sample();
        rev.reverse();
        write_zip(rev, &b, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let files = read_zip(&a).unwrap();
        assert_eq!(files["t/b"], b"bee");
        assert_eq!(files["t/a"], vec![0u8; 70_000]);
        // Compressed, and the folder is an entry of its own.
        assert!(std::fs::metadata(&a).unwrap().len() < 10_000);
        let unzip = std::process::Command::new("unzip")
            .arg("-Z1")
            .arg(&a)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&unzip.stdout), "t/\nt/a\nt/b\n");
        // Two seconds later (the DOS time's step) must change the bytes.
        write_zip(sample(), &b, 1_700_000_002).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(write_zip(sample(), &b, 0).is_err(), "before 1980");
        // Rewritten unchanged it is the same bytes; a changed file changes only that file.
        rewrite_zip(&a, &b, |_, d| Ok(d)).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Bytes a zip holds outside its entries (here, before them, as a self-extractor's
        // stub would be) are read past and dropped: what verify checks a published zip by.
        let mut padded = b"hidden".to_vec();
        padded.extend(std::fs::read(&a).unwrap());
        let p = dir.join("padded.zip");
        std::fs::write(&p, &padded).unwrap();
        rewrite_zip(&p, &b, |_, d| Ok(d)).unwrap();
        assert_ne!(std::fs::read(&b).unwrap(), padded);
        rewrite_zip(&a, &b, |_, d| Ok(d)).unwrap();
        rewrite_zip(&a, &b, |p, d| {
            Ok(if p == "t/b" { b"wasp".to_vec() } else { d })
        })
        .unwrap();
        let files = read_zip(&b).unwrap();
        assert_eq!(
            (files["t/b"].as_slice(), files["t/a"].len()),
            (b"wasp".as_slice(), 70_000)
        );
        rewrite_zip(&b, &b.with_extension("back"), |p, d| {
            Ok(if p == "t/b" { b"bee".to_vec() } else { d })
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(b.with_extension("back")).unwrap()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn duplicate_entries_are_refused() {
        let dir = std::env::temp_dir().join(format!("timb-tar-dup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = sample();
        e.push(Entry {
            path: "t/b".into(),
            mode: 0o644,
            data: Some(vec![]),
        });
        assert!(write_tar_xz(e, &dir.join("x.tar.xz"), 0).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
