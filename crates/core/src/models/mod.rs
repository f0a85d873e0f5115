//! Models: the built-in catalog, the on-disk store, verified downloads and
//! imports, and resolution of a `--model` argument to files on disk.
//!
//! Store layout: `<store>/<name>/` holds a model's files exactly as
//! upstream names them, plus `glagol-model.json` recording each file's
//! SHA-256 at install time, so `glagol models verify` can detect later
//! corruption without network access.

pub mod catalog;
mod detect;
pub mod download;
mod store;

pub use catalog::{
    find as find_in_catalog, CatalogEntry, CatalogFile, Checksum, EngineKind, CATALOG,
};
pub use detect::detect;
pub use store::{InstalledModel, ModelStore, ResolvedModel, StoreError, VerifyReport};
