//! harbinger-registry: model artifacts on disk, and the model registry.
//!
//! `harbinger-model` knows the artifact as bytes (parse and check `model.json`, render the
//! card) and never touches the file system; this crate owns the files:
//! - [`files`]: an artifact directory (`model.json` + `MODEL_CARD.md`): [`load`], [`save`],
//!   and [`load_resolved`], which also takes a registry entry and loads its current
//!   version; [`model_source`] gives the live scorer a way to reload.
//! - [`registry`]: named, immutable, versioned artifacts in a directory, which batch
//!   retraining jobs publish into and `serve` loads from ([`Registry`]).
//!
//! The layers go one way: artifact (`harbinger_model::Model::parse`) ← card
//! (`harbinger_model::card`) ← files and registry (here). Start with [`load_resolved`] or
//! [`Registry::open`].

pub mod files;
pub mod registry;

pub use files::{CARD_FILE, LoadError, MODEL_FILE, load, load_resolved, model_source, save};
pub use registry::{Registry, RegistryError, artifact_dir};
