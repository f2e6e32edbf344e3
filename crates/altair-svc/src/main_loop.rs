//! The life of a service binary, shared by the agent, the monitor and the orchestrator:
//! load and validate the config, read secrets, set up logging, run until a signal.
//! A bad config exits with status 2 before any port is bound.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use altair_core::config::{ConfigErrors, LogConfig, MetricsConfig, Validate};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::{EXIT_CONFIG, EXIT_FAILURE, init_tracing, load_config, shutdown_on_signal};

/// What differs between services.
pub struct ServiceSpec<C, S> {
    /// Binary name, for messages (`altair-agent`).
    pub name: &'static str,
    /// Environment override prefix (`ALTAIR_AGENT`).
    pub env_prefix: &'static str,
    pub log: fn(&C) -> &LogConfig,
    pub metrics: fn(&C) -> &MetricsConfig,
    /// Reads the secrets the config points at; errors name the key.
    pub secrets: fn(&C) -> Result<S, ConfigErrors>,
}

/// Runs a service binary to completion and returns its exit status.
#[allow(clippy::print_stdout)]
pub fn run_service<C, S, F, Fut>(
    spec: ServiceSpec<C, S>,
    config_path: &Path,
    check_only: bool,
    run: F,
) -> ExitCode
where
    C: DeserializeOwned + Validate,
    F: FnOnce(C, S, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let name = spec.name;
    crate::crypto::use_ring();
    let loaded = match load_config::<C>(config_path, spec.env_prefix) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let secrets = match (spec.secrets)(&loaded.config) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{name}: invalid config {}: {errors}", config_path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if check_only {
        for key in &loaded.unknown_keys {
            println!("warning: unknown key {key} (ignored)");
        }
        println!("{}: configuration OK", config_path.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_tracing((spec.log)(&loaded.config)) {
        eprintln!("{name}: invalid config {}: {e}", config_path.display());
        return ExitCode::from(EXIT_CONFIG);
    }
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, config = %config_path.display(), "unknown config key ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        shutdown_on_signal(shutdown.clone());
        if let Some(addr) = (spec.metrics)(&loaded.config).listen {
            crate::metrics::serve_metrics(addr, shutdown.clone()).await?;
        }
        run(loaded.config, secrets, shutdown).await
    });
    match result {
        Ok(()) => {
            tracing::info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
