//! Printing results and turning failures into messages and exit codes.

use std::process::ExitCode;

use altairctl::exit;

#[allow(clippy::print_stdout)]
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), ExitCode> {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(e) => {
            eprintln!("altairctl: cannot print JSON: {e}");
            Err(ExitCode::from(exit::FAILED))
        }
    }
}

pub fn admin_failure(
    what: &str,
    e: &altairctl::admin::AdminError,
    config: &std::path::Path,
) -> ExitCode {
    use altairctl::admin::AdminError;
    match e {
        AdminError::Unreachable(detail) => {
            eprintln!(
                "altairctl: {what}: no orchestrator answered ({detail}); check that they run and that {} lists their addresses",
                config.display()
            );
            ExitCode::from(exit::UNREACHABLE)
        }
        AdminError::Refused(status) if status.code() == tonic::Code::InvalidArgument => {
            eprintln!("altairctl: {what}: {}", status.message());
            ExitCode::from(exit::USAGE)
        }
        AdminError::Refused(status) => {
            eprintln!("altairctl: {what}: {}", status.message());
            ExitCode::from(exit::FAILED)
        }
    }
}
