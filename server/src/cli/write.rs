//! Replacing a file's contents atomically: write a sibling temporary file, flush it to disk,
//! then rename it over the original, so a crash or full disk never leaves a half-written
//! rule file behind (the rename either happens whole or not at all).

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Replaces the contents of the file at `path` (following a symlink to its target, so the
/// link stays a link), keeping its permissions.
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let target = fs::canonicalize(path)?;
    let permissions = fs::metadata(&target)?.permissions();
    let (file_name, dir) = match (target.file_name(), target.parent()) {
        (Some(name), Some(dir)) => (name.to_string_lossy().into_owned(), dir.to_path_buf()),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a path to a file",
            ))
        }
    };

    // The same directory, so the rename stays on one file system and is atomic. The leading
    // dot and the suffix keep the temporary file out of `.weir` discovery.
    let (temp_path, mut temp) = create_temp(&dir, &file_name)?;
    let written = temp
        .write_all(contents)
        .and_then(|()| temp.sync_all())
        .and_then(|()| fs::set_permissions(&temp_path, permissions))
        .and_then(|()| {
            drop(temp);
            fs::rename(&temp_path, &target)
        });
    if written.is_err() {
        // Best effort: the original is intact either way; only a stray temp file could remain.
        let _ = fs::remove_file(&temp_path);
    }
    written
}

/// Writes `contents` to `path` atomically, creating the file if it does not exist yet.
pub fn write_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    if path.exists() {
        return replace_file(path, contents);
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a path to a file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (temp_path, mut temp) = create_temp(&dir, &file_name)?;
    let written = temp
        .write_all(contents)
        .and_then(|()| temp.sync_all())
        .and_then(|()| {
            drop(temp);
            fs::rename(&temp_path, path)
        });
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written
}

fn create_temp(dir: &Path, file_name: &str) -> io::Result<(PathBuf, fs::File)> {
    let pid = std::process::id();
    let mut attempt = 0u32;
    loop {
        let path = dir.join(format!(".{file_name}.{pid}.{attempt}.weir-tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            // Left over from an earlier crashed run with the same pid: try the next name.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.weir");
        fs::write(&file, "old").unwrap();
        replace_file(&file, b"new contents").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "new contents");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rules.weir")]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.weir");
        fs::write(&file, "old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&file, b"new").unwrap();
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[cfg(unix)]
    #[test]
    fn writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.weir");
        let link = dir.path().join("link.weir");
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace_file(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    }
}
