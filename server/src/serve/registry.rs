//! Live rulesets: which compiled version of each tenant's ruleset decides orders now.
//!
//! The active versions sit in one immutable map behind an [`ArcSwap`]: an order loads
//! the map once, takes its `Arc<Version>`, and finishes on that version even if an
//! activation swaps the map meanwhile. Activation checks, compiles and precompiles the
//! version first (on a blocking thread, never on an order's path), then records the
//! activation in the store, then swaps. Compiled versions are shared by content hash,
//! so re-activating a version or loading it on start-up costs one compile per process.
//!
//! With PostgreSQL the store announces every activation (`NOTIFY`), and each server
//! process reloads that ruleset from the store (`listen`), so one activation reaches
//! every process.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use weir_dsl::SourceText;
use weir_runtime::engine::Engine;
use weir_runtime::services::orders::{self, Rules};
use weir_runtime::store::{RulesetVersion, Store, StoreError};

use crate::cli::{render, sources::LoadedFile};

/// Most files in one uploaded ruleset.
pub const MAX_FILES: usize = 64;

/// A runnable ruleset version and the sources it was built from (for `explain`).
pub struct Version {
    pub rules: Rules,
    pub sources: Vec<SourceText>,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.rules.fmt(f)
    }
}

/// Why files could not become a runnable version.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Files(String),
    /// The checker's report (the `weir check --format json` document).
    #[error("the ruleset has {errors} error(s)")]
    Diagnostics { errors: usize, report: Json },
    #[error("compiling the ruleset failed: {0}")]
    Compile(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of checking uploaded files.
pub struct Checked {
    pub name: Option<String>,
    pub content_hash: String,
    pub report: Json,
    pub errors: usize,
    pub warnings: usize,
    ruleset: Option<weir_dsl::checked::Ruleset>,
    sources: Vec<SourceText>,
}

/// The version's identity: SHA-256 over the files in name order, each as length-prefixed
/// name and text (so no two different file sets share a hash).
pub fn content_hash(files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    weir_runtime::digest::hex(&hasher.finalize())
}

/// Longest rule file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 128;

/// What [`plain_file_name`] accepts, as the OpenAPI description states it (ECMA-262).
pub const FILE_NAME_PATTERN: &str = r"^[^./\\][^/\\]*\.weir$";

/// A plain rule file name: not hidden, no folders, ending in `.weir`, at most
/// [`MAX_FILE_NAME_CHARS`] characters.
fn plain_file_name(name: &str) -> bool {
    name.chars().count() <= MAX_FILE_NAME_CHARS
        && name.ends_with(".weir")
        && !name.contains(['/', '\\'])
        && !name.starts_with('.')
}

/// Checks a set of files as one ruleset: names, sizes, then the language's checker.
pub fn check_files(files: &BTreeMap<String, String>) -> Result<Checked, BuildError> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(BuildError::Files(format!(
            "a ruleset has 1 to {MAX_FILES} files, got {}",
            files.len()
        )));
    }
    for (name, text) in files {
        if !plain_file_name(name) {
            return Err(BuildError::Files(format!(
                "file name `{name}`: a plain name ending in `.weir` (no folders), at most {MAX_FILE_NAME_CHARS} characters"
            )));
        }
        if text.len() > weir_dsl::MAX_FILE_BYTES {
            return Err(BuildError::Files(format!(
                "file `{name}` has {} bytes; a rule file has at most {}",
                text.len(),
                weir_dsl::MAX_FILE_BYTES
            )));
        }
    }
    let sources: Vec<SourceText> = files
        .iter()
        .map(|(name, text)| SourceText {
            name: name.clone(),
            text: text.clone(),
        })
        .collect();
    let out = weir_dsl::check(&sources);
    let loaded: Vec<LoadedFile> = files
        .iter()
        .map(|(name, text)| LoadedFile {
            path: PathBuf::from(name),
            name: name.clone(),
            ruleset: 0,
            text: text.clone(),
            unreadable: None,
        })
        .collect();
    let mut diagnostics = out.diagnostics.clone();
    render::sort(&mut diagnostics);
    let mut buffer = Vec::new();
    render::json(&mut buffer, &loaded, &diagnostics)
        .map_err(|e| BuildError::Compile(format!("rendering diagnostics: {e}")))?;
    let report: Json = serde_json::from_slice(&buffer).unwrap_or(Json::Null);
    let count = |key: &str| {
        report
            .pointer(&format!("/summary/{key}"))
            .and_then(Json::as_u64)
            .unwrap_or(0) as usize
    };
    let (errors, warnings) = (count("errors"), count("warnings"));
    let ruleset = if out.has_errors() { None } else { out.ruleset };
    Ok(Checked {
        name: ruleset.as_ref().map(|r| r.name.clone()),
        content_hash: content_hash(files),
        report,
        errors,
        warnings,
        ruleset,
        sources,
    })
}

/// Compiles checked files to a loaded module (CPU-bound: call it off the async threads).
pub fn build(engine: &Engine, checked: Checked) -> Result<Version, BuildError> {
    let Some(ruleset) = checked.ruleset else {
        return Err(BuildError::Diagnostics {
            errors: checked.errors.max(1),
            report: checked.report,
        });
    };
    let name = ruleset.name.clone();
    let (compiled, wasm) =
        weir_compiler::build(&ruleset).map_err(|e| BuildError::Compile(e.to_string()))?;
    let rules = orders::rules(
        engine,
        &name,
        &checked.content_hash,
        ruleset,
        compiled,
        &wasm,
    )
    .map_err(|e| BuildError::Compile(e.to_string()))?;
    Ok(Version {
        rules,
        sources: checked.sources,
    })
}

/// The files of a stored version.
pub fn stored_files(version: &RulesetVersion) -> Result<BTreeMap<String, String>, BuildError> {
    serde_json::from_value(version.files.clone()).map_err(|e| {
        BuildError::Store(StoreError::Corrupt(format!(
            "ruleset `{}` version {}: files: {e}",
            version.name, version.content_hash
        )))
    })
}

type Key = (String, String);

/// The active version of every tenant's rulesets.
pub struct Registry {
    engine: Engine,
    store: Arc<dyn Store>,
    active: ArcSwap<HashMap<Key, Arc<Version>>>,
    /// Built versions by content hash (weak: a version nobody uses is dropped).
    built: Mutex<HashMap<String, Weak<Version>>>,
    /// Serializes activations, rollbacks and reloads of this process.
    swap: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn new(engine: Engine, store: Arc<dyn Store>) -> Self {
        Registry {
            engine,
            store,
            active: ArcSwap::from_pointee(HashMap::new()),
            built: Mutex::new(HashMap::new()),
            swap: tokio::sync::Mutex::new(()),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The version deciding `tenant`'s orders under `name` now.
    pub fn active(&self, tenant: &str, name: &str) -> Option<Arc<Version>> {
        self.active
            .load()
            .get(&(tenant.to_owned(), name.to_owned()))
            .cloned()
    }

    /// `(name, content hash)` of a tenant's active rulesets, by name.
    pub fn active_names(&self, tenant: &str) -> Vec<(String, String)> {
        let map = self.active.load();
        let mut names: Vec<(String, String)> = map
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, name), v)| (name.clone(), v.rules.version.clone()))
            .collect();
        names.sort();
        names
    }

    /// Checks and builds files off the async threads, sharing an earlier build of the
    /// same content.
    pub async fn build_files(
        &self,
        files: BTreeMap<String, String>,
    ) -> Result<Arc<Version>, BuildError> {
        let hash = content_hash(&files);
        if let Some(version) = self.cached(&hash) {
            return Ok(version);
        }
        let engine = self.engine.clone();
        let version = tokio::task::spawn_blocking(move || build(&engine, check_files(&files)?))
            .await
            .map_err(|e| BuildError::Compile(format!("the compile task failed: {e}")))??;
        let version = Arc::new(version);
        if let Ok(mut built) = self.built.lock() {
            built.retain(|_, weak| weak.strong_count() > 0);
            built.insert(hash, Arc::downgrade(&version));
        }
        Ok(version)
    }

    fn cached(&self, hash: &str) -> Option<Arc<Version>> {
        self.built.lock().ok()?.get(hash).and_then(Weak::upgrade)
    }

    /// A stored version, built (from the cache when it was built before).
    pub async fn load(&self, stored: &RulesetVersion) -> Result<Arc<Version>, BuildError> {
        if let Some(version) = self.cached(&stored.content_hash) {
            return Ok(version);
        }
        self.build_files(stored_files(stored)?).await
    }

    /// A version of `tenant`'s ruleset by hash, active or not.
    pub async fn version(
        &self,
        tenant: &str,
        name: &str,
        hash: &str,
    ) -> Result<Option<Arc<Version>>, BuildError> {
        if let Some(active) = self.active(tenant, name) {
            if active.rules.version == hash {
                return Ok(Some(active));
            }
        }
        let versions = self.store.ruleset_versions(tenant, name).await?;
        match versions.iter().find(|v| v.content_hash == hash) {
            Some(stored) => Ok(Some(self.load(stored).await?)),
            None => Ok(None),
        }
    }

    fn install(&self, tenant: &str, name: &str, version: Option<Arc<Version>>) {
        let key = (tenant.to_owned(), name.to_owned());
        self.active.rcu(|map| {
            let mut map = HashMap::clone(map);
            match &version {
                Some(v) => map.insert(key.clone(), v.clone()),
                None => map.remove(&key),
            };
            map
        });
    }

    /// Makes a saved version active: built first, then recorded, then swapped in.
    pub async fn activate(
        &self,
        tenant: &str,
        name: &str,
        hash: &str,
    ) -> Result<RulesetVersion, ActivateError> {
        let version = self
            .version(tenant, name, hash)
            .await?
            .ok_or_else(|| ActivateError::UnknownVersion(format!("{name}@{hash}")))?;
        let _guard = self.swap.lock().await;
        let stored = self.store.activate_ruleset(tenant, name, hash).await?;
        self.install(tenant, name, Some(version));
        Ok(stored)
    }

    /// Re-activates the version active before the current one.
    pub async fn rollback(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<RulesetVersion, ActivateError> {
        let _guard = self.swap.lock().await;
        let stored = self.store.rollback_ruleset(tenant, name).await?;
        let version = self.load(&stored).await?;
        self.install(tenant, name, Some(version));
        Ok(stored)
    }

    /// Reloads one ruleset's active version from the store (after another process
    /// activated it).
    pub async fn reload(&self, tenant: &str, name: &str) -> Result<(), BuildError> {
        let _guard = self.swap.lock().await;
        let version = match self.store.active_ruleset(tenant, name).await? {
            Some(stored) => Some(self.load(&stored).await?),
            None => None,
        };
        self.install(tenant, name, version);
        Ok(())
    }

    /// Reloads every tenant's active versions (start-up, or after a lost connection).
    /// A version that no longer builds is logged and left out; the rest load.
    pub async fn reload_all(&self) -> Result<usize, BuildError> {
        let _guard = self.swap.lock().await;
        let mut map = HashMap::new();
        for (tenant, stored) in self.store.all_active_rulesets().await? {
            match self.load(&stored).await {
                Ok(version) => {
                    map.insert((tenant, stored.name.clone()), version);
                }
                Err(error) => tracing::error!(
                    tenant, ruleset = stored.name, version = stored.content_hash, %error,
                    "an active ruleset version does not build; it is not loaded"
                ),
            }
        }
        let count = map.len();
        self.active.store(Arc::new(map));
        Ok(count)
    }

    /// Saves files as a version of their ruleset (checked and built first).
    pub async fn save(
        &self,
        tenant: &str,
        files: BTreeMap<String, String>,
    ) -> Result<(RulesetVersion, Arc<Version>), BuildError> {
        let version = self.build_files(files.clone()).await?;
        let stored = self
            .store
            .save_ruleset_version(
                tenant,
                &weir_runtime::store::NewRulesetVersion {
                    name: version.rules.name.clone(),
                    content_hash: version.rules.version.clone(),
                    files: json!(files),
                },
            )
            .await?;
        Ok((stored, version))
    }
}

/// Why an activation or rollback did not happen (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("no saved version {0}")]
    UnknownVersion(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The description's `propertyNames` of `files` states the rule the server applies.
    #[test]
    fn the_file_name_pattern_agrees_with_the_check() {
        let pattern = regex::Regex::new(FILE_NAME_PATTERN).unwrap();
        let long = format!("{}.weir", "规".repeat(MAX_FILE_NAME_CHARS - 5));
        let too_long = format!("{}.weir", "规".repeat(MAX_FILE_NAME_CHARS - 4));
        for (name, plain) in [
            ("rules.weir", true),
            ("促销 规则.weir", true),
            ("a.b.weir", true),
            (long.as_str(), true),
            ("", false),
            (".weir", false),
            (".hidden.weir", false),
            ("rules.txt", false),
            ("rules.weir.bak", false),
            ("dir/rules.weir", false),
            ("dir\\rules.weir", false),
            (too_long.as_str(), false),
        ] {
            assert_eq!(plain_file_name(name), plain, "{name:?}");
            let by_schema = pattern.is_match(name) && name.chars().count() <= MAX_FILE_NAME_CHARS;
            assert_eq!(by_schema, plain, "{name:?}");
        }
    }
}
