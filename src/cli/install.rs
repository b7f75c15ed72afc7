//! `macveil install` and `macveil uninstall`: put the daemon in place (binary, systemd unit,
//! udev rule, sleep hook, default configuration, secret key) and enable it, or take it away.
//! With `--root DIR` only files under DIR are touched and no service is started or stopped.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Args;

use super::Status;
use crate::daemon::restore::restore_links;
use crate::install::{self, FileAction, InstallOptions, Layout, Step};
use crate::link::apply::Outcome;
use crate::link::state::DEFAULT_STATE_DIR;
use crate::link::{LinkHandle, Netns};
use crate::rng::OsRandom;

pub(super) const INSTALL_EXAMPLES: &str = "\
Installs:
  /usr/local/bin/macveil                       this program
  /etc/systemd/system/macveil.service          the daemon's unit, enabled and started
  /etc/udev/rules.d/81-macveil.rules           sets new links' addresses during udev processing
  /usr/lib/systemd/system-sleep/macveil        tells the daemon about resumes (SIGUSR1)
  /etc/macveil/macveil.conf                    the default policy, commented; never replaced
  /var/lib/macveil/secret_key                  created with mode 0600; never replaced

On its first start of a boot the daemon leaves links that are already up as they are and reports
them as exposed, so installing does not cut the current connection. Such a link gets its address
when it next goes down. A later start within the same boot (a restart, or installing again)
changes it at once, as do 'macveil daemon --now' and macveil.apply-to-running=yes.

Examples:
  sudo macveil install
  sudo macveil install --nm-config
  macveil install --root /tmp/image --no-start";

pub(super) const UNINSTALL_EXAMPLES: &str = "\
Examples:
  sudo macveil uninstall
  sudo macveil uninstall --restore
  sudo macveil uninstall --purge";

/// Options of `macveil install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install under DIR instead of / (for a system image or a test); no service is started.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Make the daemon and the udev rule read NetworkManager's configuration files and hash
    /// stable addresses with NetworkManager's secret key.
    #[arg(long)]
    pub nm_config: bool,

    /// Enable the daemon but do not start it now.
    #[arg(long)]
    pub no_start: bool,
}

/// Options of `macveil uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Uninstall from DIR instead of / (for a system image or a test); no service is stopped.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Put back the permanent (or recorded) address of every link whose address macveil set.
    #[arg(long)]
    pub restore: bool,

    /// Also remove /etc/macveil/macveil.conf and the secret key. Every stable address derived
    /// from the key is lost for good.
    #[arg(long)]
    pub purge: bool,

    /// The daemon's state directory, whose records name the links --restore changes back
    /// [default: /run/macveil]. With --root, --restore needs it, because the links it changes
    /// are those of the running system.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Restore the links of this network namespace instead of the caller's.
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
}

fn print_steps(steps: &[Step]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for step in steps {
        writeln!(out, "{:<10} {}", step.action, step.path.display())?;
    }
    Ok(())
}

/// Runs a service manager command, and turns a failure into an error that names it.
fn system(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        anyhow::bail!("'{program} {}' failed ({status})", args.join(" "));
    }
    Ok(())
}

pub(super) fn run_install(args: &InstallArgs) -> anyhow::Result<Status> {
    let layout = Layout::new(&args.root);
    let current = std::env::current_exe().context("cannot find this program's own path")?;
    let binary = (current != layout.binary()).then_some(current);
    // On the running system a missing key would hold every `stable` link down at once. An
    // image's NetworkManager creates its key at the image's first boot.
    let on_system = layout.is_system_root();
    let options = InstallOptions {
        binary,
        nm_config: args.nm_config,
        require_nm_key: on_system,
    };
    if args.nm_config
        && !on_system
        && let Some(problem) = install::networkmanager_key_problem(&layout)
    {
        eprintln!(
            "macveil: warning: NetworkManager's secret key cannot be used: {}. With --nm-config the daemon holds every link with a \
             stable address down until NetworkManager's key under {} is usable; NetworkManager \
             creates it at its first start",
            install::describe_key_problem(&problem),
            args.root.display()
        );
    }
    let steps = install::install(&layout, &options, &mut OsRandom)?;
    print_steps(&steps)?;

    if !on_system {
        return Ok(Status::Success);
    }
    // sd_booted(3): systemd is the service manager only when this folder exists.
    if !Path::new("/run/systemd/system").is_dir() {
        println!(
            "systemd is not running, so the service was not enabled; start the daemon with \
             'macveil daemon' from your init system"
        );
        return Ok(Status::Success);
    }
    system("systemctl", &["daemon-reload"])?;
    system("udevadm", &["control", "--reload"])?;
    system("systemctl", &["enable", "macveil.service"])?;
    if !args.no_start {
        system("systemctl", &["restart", "macveil.service"])?;
        println!("macveil.service is running; 'macveil show' lists each link's state");
    }
    Ok(Status::Success)
}

pub(super) fn run_uninstall(args: &UninstallArgs) -> anyhow::Result<Status> {
    let layout = Layout::new(&args.root);
    let on_system = layout.is_system_root();
    if args.restore && !on_system && args.state_dir.is_none() {
        anyhow::bail!(
            "--restore changes the links of the running system, not of the system below {}; \
             give --state-dir (and --netns) to restore this system's links on purpose",
            args.root.display()
        );
    }
    if on_system {
        // Stopped first, so that it does not undo the restored addresses.
        system("systemctl", &["disable", "--now", "macveil.service"])?;
    }

    let mut status = Status::Success;
    if args.restore {
        status = restore(args)?;
    }

    let steps = install::uninstall(&layout, args.purge)?;
    print_steps(&steps)?;
    if steps
        .iter()
        .any(|step| step.action == FileAction::Kept && step.path == layout.key())
    {
        println!(
            "the secret key and configuration stay, so a later install gives the same stable \
             addresses; --purge removes them"
        );
    }
    if on_system {
        system("systemctl", &["daemon-reload"])?;
        system("udevadm", &["control", "--reload"])?;
    }
    Ok(status)
}

fn restore(args: &UninstallArgs) -> anyhow::Result<Status> {
    let netns = match &args.netns {
        Some(value) => Netns::from_arg(value).map_err(anyhow::Error::msg)?,
        None => Netns::Current,
    };
    let mut ops = LinkHandle::open(&netns)?;
    let restored = restore_links(
        &mut ops,
        args.state_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_STATE_DIR)),
    )?;
    for report in &restored.reports {
        match &report.outcome {
            Outcome::Failed(err) => println!("failed     {}: {err}", report.name),
            _ => println!("restored   {}", report.name),
        }
    }
    for name in &restored.unknown {
        println!("failed     {name}: neither a permanent nor a recorded original address is known");
    }
    if restored.reports.is_empty() && restored.unknown.is_empty() {
        println!("no link had an address set by macveil");
    }
    let status = if restored.failed() {
        Status::Failure
    } else {
        Status::Success
    };
    Ok(status)
}
