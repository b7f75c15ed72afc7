//! The command line: argument definitions, logging set-up, exit codes and one module per
//! subcommand. Each subcommand returns a [`Status`]; only this module decides what reaches the
//! terminal as an error.

mod check;
mod config;
pub mod daemon;
mod docs;
mod generate;
mod install;
mod iwd_sync;
mod nm;
mod restore;
mod set;
mod show;
pub mod stable_args;
mod target;
mod udev;
mod vendor;
mod wifi;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The outcome of a command. The numeric values are the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything requested was done (exit code 0).
    Success = 0,
    /// The command ran, but at least one interface failed or something is exposed (exit code 1).
    Failure = 1,
    /// Invalid input or an error before anything was changed (exit code 2, as for usage errors).
    Error = 2,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the command ran, but at least one interface failed or something is exposed
  2  invalid input, or an error before anything was changed";

/// macveil keeps this machine's hardware (MAC) address off the networks it joins.
#[derive(Debug, Parser)]
#[command(
    name = "macveil",
    version,
    after_help = EXIT_CODES_HELP,
    long_about = "macveil keeps this machine's hardware (MAC) address off the networks it joins.\n\n\
                  It generates random, stable (NetworkManager-compatible), vendor-preserving and \
                  vendor-like addresses, and checks what still exposes the hardware identity. \
                  Logs never show a permanent address or the secret key unless asked."
)]
pub struct Cli {
    /// Log more detail to stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 900)]
    pub verbose: u8,

    /// Log only errors.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        display_order = 901
    )]
    pub quiet: bool,

    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print generated addresses without touching any interface.
    #[command(after_help = generate::EXAMPLES)]
    #[command(name = "gen")]
    Gen(Box<generate::GenArgs>),

    /// List what exposes this machine's hardware identity: links, NetworkManager, systemd,
    /// ifupdown and wpa_supplicant settings, and the daemon.
    #[command(after_help = check::AFTER_HELP)]
    Check(check::CheckArgs),

    /// Check the configuration and show the policy each link gets.
    Config(config::ConfigArgs),

    /// Show, install and check NetworkManager's MAC privacy settings.
    #[command(after_help = nm::EXAMPLES)]
    Nm(nm::NmArgs),

    /// Write a shell completion script to stdout.
    Completions(docs::CompletionsArgs),

    /// Write the man page, macveil(1), to stdout.
    Manpage,

    /// Run the daemon: give every link its policy address from the moment it appears.
    #[command(after_help = daemon::EXAMPLES)]
    Daemon(Box<daemon::DaemonArgs>),

    /// Install the daemon, udev rule, sleep hook, default configuration and secret key, and start
    /// the daemon.
    #[command(after_help = install::INSTALL_EXAMPLES)]
    Install(install::InstallArgs),

    /// Remove what install put in place; optionally restore the links' addresses.
    #[command(after_help = install::UNINSTALL_EXAMPLES)]
    Uninstall(install::UninstallArgs),

    /// Set a new link's address from udev (run by 81-macveil.rules).
    #[command(name = "udev-apply", hide = true, long_about = udev::ABOUT)]
    UdevApply(Box<udev::UdevArgs>),

    /// Look up the vendor of an address, or search the vendor registry by name.
    #[command(after_help = vendor::EXAMPLES)]
    Vendor(vendor::VendorArgs),

    /// List interfaces with their current, permanent and reference addresses and whether each
    /// one exposes its hardware address.
    #[command(after_help = show::EXAMPLES)]
    Show(show::ShowArgs),

    /// Give interfaces new hardware addresses, read them back and report each one.
    #[command(after_help = set::EXAMPLES)]
    Set(Box<set::SetArgs>),

    /// Put interfaces back on their permanent (or recorded) address.
    #[command(after_help = restore::EXAMPLES)]
    Restore(restore::RestoreArgs),

    /// Connect Wi-Fi with an anonymized address, control scan-address randomization and report
    /// what the running wpa_supplicant exposes.
    Wifi(wifi::WifiArgs),
}

impl Cli {
    /// Returns the verbosity to log with. The daemon logs every address change (`info`) by
    /// default, because its log is the record of what it did. Other commands log warnings and
    /// errors.
    pub fn log_verbosity(&self) -> u8 {
        match self.command {
            Command::Daemon(_) => self.verbose.max(1),
            _ => self.verbose,
        }
    }
}

/// Parses the process arguments; `--version` also names the vendor registry's source.
pub fn parse_args() -> Cli {
    let mut long_version = format!(
        "{}\nvendor registry: {}",
        env!("CARGO_PKG_VERSION"),
        crate::vendor::Registry::load().source()
    );
    // The Wi-Fi lab checks for this line before it relies on the fault seam.
    if cfg!(feature = "lab-faults") {
        long_version.push_str("\nlab faults: enabled (MACVEIL_LAB_FAIL_SET_ADDRESS)");
    }
    let command = Cli::command().long_version(long_version);
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

/// Checks that a `--root` folder exists, so that a mistyped path is an error and not an empty
/// system with nothing to report.
fn require_root_dir(root: &std::path::Path) -> anyhow::Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    anyhow::bail!(
        "--root {}: no such folder; give the folder where the system is mounted",
        root.display()
    )
}

/// Returns whether the command was asked for JSON output.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Gen(args) => args.json,
        Command::Check(args) => args.json,
        Command::Config(args) => match &args.command {
            config::ConfigCommand::Check(args) => args.json,
        },
        Command::Vendor(args) => args.json,
        Command::Nm(args) => match &args.command {
            nm::NmCommand::Status(args) => args.json,
            nm::NmCommand::Predict(args) => args.json,
            nm::NmCommand::Install(_) => false,
        },
        Command::Show(args) => args.json,
        Command::Set(args) => args.change.json,
        Command::Restore(args) => args.change.json,
        Command::Wifi(args) => match &args.command {
            wifi::WifiCommand::Connect(args) => args.supplicant.json,
            wifi::WifiCommand::ScanPrivacy(args) => args.supplicant.json,
            wifi::WifiCommand::Check(args) => args.supplicant.json,
            wifi::WifiCommand::IwdSync(args) => args.json,
        },
        Command::Daemon(_)
        | Command::UdevApply(_)
        | Command::Install(_)
        | Command::Uninstall(_)
        | Command::Completions(_)
        | Command::Manpage => false,
    }
}

/// The JSON a command asked for `--json` prints when it fails before it has a report, so that a
/// script's parser always gets an object.
#[derive(serde::Serialize)]
struct ErrorReport {
    error: String,
}

/// Runs the parsed command and prints any error to stderr, and with `--json` also as
/// `{"error": ...}` on stdout.
pub fn run(cli: Cli) -> Status {
    let json = wants_json(&cli.command);
    let result = match cli.command {
        Command::Gen(args) => generate::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Config(args) => config::run(&args),
        Command::Daemon(args) => daemon::run(&args),
        Command::UdevApply(args) => udev::run(&args),
        Command::Install(args) => install::run_install(&args),
        Command::Uninstall(args) => install::run_uninstall(&args),
        Command::Vendor(args) => vendor::run(&args),
        Command::Nm(args) => nm::run(&args),
        Command::Completions(args) => docs::run_completions(&args),
        Command::Manpage => docs::run_manpage(),
        Command::Show(args) => show::run(&args),
        Command::Set(args) => set::run(&args),
        Command::Restore(args) => restore::run(&args),
        Command::Wifi(args) => wifi::run(&args),
    };
    match result {
        Ok(status) => status,
        Err(err) if is_broken_pipe(&err) => Status::Success,
        Err(err) => {
            // One prefix per line, so that a journal that splits lines keeps each one
            // attributed.
            let message = format!("{err:#}");
            for (index, line) in message.lines().enumerate() {
                if index == 0 {
                    eprintln!("macveil: error: {line}");
                } else {
                    eprintln!("macveil:   {line}");
                }
            }
            if json {
                let report = ErrorReport { error: message };
                // stdout may be closed already; the message is on stderr either way.
                let _ = write_json(&mut io::stdout().lock(), &report);
            }
            Status::Error
        }
    }
}

/// Returns whether the error is a closed stdout (`macveil vendor --search a | head`), which is not a
/// failure of the command.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Writes `value` as pretty-printed JSON and a newline. The text is serialized before the first
/// write, so that a closed stdout reaches the caller as an `io::Error` (which [`run`] treats as
/// the end of output) rather than wrapped in a `serde_json::Error`.
fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value).context("failed to encode JSON")?;
    writeln!(out, "{json}")?;
    Ok(())
}

/// Sets up the `log` backend on stderr without timestamps, because journald adds its own. When
/// stderr goes to journald (`JOURNAL_STREAM` is set), each line starts with its syslog priority
/// (`<3>`) so that the journal records the level.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let journald = stderr_is_journal();
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("MACVEIL_LOG")
        .format(move |buf, record| {
            if journald {
                let priority = match record.level() {
                    log::Level::Error => 3,
                    log::Level::Warn => 4,
                    log::Level::Info => 6,
                    log::Level::Debug | log::Level::Trace => 7,
                };
                writeln!(buf, "<{priority}>{}", record.args())
            } else {
                let level = match record.level() {
                    log::Level::Error => "error",
                    log::Level::Warn => "warning",
                    log::Level::Info => "info",
                    log::Level::Debug => "debug",
                    log::Level::Trace => "trace",
                };
                writeln!(buf, "macveil: {level}: {}", record.args())
            }
        })
        .init();
}

/// Returns whether stderr is the journal stream systemd gave this process. `JOURNAL_STREAM` is
/// `DEVICE:INODE` of that stream (systemd.exec(5)). A child that inherited the variable but
/// writes to a terminal or a pipe has another stderr, so the variable alone is not enough.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = value.to_str().and_then(|text| text.split_once(':')) else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };

    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a complete `struct stat` into the buffer when it returns 0, and the
    // buffer is only read after that check.
    let stat = unsafe {
        if libc::fstat(libc::STDERR_FILENO, stat.as_mut_ptr()) != 0 {
            return false;
        }
        stat.assume_init()
    };
    stat.st_dev == device && stat.st_ino == inode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_journal_stream_is_ignored() {
        // SAFETY: no other test in this binary reads or writes JOURNAL_STREAM.
        unsafe { std::env::set_var("JOURNAL_STREAM", "1:1") };
        let detected = stderr_is_journal();
        // SAFETY: as above.
        unsafe { std::env::remove_var("JOURNAL_STREAM") };
        assert!(!detected);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
