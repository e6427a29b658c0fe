//! Precompiled modules ([`Artifact`]) and their on-disk, content-addressed cache
//! ([`ArtifactCache`]).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::error::EngineError;
use super::Engine;

/// Content hash naming an artifact: SHA-256 of the WASM bytes together with everything
/// that decides the machine code wasmtime generates for them (see
/// [`Engine::artifact_key`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactKey([u8; 32]);

impl ArtifactKey {
    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }
}

impl fmt::Display for ArtifactKey {
    /// Lower-case hex, 64 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactKey({self})")
    }
}

/// A module compiled ahead of time by [`Engine::precompile`], ready for
/// [`Engine::load`].
///
/// There is deliberately no public constructor from bytes: an artifact is machine code
/// that `load` maps and runs, so it can only come from this engine's own compiler or
/// from an [`ArtifactCache`] file whose checksum matches what that compiler wrote.
#[derive(Clone)]
pub struct Artifact {
    key: ArtifactKey,
    bytes: Arc<[u8]>,
}

impl Artifact {
    pub(crate) fn new(key: ArtifactKey, bytes: Vec<u8>) -> Self {
        Self {
            key,
            bytes: bytes.into(),
        }
    }

    /// The content hash this artifact is stored under.
    pub fn key(&self) -> &ArtifactKey {
        &self.key
    }

    /// The serialized module (wasmtime's `.cwasm` format), for inspection and size
    /// reporting.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifact")
            .field("key", &self.key)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What [`ArtifactCache::get_or_compile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// The artifact was read from the cache; nothing was compiled.
    Hit,
    /// There was no cache file; the module was compiled and the file written.
    Compiled,
    /// The cache file was corrupt; the module was compiled again and the file replaced.
    Replaced,
}

/// A directory of precompiled artifacts, one file `<key>.cwasm` per [`ArtifactKey`].
///
/// Files are written atomically (a temporary file in the same directory, synced, then
/// renamed), so a reader sees either no file or a complete one, and concurrent writers
/// of the same key write the same content. Each file is a 72-byte header — the magic
/// `WEIRCWA1`, the key, and the SHA-256 of the rest — followed by wasmtime's serialized
/// module. The checksum catches truncated or damaged files before wasmtime maps their
/// code. The directory must be writable only by the service itself: the checksum
/// guards against accidents, not against someone who can write files there.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

const MAGIC: &[u8; 8] = b"WEIRCWA1";
const HEADER_LEN: usize = 8 + 32 + 32;

impl ArtifactCache {
    /// Opens (creating it if needed) the cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file an artifact with this key is stored in.
    pub fn path_for(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Reads the artifact stored under `key`: `Ok(None)` if there is no file,
    /// [`EngineError::CorruptArtifact`] if the file is not intact.
    pub fn read(&self, key: &ArtifactKey) -> Result<Option<Artifact>, EngineError> {
        let path = self.path_for(key);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EngineError::Io { path, source }),
        };
        let corrupt = |reason: &str| EngineError::CorruptArtifact {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let (Some(magic), Some(stored_key), Some(checksum), Some(payload)) = (
            data.get(..8),
            data.get(8..40),
            data.get(40..HEADER_LEN),
            data.get(HEADER_LEN..),
        ) else {
            return Err(corrupt("shorter than the header"));
        };
        if magic != MAGIC {
            return Err(corrupt("not a weir artifact (bad magic)"));
        }
        if stored_key != key.as_bytes() {
            return Err(corrupt("stored under the wrong key"));
        }
        if Sha256::digest(payload).as_slice() != checksum {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Some(Artifact::new(*key, payload.to_vec())))
    }

    /// Reads the artifact for `wasm` compiled by `engine`, if cached.
    pub fn get(&self, engine: &Engine, wasm: &[u8]) -> Result<Option<Artifact>, EngineError> {
        self.read(&engine.artifact_key(wasm))
    }

    /// Writes `artifact` to its file (atomically) and returns the path.
    pub fn insert(&self, artifact: &Artifact) -> Result<PathBuf, EngineError> {
        static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path_for(artifact.key());
        let temp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            artifact.key(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::Io { path, source }
        };
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(MAGIC)?;
            file.write_all(artifact.key().as_bytes())?;
            file.write_all(&Sha256::digest(artifact.as_bytes()))?;
            file.write_all(artifact.as_bytes())?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&temp);
            return Err(io_err(&temp)(e));
        }
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(io_err(&path)(e));
        }
        Ok(path)
    }

    /// The artifact for `wasm`: read from the cache when present and intact (no
    /// compilation), otherwise compiled with [`Engine::precompile`] and stored. A corrupt
    /// file is replaced.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Artifact, CacheStatus), EngineError> {
        let status = match self.get(engine, wasm) {
            Ok(Some(artifact)) => return Ok((artifact, CacheStatus::Hit)),
            Ok(None) => CacheStatus::Compiled,
            Err(EngineError::CorruptArtifact { .. }) => CacheStatus::Replaced,
            Err(e) => return Err(e),
        };
        let artifact = engine.precompile(wasm)?;
        self.insert(&artifact)?;
        Ok((artifact, status))
    }
}
