//! Reading a service's TOML config.

use std::path::{Path, PathBuf};

use altair_core::config::{ConfigErrors, Loaded, Validate, parse};
use serde::de::DeserializeOwned;

/// Why a config could not be loaded; the message names the file and each bad key.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {errors}")]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

/// Reads `path`, applies `{env_prefix}__SECTION__KEY` overrides from the process
/// environment and validates.
pub fn load_config<T: DeserializeOwned + Validate>(
    path: &Path,
    env_prefix: &str,
) -> Result<Loaded<T>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, env_prefix, std::env::vars()).map_err(|errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    })
}
