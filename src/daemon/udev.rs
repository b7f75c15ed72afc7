//! `macveil udev-apply`: the udev side of the daemon. udev runs it for every new network link
//! with `IMPORT{program}` (see `dist/81-macveil.rules`), while the link is still down and before
//! udev marks it initialised, so the link has its address before NetworkManager or
//! systemd-networkd look at it. It works whether or not the daemon runs, with the same policy,
//! key and state directory.
//!
//! udev facts this relies on (systemd 252, `src/udev/udev-rules.c` and `udev-event.c`):
//! - `IMPORT{program}` runs while the rules are applied, before udev writes the link's
//!   database entry. `RUN` programs run only after it, when a manager may already have raised
//!   the link.
//! - The rename chosen by `NAME=` (from `80-net-setup-link.rules`) happens after the rules, so
//!   the kernel still shows the old name here. The rule passes the final name (`$name`), and the
//!   policy, the stable address and the records use it.
//! - Output lines `KEY=value` become udev properties only when the program exits with 0, so this
//!   helper exits with 0 and reports failures in `MACVEIL_STATE`.
//!
//! Failing closed: when the address cannot be set, the link is down, and the helper tells both
//! managers to leave it alone: `NM_UNMANAGED=1` for NetworkManager, and `ID_NET_MANAGED_BY` for
//! systemd-networkd (honoured since systemd 255). The daemon, if it runs, also takes the link
//! down whenever it comes up with the address it must hide. The same happens when the helper
//! runs out of time: an alarm prints those lines and exits.

use std::io::Write;
use std::path::PathBuf;

use super::engine::{Engine, Settings};
use super::nm::DeviceStates;
use super::run::Options;
use super::state::{LinkStatus, Writer};
use super::target::Keys;
use crate::config::Config;
use crate::generate::stable_id::{self, BOOT_ID_PATH};
use crate::link::{LinkHandle, LinkOps};
use crate::rng::OsRandom;

/// How long the helper may run before it gives up and fails closed. udev's own limit for a
/// program is the event timeout (180 s by default); the helper needs well under one second.
pub const TIME_LIMIT_SECS: u32 = 10;

/// The `ID_NET_MANAGED_BY` value that keeps systemd-networkd off a link macveil could not
/// anonymize.
pub const MANAGED_BY_HELD: &str = "io.macveil.held-down";

/// The file name of macveil's udev rule.
pub const RULE_NAME: &str = "81-macveil.rules";

/// udev's rules folders, in the order in which a file of one shadows the same name in the next
/// (systemd 252, `udev-rules.c`).
const RULES_DIRS: [&str; 5] = [
    "etc/udev/rules.d",
    "run/udev/rules.d",
    "usr/local/lib/udev/rules.d",
    "usr/lib/udev/rules.d",
    "lib/udev/rules.d",
];

/// The udev files the daemon checks: whether udev runs, whether macveil's rule is installed,
/// and which links udev has finished with. The daemon leaves a new link that is down to the rule
/// while udev is still processing it, so that the two do not change its address at once.
#[derive(Debug, Clone)]
pub struct UdevView {
    root: PathBuf,
}

impl UdevView {
    /// Looks at udev's files under `root`, normally `/`.
    pub fn new(root: impl Into<PathBuf>) -> UdevView {
        UdevView { root: root.into() }
    }

    /// Returns whether macveil's rule will set the address of link `index`. That is the case
    /// when udev runs (its control socket `/run/udev/control` exists) and the rule is installed
    /// and not masked. udev must also not have written the link's database entry
    /// (`/run/udev/data/n<index>`) yet, which it does after the rule ran.
    pub fn rule_pending(&self, index: u32) -> bool {
        let runs = self.root.join("run/udev/control").exists();
        let initialized = self.root.join(format!("run/udev/data/n{index}")).exists();
        runs && !initialized && self.rule_installed()
    }

    /// Returns whether the rule file that udev reads is a non-empty file: an empty file or a
    /// link to /dev/null of the same name in a folder read first masks it.
    fn rule_installed(&self) -> bool {
        let found = RULES_DIRS
            .iter()
            .map(|dir| self.root.join(dir).join(RULE_NAME))
            .find(|path| path.symlink_metadata().is_ok());
        found
            .and_then(|path| path.metadata().ok())
            .is_some_and(|metadata| metadata.is_file() && metadata.len() > 0)
    }
}

/// The alarm's output when the helper runs out of time.
const TIMEOUT_OUTPUT: &str =
    "MACVEIL_STATE=timeout\nNM_UNMANAGED=1\nID_NET_MANAGED_BY=io.macveil.held-down\n";

/// The outcome for udev: the lines to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdevOutput {
    /// `KEY=value` pairs, in order.
    pub properties: Vec<(String, String)>,
}

impl UdevOutput {
    /// The output of a helper that could not set the address: the link stays down and both
    /// managers are asked to leave it alone.
    pub fn failed_with(state: &str, error: &str) -> UdevOutput {
        UdevOutput {
            properties: vec![
                (String::from("MACVEIL_STATE"), state.to_string()),
                (String::from("MACVEIL_ERROR"), one_line(error)),
                (String::from("NM_UNMANAGED"), String::from("1")),
                (
                    String::from("ID_NET_MANAGED_BY"),
                    MANAGED_BY_HELD.to_string(),
                ),
            ],
        }
    }

    /// Returns the text to print: one `KEY=value` line per property.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.properties {
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        text
    }

    /// Whether the helper failed closed.
    pub fn held_down(&self) -> bool {
        self.properties
            .iter()
            .any(|(key, value)| key == "NM_UNMANAGED" && value == "1")
    }
}

/// udev property values end at the line; a multi-line error is joined.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sets the address of the new link `ifindex`, which udev will name `name`.
pub fn apply_new_link(options: &Options, ifindex: u32, name: &str) -> UdevOutput {
    let config = match Config::load(&options.config_paths, &options.load) {
        Ok(config) => config,
        Err(errors) => {
            log::error!(
                "{name}: the configuration is invalid, so the link is kept from managers:\n{errors}"
            );
            return UdevOutput::failed_with("failed", &errors.to_string());
        }
    };
    let mut ops = match LinkHandle::open(&options.netns) {
        Ok(ops) => ops,
        Err(err) => {
            log::error!("{name}: {err}");
            return UdevOutput::failed_with("failed", &err.to_string());
        }
    };
    let mut link = match ops.link(ifindex) {
        Ok(Some(link)) => link,
        Ok(None) => {
            return UdevOutput {
                properties: vec![(String::from("MACVEIL_STATE"), String::from("gone"))],
            };
        }
        Err(err) => {
            log::error!("{name}: {err}");
            return UdevOutput::failed_with("failed", &err.to_string());
        }
    };
    link.name = name.to_string();

    let boot_id = match &options.boot_id {
        Some(id) => Ok(id.clone()),
        None => stable_id::read_boot_id(std::path::Path::new(BOOT_ID_PATH))
            .map_err(|err| err.to_string()),
    };
    let own_namespace = options.netns.is_callers().unwrap_or(false);
    let settings = Settings {
        state_dir: options.state_dir.clone(),
        now: false,
        reveal: options.reveal,
        first_start: false,
        never_cycle: true,
        sysfs_net: own_namespace.then(|| PathBuf::from("/sys/class/net")),
        nm_devices: own_namespace.then(|| DeviceStates::new(&options.nm_devices_dir)),
        udev: None,
        writer: Writer::Udev,
    };
    let keys = Keys::new(&options.key_path);
    let mut engine = Engine::new(&ops, settings, config, keys, boot_id, Box::new(OsRandom));

    let record = match engine.enforce_one(&mut ops, link) {
        Ok((_, Some(record))) => record,
        Ok((_, None)) => {
            return UdevOutput::failed_with("failed", "the link was not processed");
        }
        Err(err) => {
            log::error!("{name}: {err}");
            return UdevOutput::failed_with("failed", &err.to_string());
        }
    };

    let mut properties = vec![
        (String::from("MACVEIL_POLICY"), record.policy.clone()),
        (String::from("MACVEIL_STATE"), record.status.to_string()),
    ];
    if let Some(address) = &record.address {
        properties.push((String::from("MACVEIL_ADDRESS"), address.clone()));
    }
    if record.status == LinkStatus::HeldDown {
        let detail = record.detail.clone().unwrap_or_default();
        properties.push((String::from("MACVEIL_ERROR"), one_line(&detail)));
        properties.push((String::from("NM_UNMANAGED"), String::from("1")));
        properties.push((
            String::from("ID_NET_MANAGED_BY"),
            MANAGED_BY_HELD.to_string(),
        ));
    }
    UdevOutput { properties }
}

/// Arms an alarm that, after [`TIME_LIMIT_SECS`], prints the fail-closed lines and exits with
/// status 0, so that udev still applies them.
pub fn arm_time_limit() {
    extern "C" fn on_alarm(_signal: libc::c_int) {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a static string.
        unsafe {
            libc::write(
                libc::STDOUT_FILENO,
                TIMEOUT_OUTPUT.as_ptr().cast(),
                TIMEOUT_OUTPUT.len(),
            );
            libc::_exit(0);
        }
    }
    let handler: extern "C" fn(libc::c_int) = on_alarm;
    // SAFETY: the handler only calls async-signal-safe functions, and alarm has no
    // preconditions.
    unsafe {
        libc::signal(libc::SIGALRM, handler as libc::sighandler_t);
        libc::alarm(TIME_LIMIT_SECS);
    }
}

/// Prints the output for udev and flushes it.
pub fn print(output: &UdevOutput) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.render().as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_output_keeps_managers_away() {
        let output = UdevOutput::failed_with("failed", "line one\nline two\n");
        let text = output.render();
        assert!(output.held_down());
        assert!(
            text.contains("MACVEIL_ERROR=line one; line two\n"),
            "{text}"
        );
        assert!(text.contains("NM_UNMANAGED=1\n"), "{text}");
        assert!(
            text.contains(&format!("ID_NET_MANAGED_BY={MANAGED_BY_HELD}\n")),
            "{text}"
        );
    }

    #[test]
    fn rule_pending_until_udev_initializes_link() {
        let root = tempfile::tempdir().unwrap();
        let view = UdevView::new(root.path());
        let run_udev = root.path().join("run/udev");
        std::fs::create_dir_all(run_udev.join("data")).unwrap();
        std::fs::create_dir_all(run_udev.join("rules.d")).unwrap();
        std::fs::write(
            run_udev.join("rules.d").join(RULE_NAME),
            "IMPORT{program}=\"x\"\n",
        )
        .unwrap();
        assert!(!view.rule_pending(7), "udev does not run");

        std::fs::write(run_udev.join("control"), "").unwrap();
        assert!(view.rule_pending(7));

        std::fs::write(run_udev.join("data/n7"), "I:1\n").unwrap();
        assert!(!view.rule_pending(7), "udev has finished with the link");
        assert!(view.rule_pending(8));

        // An empty file of the same name in /etc masks the rule.
        let etc = root.path().join("etc/udev/rules.d");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join(RULE_NAME), "").unwrap();
        assert!(!view.rule_pending(8), "the masked rule sets nothing");
    }

    #[test]
    fn timeout_output_fails_closed() {
        assert_eq!(
            TIMEOUT_OUTPUT,
            format!("MACVEIL_STATE=timeout\nNM_UNMANAGED=1\nID_NET_MANAGED_BY={MANAGED_BY_HELD}\n")
        );
    }
}
