//! The `scimsync` binary: the command line ([`cli`]) over the library, with the emulator crate
//! for `demo` and `gen --serve`. Parses arguments, hands over, maps the outcome to an exit code.
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
