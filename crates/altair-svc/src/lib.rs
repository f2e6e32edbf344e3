//! Plumbing shared by altair's binaries, so each `main.rs` stays thin: load and validate
//! the config file (with environment overrides), read secrets, set up logging, wait for
//! signals, bind the gRPC listener.

pub mod authz;
pub mod crypto;
pub mod dial;
mod load;
mod main_loop;
pub mod metrics;
pub mod mysql_tls;
pub mod peers;
mod secret;
mod serve;
mod telemetry;
pub mod tls;

pub use load::{LoadError, load_config};
pub use main_loop::{ServiceSpec, run_service};
pub use secret::{MAX_SECRET_BYTES, Secret, SecretReader, read_bounded, read_secret};
pub use serve::{Protocol, TlsConn, bind_listener, serve_grpc, shutdown_on_signal, tls_incoming};
pub use telemetry::init_tracing;
pub use tls::Tls;

/// Exit status for a bad config or bad usage (clap uses 2 for usage errors too).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;
