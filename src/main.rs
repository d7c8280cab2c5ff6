//! The `scimsync` binary: parse arguments, hand over to the library, map the outcome to an exit code.
use std::process::ExitCode;

fn main() -> ExitCode {
    scimsync::cli::main()
}
