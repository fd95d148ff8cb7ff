//! Artifact files: the layers of a pulled image manifest that carry an
//! `org.opencontainers.image.title` annotation, written under a directory as files of
//! that name (what `oras pull` users expect).
//!
//! A title comes from the registry, so it is untrusted: only relative paths of plain
//! components are accepted (no absolute path, no `..`, no `.`), nothing is written
//! through a symlink or over something that is not a regular file, and a file that
//! exists with other content is an error rather than overwritten. Each file is written
//! to a temporary name beside it and renamed into place once complete.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use ocireg_core::manifest::{Descriptor, Manifest};
use ocireg_core::Digest;

use crate::layout::{blob_path, read_blob};

/// The annotation that names a layer's file.
pub const TITLE: &str = "org.opencontainers.image.title";

/// Longest title accepted, in bytes.
const MAX_TITLE: usize = 4096;

/// What [`write_titled_files`] did with one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    /// Its path (under the directory).
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// It was there already with the same content.
    pub present: bool,
}

/// Writes each titled layer of `manifest` (an image manifest in the layout at `layout`)
/// as a file under `dir` (created if needed). An index is refused: one image's files
/// are written, so a platform must be chosen first.
pub fn write_titled_files(
    layout: &Path,
    manifest: &Descriptor,
    dir: &Path,
) -> io::Result<Vec<WrittenFile>> {
    let bytes = read_blob(layout, &manifest.digest)?;
    let (parsed, _) = Manifest::parse(&manifest.media_type, &bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let Manifest::Image(image) = parsed else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is an index: pull one platform (--platform) to write its files",
                manifest.digest
            ),
        ));
    };
    fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
    let mut seen = HashSet::new();
    let mut written = Vec::new();
    for layer in &image.layers {
        let Some(title) = layer.annotations.as_ref().and_then(|a| a.get(TITLE)) else {
            continue;
        };
        let relative = safe_relative(title)?;
        if !seen.insert(relative.clone()) {
            return Err(invalid(format!("two layers are titled {title:?}")));
        }
        let parent = make_parents(dir, &relative)?;
        let target = dir.join(&relative);
        let present = match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(at(&target, e)),
            Ok(m) if !m.is_file() => {
                return Err(invalid(format!(
                    "{} exists and is not a regular file; not written",
                    target.display()
                )))
            }
            Ok(_) => {
                let have = fs::read(&target).map_err(|e| at(&target, e))?;
                if Digest::of(layer.digest.algorithm(), &have) != layer.digest {
                    return Err(invalid(format!(
                        "{} exists with other content; remove it or write the files to an empty directory",
                        target.display()
                    )));
                }
                true
            }
        };
        if !present {
            copy_into_place(&blob_path(layout, &layer.digest), &parent, &target)?;
        }
        written.push(WrittenFile {
            path: target,
            size: layer.len(),
            present,
        });
    }
    Ok(written)
}

/// `title` as a relative path of plain components, or an error that says why not.
/// Components are separated by `/`; a backslash is refused rather than guessed at.
pub(crate) fn safe_relative(title: &str) -> io::Result<PathBuf> {
    let refuse = |why: &str| invalid(format!("layer title {title:?} {why}; not written"));
    if title.is_empty() || title.len() > MAX_TITLE || title.contains(['\0', '\\']) {
        return Err(refuse("is empty, too long or holds a NUL or a backslash"));
    }
    if title.starts_with('/') {
        return Err(refuse("is absolute"));
    }
    let mut out = PathBuf::new();
    for part in title.split('/') {
        match part {
            ".." => return Err(refuse("climbs out of the directory (..)")),
            "." | "" => return Err(refuse("holds an empty or '.' component")),
            _ => out.push(part),
        }
    }
    // what the platform makes of it must still be plain (no drive prefix, say)
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse("is not a plain relative path"));
    }
    Ok(out)
}

/// Creates the directories of `relative` under `dir` (each must be a real directory,
/// never a symlink); the file's parent.
fn make_parents(dir: &Path, relative: &Path) -> io::Result<PathBuf> {
    let mut at_dir = dir.to_path_buf();
    let mut parts: Vec<_> = relative.components().collect();
    parts.pop();
    for part in parts {
        at_dir.push(part);
        match fs::symlink_metadata(&at_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "{} is not a directory (or is a symlink); nothing is written through it",
                    at_dir.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at_dir).map_err(|e| at(&at_dir, e))?
            }
            Err(e) => return Err(at(&at_dir, e)),
        }
    }
    Ok(at_dir)
}

/// Copies `from` to a new temporary file in `parent`, then renames it to `target`.
fn copy_into_place(from: &Path, parent: &Path, target: &Path) -> io::Result<()> {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.ocireg-{}", std::process::id()));
    let result = (|| {
        let mut src = File::open(from).map_err(|e| at(from, e))?;
        // create_new: never through a symlink or over a file someone else placed there
        let mut dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| at(&tmp, e))?;
        io::copy(&mut src, &mut dst).map_err(|e| at(&tmp, e))?;
        dst.flush()?;
        dst.sync_all().map_err(|e| at(&tmp, e))?;
        fs::rename(&tmp, target).map_err(|e| at(target, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_plain_relative_paths() {
        for ok in ["a.txt", "dir/b.json", "x/y/z"] {
            assert_eq!(safe_relative(ok).unwrap(), PathBuf::from(ok));
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "./a",
            "a/./b",
            "a\0b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?} accepted");
        }
        assert!(safe_relative(&"a".repeat(MAX_TITLE + 1)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn nothing_is_written_through_a_symlinked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        let e = make_parents(dir.path(), Path::new("sub/file")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // a plain directory is made
        let p = make_parents(dir.path(), Path::new("new/deeper/file")).unwrap();
        assert!(p.is_dir() && p.ends_with("new/deeper"));
    }
}
