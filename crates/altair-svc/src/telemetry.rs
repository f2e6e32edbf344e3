//! Logging to stderr, as text or JSON.

use altair_core::config::{ConfigError, LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init_tracing(log: &LogConfig) -> Result<(), ConfigError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(&env).map_err(|e| {
            ConfigError::new("RUST_LOG", format!("{env:?} is not a log filter: {e}"))
        })?,
        _ => EnvFilter::try_new(&log.level).map_err(|e| {
            ConfigError::new(
                "log.level",
                format!("{:?} is not a log filter: {e}", log.level),
            )
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| ConfigError::new("log", format!("cannot install the logger: {e}")))
}
