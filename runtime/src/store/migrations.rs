//! The schema migrations of both backends, embedded in the binary and applied by
//! sqlx's `Migrator` when a store opens.
//!
//! `sqlx::migrate!` would embed them too, but the macro needs sqlx's `macros` feature,
//! which builds sqlx's compile-time query machinery for the build host: both database
//! drivers, tokio and SQLite's C sources a second time, minutes of every clean build on
//! two cores, for three files per backend. The migrations here are parsed exactly as
//! sqlx parses a migrations folder (`<version>_<description>.sql`, underscores in the
//! description read as spaces, `-- no-transaction` on the first line opting out of the
//! transaction) and checksummed by sqlx's `Migration::new`, so a database migrated by a
//! build that used the macro is recognised as up to date. A test checks that every
//! file in `runtime/migrations/` is listed here.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// A migration file: its name and its SQL.
pub type MigrationFile = (&'static str, &'static str);

/// `runtime/migrations/sqlite`, in version order.
pub const SQLITE: &[MigrationFile] = &[
    (
        "0001_store.sql",
        include_str!("../../migrations/sqlite/0001_store.sql"),
    ),
    (
        "0002_location_attributes.sql",
        include_str!("../../migrations/sqlite/0002_location_attributes.sql"),
    ),
    (
        "0003_tenants.sql",
        include_str!("../../migrations/sqlite/0003_tenants.sql"),
    ),
    (
        "0004_order_hold.sql",
        include_str!("../../migrations/sqlite/0004_order_hold.sql"),
    ),
    (
        "0005_order_sops_pending.sql",
        include_str!("../../migrations/sqlite/0005_order_sops_pending.sql"),
    ),
    (
        "0006_work_order_location.sql",
        include_str!("../../migrations/sqlite/0006_work_order_location.sql"),
    ),
];

/// `runtime/migrations/postgres`, in version order.
pub const POSTGRES: &[MigrationFile] = &[
    (
        "0001_store.sql",
        include_str!("../../migrations/postgres/0001_store.sql"),
    ),
    (
        "0002_location_attributes.sql",
        include_str!("../../migrations/postgres/0002_location_attributes.sql"),
    ),
    (
        "0003_tenants.sql",
        include_str!("../../migrations/postgres/0003_tenants.sql"),
    ),
    (
        "0004_order_hold.sql",
        include_str!("../../migrations/postgres/0004_order_hold.sql"),
    ),
    (
        "0005_order_sops_pending.sql",
        include_str!("../../migrations/postgres/0005_order_sops_pending.sql"),
    ),
    (
        "0006_work_order_location.sql",
        include_str!("../../migrations/postgres/0006_work_order_location.sql"),
    ),
];

/// A migrator over embedded files.
pub async fn migrator(files: &'static [MigrationFile]) -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(files)).await
}

#[derive(Debug)]
struct Embedded(&'static [MigrationFile]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let resolved = self
            .0
            .iter()
            .map(|&(name, sql)| migration(name, sql))
            .collect::<Result<Vec<_>, _>>()
            .map(|mut migrations| {
                migrations.sort_by_key(|m| m.version);
                migrations
            });
        Box::pin(std::future::ready(resolved))
    }
}

/// One file, read as sqlx's folder source reads it.
fn migration(name: &'static str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, rest) = name
        .split_once('_')
        .filter(|(_, rest)| rest.ends_with(".sql"))
        .ok_or_else(|| format!("migration {name:?}: not <version>_<description>.sql"))?;
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration {name:?}: the version is not an integer"))?;
    let migration_type = MigrationType::from_filename(rest);
    let description = rest
        .trim_end_matches(migration_type.suffix())
        .replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Ok(Migration::new(
        version,
        Cow::Owned(description),
        migration_type,
        Cow::Borrowed(sql),
        no_tx,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn folder_of(backend: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend)
    }

    /// Every file of a backend's migrations folder is embedded, byte for byte, and
    /// nothing else is.
    #[test]
    fn every_migration_file_is_embedded() {
        for (folder, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = folder_of(folder);
            let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(&path).unwrap())
                })
                .collect();
            on_disk.sort();
            let embedded: Vec<(String, String)> = files
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect();
            assert_eq!(embedded, on_disk, "{folder}");
        }
    }

    /// Versions, descriptions and checksums are the ones sqlx's own folder source
    /// gives (and `sqlx::migrate!` embedded), so existing databases stay valid.
    #[test]
    fn migrations_read_as_sqlx_reads_a_folder() {
        for (folder, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = folder_of(folder);
            let from_folder = sqlx::migrate::resolve_blocking(&dir).unwrap();
            let embedded: Vec<Migration> = files
                .iter()
                .map(|&(name, sql)| migration(name, sql).unwrap())
                .collect();
            assert_eq!(embedded.len(), from_folder.len());
            for (ours, (theirs, _)) in embedded.iter().zip(&from_folder) {
                assert_eq!(ours.version, theirs.version);
                assert_eq!(ours.description, theirs.description);
                assert_eq!(ours.checksum, theirs.checksum);
                assert_eq!(ours.no_tx, theirs.no_tx);
                assert_eq!(ours.migration_type, theirs.migration_type);
            }
        }
        assert!(migration("store.sql", "").is_err());
        assert!(migration("x1_store.sql", "").is_err());
        assert_eq!(
            migration("0002_location_attributes.sql", "")
                .unwrap()
                .description,
            "location attributes"
        );
    }
}
