//! The `macveil` command: argument parsing, logging set-up and exit codes. Everything else lives
//! in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = macveil::cli::parse_args();
    macveil::cli::init_logging(cli.log_verbosity(), cli.quiet);
    macveil::cli::run(cli).into()
}
