//! The demo merchant `weir serve` sets up with no arguments: tenant `demo`, every
//! ruleset under `rulesets/` saved and active, each business's demo stock
//! (`rulesets/<business>/demo.json`) received on first start, and a fresh `admin` key.
//!
//! Start-up is repeatable: a ruleset whose files changed since the last start becomes
//! a new active version; stock is seeded only when the tenant is created (later starts
//! keep whatever the orders did to it); each start revokes the previous start-up key
//! and prints a new one, because a key's secret is shown only once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use weir_runtime::store::{
    Capabilities, Location, LocationKind, LotRef, NewPresale, NewWave, Receipt, StoreError,
};

use super::auth::issue_key;
use super::{AppState, ServeError};

pub const TENANT: &str = "demo";
const KEY_LABEL: &str = "weir serve start-up key";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    #[allow(dead_code)] // documentation for the reader of the file
    description: String,
    #[serde(default)]
    locations: Vec<SeedLocation>,
    #[serde(default)]
    stock: Vec<SeedStock>,
    #[serde(default)]
    lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    presales: Vec<SeedPresale>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedLocation {
    id: String,
    kind: String,
    name: String,
    lat: f64,
    lon: f64,
    capabilities: Capabilities,
    #[serde(default)]
    attributes: Option<Map<String, Json>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedLot {
    lot_id: String,
    expires_in_days: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedStock {
    sku: String,
    location_id: String,
    qty: i64,
    #[serde(default)]
    lot: Option<SeedLot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedWave {
    release_in_minutes: i64,
    qty: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedPresale {
    session_id: String,
    sku: String,
    location_id: String,
    qty: i64,
    waves: Vec<SeedWave>,
    ends_in_hours: i64,
}

/// What start-up prepared.
#[derive(Debug, Clone)]
pub struct Demo {
    pub tenant: String,
    /// The `admin` key's secret (printed once).
    pub key: String,
    /// `(ruleset name, folder)` of every ruleset made active.
    pub rulesets: Vec<(String, PathBuf)>,
    /// Whether the tenant (and its stock) was created by this start.
    pub created: bool,
}

/// The folders under `root` that hold `.weir` files directly, by name.
fn ruleset_dirs(root: &Path) -> Result<Vec<PathBuf>, ServeError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() && !weir_files(&path)?.is_empty() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn weir_files(dir: &Path) -> Result<BTreeMap<String, String>, ServeError> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "weir") {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                files.insert(name.to_owned(), std::fs::read_to_string(&path)?);
            }
        }
    }
    Ok(files)
}

/// Sets up the demo merchant from the rulesets under `root`.
pub async fn prepare(state: &AppState, root: &Path) -> Result<Demo, ServeError> {
    let store = state.store.as_ref();
    let created = match store.create_tenant(TENANT, "Demo merchant").await {
        Ok(_) => true,
        Err(StoreError::AlreadyExists { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let mut rulesets = Vec::new();
    for dir in ruleset_dirs(root)? {
        let files = weir_files(&dir)?;
        let (stored, _) = state
            .rules
            .save(TENANT, files)
            .await
            .map_err(|e| ServeError::Demo(format!("{}: {e}", dir.display())))?;
        let active = store.active_ruleset(TENANT, &stored.name).await?;
        if active.map(|a| a.content_hash) != Some(stored.content_hash.clone()) {
            state
                .rules
                .activate(TENANT, &stored.name, &stored.content_hash)
                .await
                .map_err(|e| ServeError::Demo(format!("{}: {e}", dir.display())))?;
        }
        if created {
            let seed = dir.join("demo.json");
            if seed.is_file() {
                seed_stock(state, &seed).await?;
            }
        }
        rulesets.push((stored.name, dir));
    }
    for key in store.api_keys(TENANT).await? {
        if key.label == KEY_LABEL && key.revoked_at.is_none() {
            store.revoke_api_key(TENANT, &key.id).await?;
        }
    }
    let (_, key) = issue_key(store, TENANT, KEY_LABEL, &["admin".to_owned()]).await?;
    Ok(Demo {
        tenant: TENANT.to_owned(),
        key,
        rulesets,
        created,
    })
}

async fn seed_stock(state: &AppState, path: &Path) -> Result<(), ServeError> {
    let text = std::fs::read_to_string(path)?;
    let seed: Seed = serde_json::from_str(&text)
        .map_err(|e| ServeError::Demo(format!("{}: {e}", path.display())))?;
    let store = state.store.as_ref();
    let now = store.now();
    for l in &seed.locations {
        let kind = LocationKind::parse(&l.kind).ok_or_else(|| {
            ServeError::Demo(format!("{}: location kind `{}`", path.display(), l.kind))
        })?;
        store
            .upsert_location(
                TENANT,
                &Location {
                    id: l.id.clone(),
                    kind,
                    name: l.name.clone(),
                    lat: l.lat,
                    lon: l.lon,
                    capabilities: l.capabilities,
                },
            )
            .await?;
        if let Some(attributes) = &l.attributes {
            store
                .set_location_attributes(TENANT, &l.id, attributes)
                .await?;
        }
    }
    for s in &seed.stock {
        store
            .receive(
                TENANT,
                &Receipt {
                    sku: s.sku.clone(),
                    location_id: s.location_id.clone(),
                    qty: s.qty,
                    lot: s.lot.as_ref().map(|lot| LotRef {
                        lot_id: lot.lot_id.clone(),
                        expires_at: now + lot.expires_in_days * DAY_MS,
                    }),
                    reference: "demo seed".to_owned(),
                },
            )
            .await?;
    }
    for (name, members) in &seed.lists {
        store.replace_list(TENANT, name, members, None).await?;
    }
    for p in &seed.presales {
        store
            .lock_presale(
                TENANT,
                &NewPresale {
                    session_id: p.session_id.clone(),
                    sku: p.sku.clone(),
                    location_id: p.location_id.clone(),
                    qty: p.qty,
                    waves: p
                        .waves
                        .iter()
                        .map(|w| NewWave {
                            release_at: now + w.release_in_minutes * 60_000,
                            qty: w.qty,
                        })
                        .collect(),
                    ends_at: now + p.ends_in_hours * 3_600_000,
                },
            )
            .await?;
    }
    Ok(())
}
