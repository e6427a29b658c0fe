//! Tenants' API keys: issuing, hashing, and the [`Caller`] extractor every `/v1` route
//! takes.
//!
//! A key is `weir_` and 64 hex digits (32 bytes from the OS's random source). The store
//! keeps only its SHA-256: a fast hash is right for a secret with 256 bits of entropy
//! (a slow password hash protects guessable secrets; there is nothing to guess here),
//! and it lets a request be authenticated with one indexed lookup. Found keys are cached
//! for [`CACHE_TTL`] so a hot client does not cost a query per request; a key revoked
//! through this process is dropped from its cache at once, and other processes stop
//! accepting it within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use weir_runtime::store::{ApiKey, NewApiKey, Store, StoreError};

use super::problem::Problem;
use super::AppState;

/// How long a looked-up key is trusted without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
const PREFIX: &str = "weir_";

/// What a key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Orders, shipments, returns, inventory, presales, SOP work orders.
    Orders,
    /// Rulesets and runtime lists.
    Rules,
    /// Everything, and the tenant's API keys.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Orders => "orders",
            Scope::Rules => "rules",
            Scope::Admin => "admin",
        }
    }
}

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// `admin` includes every scope.
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self
            .scopes
            .iter()
            .any(|s| s == scope.as_str() || s == Scope::Admin.as_str())
        {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this API key has scopes [{}]; this operation needs `{}`",
                self.scopes.join(", "),
                scope.as_str()
            )))
        }
    }
}

/// Hex SHA-256 of a key's secret.
pub fn hash_key(secret: &str) -> String {
    weir_runtime::digest::sha256_hex(secret.as_bytes())
}

/// Issues a key for `tenant`; the secret is returned once and never stored.
pub async fn issue_key(
    store: &dyn Store,
    tenant: &str,
    label: &str,
    scopes: &[String],
) -> Result<(ApiKey, String), StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("no random source for a key: {e}")))?;
    let secret = format!("{PREFIX}{}", weir_runtime::digest::hex(&bytes));
    let key = store
        .create_api_key(
            tenant,
            &NewApiKey {
                id: format!("key_{}", uuid::Uuid::now_v7().simple()),
                key_hash: hash_key(&secret),
                label: label.to_owned(),
                scopes: scopes.to_vec(),
            },
        )
        .await?;
    Ok((key, secret))
}

/// Keys found recently, by hash.
#[derive(Debug, Default)]
pub struct KeyCache(Mutex<HashMap<String, (ApiKey, Instant)>>);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<ApiKey> {
        let map = self.0.lock().ok()?;
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(key, _)| key.clone())
    }

    fn put(&self, hash: String, key: ApiKey) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            map.insert(hash, (key, Instant::now()));
        }
    }

    /// Forgets a key (after its revocation).
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, (key, _)| key.id != key_id);
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <API key>`"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| s.starts_with(PREFIX))
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer weir_…`")
            })?;
        let hash = hash_key(secret);
        let key = match state.keys.get(&hash) {
            Some(key) => key,
            None => {
                let key = state
                    .store
                    .api_key_by_hash(&hash)
                    .await?
                    .ok_or_else(|| Problem::unauthorized("unknown API key"))?;
                state.keys.put(hash, key.clone());
                key
            }
        };
        if key.revoked_at.is_some() {
            return Err(Problem::unauthorized("this API key was revoked"));
        }
        Ok(Caller {
            tenant: key.tenant,
            key_id: key.id,
            scopes: key.scopes,
        })
    }
}
