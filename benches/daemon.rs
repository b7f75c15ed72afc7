//! The daemon's speed and footprint, as numbers and ratios. These are measurements, not timed
//! tests: nothing here fails because a number is high. Run as root with `bench/daemon.sh`
//! (see `bench/README.md`); `cargo bench` builds the release binary that the labs run.
//!
//! 1. Reaction: the time from the request that creates a link to the kernel's announcement of
//!    the link's new address, for three ways of setting it, sample by sample in turn:
//!    - the daemon, reacting to the kernel's `RTM_NEWLINK`;
//!    - the shipped udev rule (`macveil udev-apply` run by udevd), with no daemon;
//!    - a shell hook: `ip monitor link` piped into a `while read` loop that runs `ip link set`
//!      for every new link, the smallest script a user might write instead.
//!
//!    Each lab has its own namespaces (see `support::link_lab`). The bench sends the creating
//!    request itself (`support::veth`) and takes the time just before sending it. A listener
//!    in the lab's namespace takes the time when the notification with the new address
//!    arrives, so both ends include the same kernel work for every method.
//! 2. Footprint, with 1,000 links present before the daemon starts. It measures the time from
//!    starting the daemon to its `READY=1`, at the first start (which changes every address) and
//!    at a restart (which changes none). It reads the resident memory, and counts wake-ups while
//!    nothing happens, as context switches in `/proc/PID/status` and as system calls with
//!    `strace -c`.
//!
//! Under `cargo test` (which runs every target without `--bench`) the program only prints how
//! to run it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use macveil::MacAddr;
use macveil::link::{LinkEvent, LinkMonitor, Netns};
use support::link_lab::{LinkLab, Udev, shipped_udev_rule};
use support::veth::VethFactory;

/// The policy: `random` for every link whose name starts with "lk".
const POLICY: &str = "\
[device-bench]
match-device=interface-name:lk*
macveil.manage=yes

[connection-bench]
match-device=interface-name:lk*
ethernet.cloned-mac-address=random
";

/// The first three bytes of every original address, a universally administered OUI.
const ORIGINAL_OUI: [u8; 3] = [0x3c, 0x22, 0xfb];

/// The shell hook: for every new link named lk* that still has an original address, `ip link
/// set` a random locally administered unicast address. `printf -v` and `$RANDOM` are bash
/// built-ins, so the only program started per link is `ip`. `setpriv --pdeathsig` ends the
/// monitor, and with it the loop, should bash be killed alone.
const SHELL_HOOK: &str = r#"
setpriv --pdeathsig KILL ip -oneline monitor link | while IFS= read -r line; do
    case $line in
        Deleted*) continue ;;
        *": lk"*"link/ether 3c:22:fb:"*) ;;
        *) continue ;;
    esac
    name=${line#*: }
    name=${name%%[:@]*}
    printf -v address '%02x:%02x:%02x:%02x:%02x:%02x' $(( (RANDOM & 0xfc) | 0x02 )) \
        $((RANDOM & 255)) $((RANDOM & 255)) $((RANDOM & 255)) $((RANDOM & 255)) $((RANDOM & 255))
    ip link set dev "$name" address "$address"
done
"#;

/// Samples per method that are not counted: the first links after start-up.
const WARM_UP: usize = 10;

/// How long a sample waits for the new address before it counts as timed out.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// The memory target for the daemon with 1,000 links.
const RSS_TARGET_KIB: u64 = 8 * 1024;

/// The benchmark's options.
struct Options {
    /// Reaction samples per method.
    samples: usize,
    /// Links present for the footprint measurements.
    links: usize,
    /// Length of each quiet period.
    quiet: Duration,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            samples: 200,
            links: 1000,
            quiet: Duration::from_secs(60),
        };
        let mut args = args.iter().filter(|arg| *arg != "--bench");
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u64, String> {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{name} needs a number"))?;
                value
                    .parse::<u64>()
                    .map_err(|_| format!("invalid number '{value}' for {name}"))
            };
            match arg.as_str() {
                "--samples" => options.samples = number("--samples")? as usize,
                "--links" => options.links = number("--links")? as usize,
                "--quiet-seconds" => {
                    options.quiet = Duration::from_secs(number("--quiet-seconds")?)
                }
                other => {
                    return Err(format!(
                        "unknown option '{other}'; the options are --samples N, --links N and \
                         --quiet-seconds N"
                    ));
                }
            }
        }
        if options.links > 65536 || options.samples + WARM_UP > 65536 {
            return Err(
                "at most 65536 links or samples: the original addresses number them in \
                        two bytes"
                    .to_owned(),
            );
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        println!(
            "benches/daemon.rs measures only under 'cargo bench'; run bench/daemon.sh as root"
        );
        return ExitCode::SUCCESS;
    }
    if !support::is_root() {
        eprintln!("the daemon benchmarks need root for network and mount namespaces");
        return ExitCode::FAILURE;
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };

    let load_before = load_average();
    let reaction = measure_reaction(&options);
    let footprint = measure_footprint(&options);
    print_report(&options, &reaction, &footprint);
    println!();
    println!(
        "Load average (1, 5, 15 min) before: {load_before}, after: {}; CPUs: {}",
        load_average(),
        thread::available_parallelism().map_or(0, |count| count.get())
    );
    ExitCode::SUCCESS
}

/// A listener that records, per link name, when a notification first showed the link with an
/// address other than an original one.
struct Listener {
    changed: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(netns: &Netns) -> Listener {
        let mut monitor = LinkMonitor::open(netns)
            .unwrap_or_else(|error| panic!("failed to listen to {netns}: {error}"));
        let changed = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let changed = Arc::clone(&changed);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    wait_readable(&monitor, Duration::from_millis(50));
                    let now = Instant::now();
                    // An overrun loses notifications; the affected samples time out and are
                    // counted as such.
                    while let Ok(Some(events)) = monitor.receive() {
                        let mut changed = changed.lock().expect("listener lock");
                        for event in events {
                            let LinkEvent::New(link) = event else {
                                continue;
                            };
                            let anonymized = link
                                .address
                                .is_some_and(|address| address.oui() != ORIGINAL_OUI);
                            if link.name.starts_with("lk") && anonymized {
                                changed.entry(link.name).or_insert(now);
                            }
                        }
                    }
                }
            })
        };
        Listener {
            changed,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits up to `timeout` for `name` to show a new address and returns when it did.
    fn wait_change(&self, name: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.changed.lock().expect("listener lock").get(name) {
                return Some(*at);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Blocks until `monitor` has a notification or `timeout` passes.
fn wait_readable(monitor: &LinkMonitor, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut entry = libc::pollfd {
        fd: monitor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: entry is one live pollfd for the duration of the call.
    unsafe { libc::poll(&mut entry, 1, timeout.as_millis() as libc::c_int) };
}

/// One way of setting a new link's address, in its own lab.
struct Method {
    label: &'static str,
    /// The fourth byte of this method's original addresses.
    id: u8,
    lab: LinkLab,
    factory: VethFactory,
    listener: Listener,
    samples: Vec<Duration>,
    timeouts: usize,
}

impl Method {
    fn new(label: &'static str, id: u8, lab: LinkLab) -> Method {
        let factory = VethFactory::open(&lab.lab_netns())
            .unwrap_or_else(|error| panic!("failed to open a netlink socket in the lab: {error}"));
        let listener = Listener::start(&lab.lab_netns());
        Method {
            label,
            id,
            lab,
            factory,
            listener,
            samples: Vec::new(),
            timeouts: 0,
        }
    }

    /// Creates link number `number`, waits for its new address and removes it. Returns the
    /// reaction time, or none when the address did not change within `CHANGE_TIMEOUT`.
    fn sample(&mut self, number: usize) -> Option<Duration> {
        let name = format!("lk{number}");
        let [high, low] = (number as u16).to_be_bytes();
        let [a, b, c] = ORIGINAL_OUI;
        let original = MacAddr([a, b, c, self.id, high, low]);

        let capture = Some(self.lab.capture_pid());
        let sent_at = self
            .factory
            .create(&name, original, &format!("p{number}"), capture)
            .unwrap_or_else(|error| panic!("{}: {error}", self.label));
        let changed_at = self.listener.wait_change(&name, CHANGE_TIMEOUT);
        self.factory
            .remove(&name)
            .unwrap_or_else(|error| panic!("{}: {error}", self.label));
        changed_at.map(|at| at.saturating_duration_since(sent_at))
    }
}

/// Median, 99th percentile and maximum of a set of samples.
#[derive(Clone, Copy)]
struct Spread {
    median: Duration,
    p99: Duration,
    max: Duration,
}

impl Spread {
    fn of(samples: &[Duration]) -> Option<Spread> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let last = sorted.len().checked_sub(1)?;
        // The nearest-rank percentile: the smallest sample with at least 99 % at or below it.
        let p99_rank = (sorted.len() * 99).div_ceil(100).max(1) - 1;
        Some(Spread {
            median: sorted[sorted.len() / 2],
            p99: sorted[p99_rank],
            max: sorted[last],
        })
    }
}

struct Reaction {
    methods: Vec<(&'static str, Option<Spread>, usize, usize)>,
}

fn write_policy(lab: &LinkLab) -> String {
    let path = lab.host_folder().join("bench.conf");
    fs::write(&path, POLICY).expect("failed to write the policy");
    path.display().to_string()
}

fn measure_reaction(options: &Options) -> Reaction {
    eprintln!("reaction: starting three labs");
    let mut daemon_lab = LinkLab::start(Udev::Absent);
    let config = write_policy(&daemon_lab);
    daemon_lab.start_daemon(&["--config", &config]);

    let udev_lab = LinkLab::start(Udev::Running);
    let config = write_policy(&udev_lab);
    let (rule_name, rule) = shipped_udev_rule(&config);
    udev_lab.install_udev_rules(&rule_name, &rule);

    let mut hook_lab = LinkLab::start(Udev::Absent);
    hook_lab.spawn_in_lab("shell hook", "bash", &["-c", SHELL_HOOK]);

    let mut methods = [
        Method::new("daemon (RTM_NEWLINK)", 1, daemon_lab),
        Method::new("udev rule, no daemon", 2, udev_lab),
        Method::new("shell hook (ip monitor)", 3, hook_lab),
    ];

    eprintln!(
        "reaction: {} links per method after {WARM_UP} warm-up links, in turn",
        options.samples
    );
    for number in 0..WARM_UP + options.samples {
        for method in &mut methods {
            let sample = method.sample(number);
            if number < WARM_UP {
                continue;
            }
            match sample {
                Some(duration) => method.samples.push(duration),
                None => method.timeouts += 1,
            }
        }
    }

    for method in &mut methods {
        method.lab.check_daemon_alive("the reaction benchmark");
    }
    Reaction {
        methods: methods
            .iter()
            .map(|method| {
                (
                    method.label,
                    Spread::of(&method.samples),
                    method.samples.len(),
                    method.timeouts,
                )
            })
            .collect(),
    }
}

/// Memory and scheduling counters from `/proc/PID/status`.
#[derive(Clone, Copy, Default)]
struct ProcessStatus {
    rss_kib: u64,
    peak_rss_kib: u64,
    /// The part of the resident set that is the process's own memory (heap, stacks).
    anonymous_kib: u64,
    /// The part mapped from files: the binary and the libraries, shared with other processes.
    file_kib: u64,
    context_switches: u64,
}

fn read_status(pid: u32) -> ProcessStatus {
    let path = format!("/proc/{pid}/status");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{path} has no {name}"))
    };
    ProcessStatus {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        anonymous_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        context_switches: field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
    }
}

/// Counts the threads of process `pid`.
fn thread_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |entries| entries.count())
}

/// Traces `pid` with `strace -c -f` for `period` and returns the number of system calls, with
/// the summary strace printed.
fn count_system_calls(pid: u32, period: Duration, folder: &Path) -> (u64, String) {
    let output_path = folder.join("strace.txt");
    let status = Command::new("timeout")
        .args(["--signal=INT", &period.as_secs().max(1).to_string()])
        .args(["strace", "-c", "-f", "-q", "-o"])
        .arg(&output_path)
        .args(["-p", &pid.to_string()])
        .status()
        .expect("failed to run strace; install it with apt-get install strace");
    // timeout exits with 124 when it ended strace, which is the normal end here.
    assert!(
        matches!(status.code(), Some(0 | 124)),
        "strace failed ({status}); is the strace package installed?"
    );

    // strace writes nothing when it saw no system call.
    let summary = fs::read_to_string(&output_path).unwrap_or_default();
    let calls = summary
        .lines()
        .find(|line| line.trim_end().ends_with("total"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0);
    (calls, summary)
}

struct Footprint {
    links: usize,
    changed: usize,
    first_ready: Duration,
    restart_ready: Duration,
    status: ProcessStatus,
    status_after_restart: ProcessStatus,
    threads: usize,
    quiet_context_switches: u64,
    quiet_system_calls: u64,
    strace_summary: String,
}

fn measure_footprint(options: &Options) -> Footprint {
    eprintln!("footprint: creating {} links", options.links);
    let mut lab = LinkLab::start(Udev::Absent);
    let config = write_policy(&lab);
    let mut factory = VethFactory::open(&lab.lab_netns())
        .unwrap_or_else(|error| panic!("failed to open a netlink socket in the lab: {error}"));
    let [a, b, c] = ORIGINAL_OUI;
    for number in 0..options.links {
        let [high, low] = (number as u16).to_be_bytes();
        factory
            .create(
                &format!("lk{number}"),
                MacAddr([a, b, c, 9, high, low]),
                &format!("p{number}"),
                Some(lab.capture_pid()),
            )
            .unwrap_or_else(|error| panic!("{error}"));
    }

    eprintln!("footprint: starting the daemon");
    let started = Instant::now();
    lab.start_daemon(&["--config", &config]);
    let first_ready = started.elapsed();
    let changed = count_anonymized(&lab);
    let pid = lab.daemon_pid();
    let status = read_status(pid);
    let threads = thread_count(pid);

    eprintln!(
        "footprint: counting context switches over a quiet {} s",
        options.quiet.as_secs()
    );
    thread::sleep(Duration::from_secs(1));
    let before = read_status(pid).context_switches;
    thread::sleep(options.quiet);
    let quiet_context_switches = read_status(pid).context_switches - before;

    eprintln!(
        "footprint: counting system calls over a quiet {} s",
        options.quiet.as_secs()
    );
    let (quiet_system_calls, strace_summary) =
        count_system_calls(pid, options.quiet, lab.host_folder());

    eprintln!("footprint: restarting the daemon");
    lab.stop_daemon();
    let started = Instant::now();
    lab.start_daemon(&["--config", &config]);
    let restart_ready = started.elapsed();
    let status_after_restart = read_status(lab.daemon_pid());
    lab.stop_daemon();

    Footprint {
        links: options.links,
        changed,
        first_ready,
        restart_ready,
        status,
        status_after_restart,
        threads,
        quiet_context_switches,
        quiet_system_calls,
        strace_summary,
    }
}

/// Counts the lab's lk* links whose address is no longer an original one.
fn count_anonymized(lab: &LinkLab) -> usize {
    let mut handle = macveil::link::LinkHandle::open(&lab.lab_netns())
        .unwrap_or_else(|error| panic!("failed to open the lab: {error}"));
    let links = macveil::link::LinkOps::links(&mut handle)
        .unwrap_or_else(|error| panic!("failed to list the lab's links: {error}"));
    links
        .iter()
        .filter(|link| link.name.starts_with("lk"))
        .filter(|link| {
            link.address
                .is_some_and(|address| address.oui() != ORIGINAL_OUI)
        })
        .count()
}

/// Returns the first three fields of `/proc/loadavg`, because other work on the machine
/// changes every number here.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    numerator.as_secs_f64() / denominator.as_secs_f64().max(1e-9)
}

fn print_report(options: &Options, reaction: &Reaction, footprint: &Footprint) {
    println!();
    println!(
        "Reaction: link creation request to the new address's notification ({} links per \
         method, in turn)",
        options.samples
    );
    println!(
        "  {:<26} {:>10} {:>10} {:>10} {:>9}",
        "method", "median ms", "p99 ms", "max ms", "timeouts"
    );
    for (label, spread, _, timeouts) in &reaction.methods {
        match spread {
            Some(spread) => println!(
                "  {:<26} {:>10.3} {:>10.3} {:>10.3} {:>9}",
                label,
                milliseconds(spread.median),
                milliseconds(spread.p99),
                milliseconds(spread.max),
                timeouts
            ),
            None => println!("  {label:<26} no sample ({timeouts} timeouts)"),
        }
    }
    let daemon = reaction.methods[0].1;
    if let Some(daemon) = daemon {
        for (label, spread, _, _) in &reaction.methods[1..] {
            if let Some(spread) = spread {
                println!(
                    "  {label} / daemon: median {:.1}x, p99 {:.1}x",
                    ratio(spread.median, daemon.median),
                    ratio(spread.p99, daemon.p99)
                );
            }
        }
    }

    println!();
    println!(
        "Footprint with {} links ({} anonymized at the first start)",
        footprint.links, footprint.changed
    );
    println!(
        "  start to READY=1, first start:    {:.1} ms ({:.1} us per link)",
        milliseconds(footprint.first_ready),
        footprint.first_ready.as_secs_f64() * 1e6 / footprint.links.max(1) as f64
    );
    println!(
        "  start to READY=1, restart:        {:.1} ms",
        milliseconds(footprint.restart_ready)
    );
    println!(
        "  resident memory after READY=1:    {} KiB (peak {} KiB), {:.2}x the {} KiB target",
        footprint.status.rss_kib,
        footprint.status.peak_rss_kib,
        footprint.status.peak_rss_kib as f64 / RSS_TARGET_KIB as f64,
        RSS_TARGET_KIB
    );
    println!(
        "    of which anonymous {} KiB, mapped from files {} KiB",
        footprint.status.anonymous_kib, footprint.status.file_kib
    );
    println!(
        "  resident memory after a restart:  {} KiB (peak {} KiB)",
        footprint.status_after_restart.rss_kib, footprint.status_after_restart.peak_rss_kib
    );
    println!(
        "    of which anonymous {} KiB, mapped from files {} KiB",
        footprint.status_after_restart.anonymous_kib, footprint.status_after_restart.file_kib
    );
    println!("  threads:                          {}", footprint.threads);
    println!(
        "  idle {} s: {} context switches, {} system calls (strace -c -f)",
        options.quiet.as_secs(),
        footprint.quiet_context_switches,
        footprint.quiet_system_calls
    );
    if !footprint.strace_summary.trim().is_empty() {
        println!("{}", footprint.strace_summary.trim_end());
    }
}
