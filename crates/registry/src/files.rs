//! An artifact directory on disk: `model.json` (the artifact, [`harbinger_model::Model`]
//! as JSON) and `MODEL_CARD.md` (rendered from it).

use std::path::{Path, PathBuf};

use harbinger_model::{Model, ModelError, ModelSource};

use crate::registry::{RegistryError, artifact_dir};

/// Name of the artifact file inside a model directory.
pub const MODEL_FILE: &str = "model.json";
/// Name of the model card inside a model directory.
pub const CARD_FILE: &str = "MODEL_CARD.md";

/// Loading or saving an artifact directory failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file cannot be read or written.
    #[error("model file {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// OS error (in the message, not repeated as the error's source).
        error: std::io::Error,
    },
    /// The file is there but is not a model this harbinger reads.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The directory is a registry entry whose `CURRENT` version cannot be resolved.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Reads `path` as a `model.json`: I/O errors and bytes that are not UTF-8 name the file.
pub(crate) fn read_artifact(path: &Path) -> Result<(Vec<u8>, Model), LoadError> {
    let bytes = std::fs::read(path).map_err(|error| LoadError::Io { path: path.to_path_buf(), error })?;
    let model = Model::parse_bytes(path.to_path_buf(), &bytes)?;
    Ok((bytes, model))
}

/// Loads `dir/model.json`.
///
/// # Errors
/// [`LoadError::Io`] or [`LoadError::Model`], naming the file (and both versions when the
/// format is incompatible).
pub fn load(dir: &Path) -> Result<Model, LoadError> {
    read_artifact(&dir.join(MODEL_FILE)).map(|(_, m)| m)
}

/// Loads the model `dir` stands for: a plain artifact directory (with `model.json`), or a
/// registry entry `<registry>/<name>` (with `CURRENT`), whose current version is loaded.
/// `serve`, `eval` and `bench score` load through this, so a promotion takes effect at the
/// next load or reload.
///
/// # Errors
/// As [`load`], or [`LoadError::Registry`] when `CURRENT` cannot be resolved.
pub fn load_resolved(dir: &Path) -> Result<Model, LoadError> {
    load(&artifact_dir(dir)?)
}

/// Writes `dir/model.json` (through a temporary file renamed into place) and
/// `dir/MODEL_CARD.md`, creating `dir`.
///
/// # Errors
/// I/O errors naming the path.
pub fn save(model: &Model, dir: &Path) -> Result<(), LoadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| LoadError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(MODEL_FILE);
    let tmp = dir.join(format!("{MODEL_FILE}.tmp"));
    let json = model.to_json().map_err(|e| LoadError::Io { path: path.clone(), error: std::io::Error::other(e) })?;
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    let card = dir.join(CARD_FILE);
    std::fs::write(&card, harbinger_model::card::render(model)).map_err(io(&card))
}

fn load_for_reload(dir: &Path) -> Result<Model, String> {
    load_resolved(dir).map_err(|e| e.to_string())
}

/// Where a live scorer reloads its model from: `dir` through [`load_resolved`].
pub fn model_source(dir: &Path) -> ModelSource {
    ModelSource::new(dir, load_for_reload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Model {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default")).expect("the shipped model loads")
    }

    #[test]
    fn save_then_load_gives_the_same_model_and_a_card() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = shipped();
        save(&m, &tmp.path().join("out")).expect("save");
        assert_eq!(load(&tmp.path().join("out")).expect("load"), m);
        let card = std::fs::read_to_string(tmp.path().join("out").join(CARD_FILE)).expect("card");
        assert!(card.starts_with(&format!("# Model card: harbinger failure model {}", m.version)), "{card}");
        assert!(!tmp.path().join("out").join("model.json.tmp").exists(), "no temporary file left");
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let e = load(&tmp.path().join("nowhere")).expect_err("missing");
        assert!(matches!(e, LoadError::Io { .. }) && e.to_string().contains("nowhere/model.json"), "{e}");
        std::fs::write(tmp.path().join(MODEL_FILE), [0xff, 0xfe, b'{']).expect("write");
        let e = load(tmp.path()).expect_err("not UTF-8");
        assert!(matches!(e, LoadError::Model(ModelError::Corrupt { .. })) && e.to_string().contains("model.json"), "{e}");
        std::fs::write(tmp.path().join(MODEL_FILE), "{}").expect("write");
        let e = load(tmp.path()).expect_err("not a model");
        assert!(e.to_string().starts_with(&format!("model file {} is corrupt", tmp.path().join(MODEL_FILE).display())), "{e}");
    }

    #[test]
    fn the_model_source_reloads_through_the_registry_entry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let m = shipped();
        save(&m, &tmp.path().join("a")).expect("save");
        let src = model_source(&tmp.path().join("a"));
        assert_eq!(src.dir(), tmp.path().join("a"));
        assert_eq!(src.load(&tmp.path().join("a")).expect("loads").version, m.version);
        let e = src.load(&tmp.path().join("b")).expect_err("nothing there");
        assert!(e.contains("b/model.json"), "{e}");
    }
}
