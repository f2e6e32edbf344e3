//! Generates the altair.v1 code from `proto/` with the pure-Rust `protox` compiler:
//! no system `protoc` is needed.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "altair/v1/common.proto",
    "altair/v1/agent.proto",
    "altair/v1/monitor.proto",
    "altair/v1/orchestrator.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(FILES, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
