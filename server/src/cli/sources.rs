//! Finding rule files on disk, grouping them into rulesets, and reading them as text.
//!
//! Grouping rule: a file named on the command line is a ruleset of its own; in a directory,
//! the `.weir` files directly inside form one ruleset and each subdirectory is searched the
//! same way. Everything is read before anything is checked, so an unreadable path stops the
//! run with exit 2 before any output that could be mistaken for a complete result.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use weir_dsl::{decode_utf8, Code, Diagnostic, Span, MAX_FILE_BYTES};

/// Why the files named on the command line could not be found or read.
#[derive(Debug)]
pub enum SourceError {
    NotFound(PathBuf),
    NoWeirFiles(PathBuf),
    NotAFileOrDirectory(PathBuf),
    Io { path: PathBuf, error: io::Error },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NotFound(path) => {
                write!(f, "no such file or directory: {}", path.display())
            }
            SourceError::NoWeirFiles(path) => write!(f, "no .weir files under {}", path.display()),
            SourceError::NotAFileOrDirectory(path) => {
                write!(f, "not a file or directory: {}", path.display())
            }
            // The io::Error is the `source`; `{:#}` appends it.
            SourceError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn io_error(path: &Path, error: io::Error) -> SourceError {
    if error.kind() == io::ErrorKind::NotFound {
        SourceError::NotFound(path.to_path_buf())
    } else {
        SourceError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// Finds the rule files under `paths`, grouped into rulesets, in a stable order: argument
/// order, then per directory its own files (by name) before its subdirectories (by name).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Vec<PathBuf>>, SourceError> {
    let mut groups = Vec::new();
    // Canonical directories already searched: a symlink loop must not recurse forever.
    let mut visited = HashSet::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|error| io_error(path, error))?;
        if metadata.is_file() {
            groups.push(vec![path.clone()]);
        } else if metadata.is_dir() {
            let before = groups.len();
            walk(path, &mut groups, &mut visited)?;
            if groups.len() == before {
                return Err(SourceError::NoWeirFiles(path.clone()));
            }
        } else {
            return Err(SourceError::NotAFileOrDirectory(path.clone()));
        }
    }
    Ok(groups)
}

fn walk(
    dir: &Path,
    groups: &mut Vec<Vec<PathBuf>>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), SourceError> {
    let canonical = fs::canonicalize(dir).map_err(|error| io_error(dir, error))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| io_error(dir, error))? {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        let name = entry.file_name();
        // Skips `.git`, editor and tool state: never rule files, and can be huge.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push((name, entry.path()));
    }
    entries.sort();

    let mut files = Vec::new();
    let mut subdirectories = Vec::new();
    for (_, path) in entries {
        let is_rule_file = path.extension().is_some_and(|ext| ext == "weir");
        // `fs::metadata` follows symlinks, so linked files and folders count as what they point to.
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => subdirectories.push(path),
            Ok(metadata) if metadata.is_file() && is_rule_file => files.push(path),
            Ok(_) => {}
            // A broken link to a rule file is a rule file we cannot read; anything else is not ours.
            Err(error) if is_rule_file => return Err(io_error(&path, error)),
            Err(_) => {}
        }
    }
    if !files.is_empty() {
        groups.push(files);
    }
    for subdirectory in subdirectories {
        walk(&subdirectory, groups, visited)?;
    }
    Ok(())
}

/// One rule file as read from disk.
#[derive(Debug)]
pub struct LoadedFile {
    pub path: PathBuf,
    /// How output names the file: the path as found from the command-line argument.
    pub name: String,
    /// Index of the file's ruleset group.
    pub ruleset: usize,
    /// The text; for a file that is not UTF-8, a lossy decoding used only to show snippets.
    pub text: String,
    /// Set when the file cannot be checked at all (not UTF-8, too large): this diagnostic
    /// is reported for it and it is left out of its ruleset.
    pub unreadable: Option<Diagnostic>,
}

/// Reads every file of every group.
pub fn load(groups: &[Vec<PathBuf>]) -> Result<Vec<LoadedFile>, SourceError> {
    let mut files = Vec::new();
    for (ruleset, group) in groups.iter().enumerate() {
        for path in group {
            files.push(read(path, ruleset)?);
        }
    }
    Ok(files)
}

/// Reads one file, bounded by the front end's size limit so a huge file is not read whole.
pub fn read(path: &Path, ruleset: usize) -> Result<LoadedFile, SourceError> {
    let file = fs::File::open(path).map_err(|error| io_error(path, error))?;
    let limit = MAX_FILE_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| io_error(path, error))?;
    let name = path.display().to_string();
    let (text, unreadable) = if bytes.len() > MAX_FILE_BYTES {
        let diagnostic = Diagnostic::new(
            Code::FileTooLarge,
            Span::new(0, 0),
            format!("file is larger than the limit of {MAX_FILE_BYTES} bytes (16 MiB)"),
        )
        .with_help("split the ruleset into several files in one folder");
        (String::new(), Some(diagnostic))
    } else {
        match decode_utf8(&bytes) {
            Ok(text) => (text.to_string(), None),
            Err(diagnostic) => (
                String::from_utf8_lossy(&bytes).into_owned(),
                Some(diagnostic),
            ),
        }
    };
    Ok(LoadedFile {
        path: path.to_path_buf(),
        name,
        ruleset,
        text,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "ruleset r currency CNY\n").unwrap();
    }

    #[test]
    fn groups_directories_per_folder_in_name_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("b.weir"));
        touch(&r.join("a.weir"));
        touch(&r.join("notes.txt"));
        touch(&r.join("zeta/z.weir"));
        touch(&r.join("alpha/x.weir"));
        touch(&r.join("alpha/deeper/y.weir"));
        touch(&r.join(".git/hidden.weir"));
        touch(&r.join("empty/readme.md"));

        let groups = discover(&[r.to_path_buf()]).unwrap();
        assert_eq!(
            groups,
            vec![
                vec![r.join("a.weir"), r.join("b.weir")],
                vec![r.join("alpha/x.weir")],
                vec![r.join("alpha/deeper/y.weir")],
                vec![r.join("zeta/z.weir")],
            ]
        );
    }

    #[test]
    fn a_named_file_is_its_own_ruleset_whatever_its_extension() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("rules.txt");
        touch(&file);
        assert_eq!(
            discover(std::slice::from_ref(&file)).unwrap(),
            vec![vec![file]]
        );
    }

    #[test]
    fn missing_paths_and_empty_directories_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        assert!(matches!(
            discover(&[missing]),
            Err(SourceError::NotFound(_))
        ));
        let error = discover(&[root.path().to_path_buf()]).unwrap_err();
        assert!(matches!(error, SourceError::NoWeirFiles(_)));
        assert!(error.to_string().starts_with("no .weir files under "));
    }

    #[test]
    fn invalid_utf8_is_reported_with_lossy_text() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("bad.weir");
        fs::write(&file, b"ruleset r currency CNY\n// \xff\n").unwrap();
        let loaded = read(&file, 0).unwrap();
        let diagnostic = loaded.unreadable.unwrap();
        assert_eq!(diagnostic.code, Code::InvalidUtf8);
        assert_eq!(diagnostic.span.range(), 26..27);
        assert!(loaded.text.contains('\u{FFFD}'));
    }
}
