//! A client for wpa_supplicant's control interface: one AF_UNIX datagram socket per
//! interface, the protocol that `wpa_cli` and `wpa_ctrl.c` speak.
//!
//! wpa_supplicant listens on `CTRL_DIR/IFACE` (for example `/run/wpa_supplicant/wlan0`). A client
//! binds its own datagram socket to a path, sends a command as one datagram and reads the reply
//! as one datagram from the same server. After `ATTACH`, the server also sends unsolicited event
//! messages, which start with a priority in angle brackets (`<3>CTRL-EVENT-CONNECTED ...`). A reply
//! never starts with `<`, so [`ControlSocket::request`] keeps the events that arrive while it
//! waits and hands them out later through [`ControlSocket::next_event`].
//!
//! The client socket is bound in a fresh directory (mode 0700) under a parent folder, by
//! default the system's temporary folder. Both are removed when the socket is dropped. The
//! supplicant replies to that path in its own mount namespace, so a caller that runs with a
//! private `/tmp` (systemd's `PrivateTmp=`) must give a parent folder that the supplicant can
//! reach too, such as `/run/macveil`.
//!
//! This module only moves requests and replies. [`super::supplicant`] gives the commands their
//! meaning.

use std::collections::VecDeque;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::rng::{OsRandom, RandomSource};

/// The control folder that Debian's wpa_supplicant units and most configurations use
/// (`ctrl_interface=/run/wpa_supplicant`).
pub const DEFAULT_CTRL_DIR: &str = "/run/wpa_supplicant";

/// Default time to wait for one reply. wpa_cli waits 10 s; replies from a healthy supplicant take
/// milliseconds, and a shorter wait lets a caller report a hung supplicant sooner.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Maximum datagram size read. wpa_supplicant's largest replies (`SCAN_RESULTS`, `BSS`) fit in
/// 64 KiB, because its control interface sends each reply as one datagram.
const MAX_MESSAGE: usize = 64 * 1024;

/// Attempts at creating a uniquely named client folder before giving up.
const MAX_DIR_ATTEMPTS: usize = 16;

/// A failure to talk to wpa_supplicant.
#[derive(Debug, thiserror::Error)]
pub enum CtrlError {
    /// The client socket or its folder could not be created.
    #[error(
        "cannot create the client socket for wpa_supplicant's control interface in {dir}: {source}"
    )]
    Bind {
        /// The folder the socket was to be created in.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// The supplicant's socket could not be reached.
    #[error(
        "cannot reach wpa_supplicant's control socket {path}: {source}; check that wpa_supplicant \
         runs for this interface with ctrl_interface={dir}",
        dir = path.parent().map_or_else(String::new, |dir| dir.display().to_string())
    )]
    Connect {
        /// The server socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// Sending or receiving failed.
    #[error("sending '{command}' to wpa_supplicant at {path} failed: {source}")]
    Io {
        /// The command, without arguments that may be secret.
        command: String,
        /// The server socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// No reply arrived in time.
    #[error(
        "wpa_supplicant at {path} did not reply to '{command}' within {} ms; it may be hung or busy",
        timeout.as_millis()
    )]
    Timeout {
        /// The command, without arguments that may be secret.
        command: String,
        /// The server socket path.
        path: PathBuf,
        /// The time waited.
        timeout: Duration,
    },

    /// The supplicant replied `FAIL` (or `FAIL-...`).
    #[error("wpa_supplicant rejected '{command}' with '{reply}'")]
    Rejected {
        /// The command, without arguments that may be secret.
        command: String,
        /// The reply.
        reply: String,
    },

    /// The supplicant does not know the command (`UNKNOWN COMMAND`): an older version, or a
    /// build without the feature.
    #[error(
        "wpa_supplicant does not know the command '{command}'; it may be too old or built without it"
    )]
    UnknownCommand {
        /// The command name.
        command: String,
    },

    /// A reply could not be understood.
    #[error("unexpected reply from wpa_supplicant to '{command}': {detail}")]
    Protocol {
        /// The command.
        command: String,
        /// The problem with the reply.
        detail: String,
    },
}

/// One unsolicited message from wpa_supplicant, received after `ATTACH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The message priority (wpa_supplicant's `MSG_*` level: 2 info, 3 warning, 4 error).
    pub level: u8,
    /// The text after the priority, for example `CTRL-EVENT-CONNECTED - Connection to ...`.
    pub text: String,
}

impl Event {
    /// Parses a datagram that starts with `<N>`; `None` for a reply or a malformed message.
    pub fn parse(message: &str) -> Option<Event> {
        let rest = message.strip_prefix('<')?;
        let (level, text) = rest.split_once('>')?;
        let level: u8 = level.parse().ok()?;
        Some(Event {
            level,
            text: text.trim_end_matches('\n').to_string(),
        })
    }

    /// Returns the event name, the first word (`CTRL-EVENT-CONNECTED`).
    pub fn name(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or("")
    }

    /// Returns the value of a `key=value` word in the text (`id` in `[id=0 id_str=]`), with
    /// surrounding brackets removed.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.text.split_whitespace().find_map(|word| {
            let word = word.trim_start_matches('[').trim_end_matches(']');
            word.strip_prefix(key)?.strip_prefix('=')
        })
    }
}

/// The folder of the client socket and the reply timeout.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The folder in which a private folder for the client socket is created. `None` means the
    /// system's temporary folder.
    pub parent_dir: Option<PathBuf>,
    /// Maximum time to wait for one reply.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            parent_dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A connected control socket of one wpa_supplicant interface.
pub struct ControlSocket {
    socket: UnixDatagram,
    server: PathBuf,
    local_dir: PathBuf,
    local_path: PathBuf,
    timeout: Duration,
    events: VecDeque<Event>,
    attached: bool,
}

impl ControlSocket {
    /// Connects to the supplicant's socket `CTRL_DIR/IFACE`.
    pub fn open(
        ctrl_dir: &Path,
        ifname: &str,
        options: &ClientOptions,
    ) -> Result<ControlSocket, CtrlError> {
        ControlSocket::connect(&ctrl_dir.join(ifname), options)
    }

    /// Connects to the server socket at `server`.
    pub fn connect(server: &Path, options: &ClientOptions) -> Result<ControlSocket, CtrlError> {
        let parent = options
            .parent_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let local_dir = create_private_dir(&parent).map_err(|source| CtrlError::Bind {
            dir: parent.clone(),
            source,
        })?;
        let local_path = local_dir.join("socket");

        let bound = UnixDatagram::bind(&local_path).map_err(|source| CtrlError::Bind {
            dir: local_dir.clone(),
            source,
        });
        let socket = match bound {
            Ok(socket) => socket,
            Err(err) => {
                let _ = fs::remove_dir(&local_dir);
                return Err(err);
            }
        };

        // From here on, Drop removes the socket file and its folder on every path.
        let control = ControlSocket {
            socket,
            server: server.to_path_buf(),
            local_dir,
            local_path,
            timeout: options.timeout,
            events: VecDeque::new(),
            attached: false,
        };
        control
            .socket
            .connect(server)
            .map_err(|source| CtrlError::Connect {
                path: server.to_path_buf(),
                source,
            })?;
        Ok(control)
    }

    /// Returns the server socket path.
    pub fn server(&self) -> &Path {
        &self.server
    }

    /// Sends `command` and returns the reply with one trailing newline removed. `FAIL` and
    /// `UNKNOWN COMMAND` replies are errors. Events that arrive meanwhile are kept for
    /// [`ControlSocket::next_event`].
    pub fn request(&mut self, command: &str) -> Result<String, CtrlError> {
        let redacted = redacted_command(command);
        self.drain_pending(&redacted)?;
        log::trace!(
            "wpa_supplicant {}: sending '{redacted}'",
            self.server.display()
        );

        self.socket
            .send(command.as_bytes())
            .map_err(|source| self.io_error(&redacted, source))?;

        let deadline = Instant::now() + self.timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.receive(&redacted, remaining)? else {
                return Err(CtrlError::Timeout {
                    command: redacted,
                    path: self.server.clone(),
                    timeout: self.timeout,
                });
            };
            if let Some(event) = Event::parse(&message) {
                self.events.push_back(event);
                continue;
            }
            return check_reply(&redacted, message);
        }
    }

    /// Sends `command` and expects the reply `OK`.
    pub fn request_ok(&mut self, command: &str) -> Result<(), CtrlError> {
        let reply = self.request(command)?;
        if reply.trim() == "OK" {
            Ok(())
        } else {
            Err(CtrlError::Protocol {
                command: redacted_command(command),
                detail: format!("expected OK, got '{}'", reply.trim()),
            })
        }
    }

    /// Subscribes to events (`ATTACH`).
    pub fn attach(&mut self) -> Result<(), CtrlError> {
        self.request_ok("ATTACH")?;
        self.attached = true;
        Ok(())
    }

    /// Returns the next event, waiting at most `timeout`; `None` when none arrived.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.receive("(events)", remaining)? else {
                return Ok(None);
            };
            match Event::parse(&message) {
                Some(event) => return Ok(Some(event)),
                // A reply to a request that timed out earlier, which no caller waits for any more.
                None => log::debug!("dropping a late reply from wpa_supplicant"),
            }
        }
    }

    /// Returns the next event, waiting at most `timeout` (`None`: without limit). Returns
    /// `None` earlier, without reading them, when one of `wake` becomes readable: the caller's
    /// signals to stop waiting, such as an eventfd or the supplicant's pidfd. A thread that
    /// waits here uses no CPU until one of these happens.
    pub fn next_event_or_wake(
        &mut self,
        timeout: Option<Duration>,
        wake: &[BorrowedFd<'_>],
    ) -> Result<Option<Event>, CtrlError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            let wait_ms = match deadline {
                None => -1,
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    // Rounded up, so that a wait never ends before its deadline.
                    let millis = remaining.as_micros().div_ceil(1000);
                    libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX)
                }
            };
            let mut fds: Vec<libc::pollfd> = std::iter::once(self.socket.as_raw_fd())
                .chain(wake.iter().map(AsRawFd::as_raw_fd))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
            // SAFETY: `fds` contains `count` valid pollfd structures for the whole call, and every
            // descriptor stays open while it runs.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, wait_ms) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.io_error("(events)", err));
            }
            if ready == 0 || fds[1..].iter().any(|fd| fd.revents != 0) {
                return Ok(None);
            }
            if let Some(message) = self.receive("(events)", Duration::ZERO)? {
                match Event::parse(&message) {
                    Some(event) => return Ok(Some(event)),
                    None => log::debug!("dropping a late reply from wpa_supplicant"),
                }
            }
        }
    }

    /// Reads every datagram already queued without waiting: events are kept, and replies to
    /// earlier requests that timed out are dropped, so that they cannot pass as the reply to the
    /// next request.
    fn drain_pending(&mut self, redacted: &str) -> Result<(), CtrlError> {
        while let Some(message) = self.receive(redacted, Duration::ZERO)? {
            match Event::parse(&message) {
                Some(event) => self.events.push_back(event),
                None => log::debug!("dropping a late reply from wpa_supplicant"),
            }
        }
        Ok(())
    }

    /// Receives one datagram, waiting at most `timeout` (zero: do not wait). `None` when none
    /// arrived.
    fn receive(&self, redacted: &str, timeout: Duration) -> Result<Option<String>, CtrlError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let result = if timeout.is_zero() {
            self.socket.set_nonblocking(true).and_then(|()| {
                let result = self.socket.recv(&mut buf);
                self.socket.set_nonblocking(false)?;
                result
            })
        } else {
            self.socket
                .set_read_timeout(Some(timeout))
                .and_then(|()| self.socket.recv(&mut buf))
        };
        match result {
            Ok(len) => {
                buf.truncate(len);
                Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(None)
            }
            Err(err) => Err(self.io_error(redacted, err)),
        }
    }

    fn io_error(&self, redacted: &str, source: io::Error) -> CtrlError {
        CtrlError::Io {
            command: redacted.to_string(),
            path: self.server.clone(),
            source,
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if self.attached {
            // Best effort: a supplicant that is gone needs no DETACH, and one that keeps the
            // subscription drops it once sends to the removed socket fail.
            let _ = self.socket.send(b"DETACH");
        }
        let _ = fs::remove_file(&self.local_path);
        let _ = fs::remove_dir(&self.local_dir);
    }
}

/// Turns a reply into the result of a request: `FAIL...` and `UNKNOWN COMMAND` are errors.
fn check_reply(redacted: &str, mut reply: String) -> Result<String, CtrlError> {
    if reply.ends_with('\n') {
        reply.pop();
    }
    let trimmed = reply.trim();
    if trimmed == "FAIL" || trimmed.starts_with("FAIL-") {
        return Err(CtrlError::Rejected {
            command: redacted.to_string(),
            reply: trimmed.to_string(),
        });
    }
    if trimmed == "UNKNOWN COMMAND" {
        let name = redacted.split_whitespace().next().unwrap_or(redacted);
        return Err(CtrlError::UnknownCommand {
            command: name.to_string(),
        });
    }
    Ok(reply)
}

/// Returns the command as it may appear in messages and logs: the values of `SET_NETWORK`
/// (which can be a passphrase) are replaced.
fn redacted_command(command: &str) -> String {
    let mut words = command.split_whitespace();
    match words.next() {
        Some("SET_NETWORK") => {
            let id = words.next().unwrap_or("");
            let name = words.next().unwrap_or("");
            format!("SET_NETWORK {id} {name} ...")
        }
        _ => command.to_string(),
    }
}

/// Creates a new folder with mode 0700 and a random name under `parent`. A name that exists
/// already is never reused, so no other user can plant a socket or a link in it.
fn create_private_dir(parent: &Path) -> io::Result<PathBuf> {
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    for _ in 0..MAX_DIR_ATTEMPTS {
        let mut bytes = [0u8; 8];
        OsRandom
            .fill(&mut bytes)
            .map_err(|err| io::Error::other(err.to_string()))?;
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = parent.join(format!("macveil-wpa-{}-{suffix}", std::process::id()));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused folder name found",
    ))
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted wpa_supplicant control socket for tests: a real AF_UNIX datagram server in a
    //! temporary folder, replying to each command with a closure.

    use std::os::unix::net::UnixDatagram;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    /// The fake server's response to one command.
    pub enum Answer {
        /// Send these datagrams, in order (events first, then the reply, for example).
        Send(Vec<String>),
        /// Send nothing.
        Silence,
    }

    impl Answer {
        /// Builds a response of one reply datagram.
        pub fn reply(text: &str) -> Answer {
            Answer::Send(vec![text.to_string()])
        }
    }

    /// The fake server; it stops when dropped.
    pub struct FakeServer {
        pub dir: tempfile::TempDir,
        pub path: PathBuf,
        /// Every command received, in order.
        pub received: Arc<Mutex<Vec<String>>>,
        /// Datagrams to push to the last client, for events outside a request.
        push: mpsc::Sender<String>,
        thread: Option<JoinHandle<()>>,
        stop: Arc<Mutex<bool>>,
    }

    impl FakeServer {
        /// Starts a server at `DIR/wlan0` that responds with `answer`.
        pub fn start(answer: impl FnMut(&str) -> Answer + Send + 'static) -> FakeServer {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("wlan0");
            FakeServer::serve(dir, path, answer)
        }

        /// Starts a server bound at `path`, in a folder the caller owns; `dir` is then an
        /// empty folder of its own.
        pub fn start_at(
            path: &Path,
            answer: impl FnMut(&str) -> Answer + Send + 'static,
        ) -> FakeServer {
            FakeServer::serve(tempfile::tempdir().unwrap(), path.to_path_buf(), answer)
        }

        fn serve(
            dir: tempfile::TempDir,
            path: PathBuf,
            answer: impl FnMut(&str) -> Answer + Send + 'static,
        ) -> FakeServer {
            let socket = UnixDatagram::bind(&path).unwrap();
            socket
                .set_read_timeout(Some(std::time::Duration::from_millis(20)))
                .unwrap();
            let received = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(Mutex::new(false));
            let (push, pushed) = mpsc::channel::<String>();

            let thread = {
                let received = Arc::clone(&received);
                let stop = Arc::clone(&stop);
                let mut answer = answer;
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    let mut last_client: Option<PathBuf> = None;
                    while !*stop.lock().unwrap() {
                        while let Ok(message) = pushed.try_recv() {
                            if let Some(client) = &last_client {
                                let _ = socket.send_to(message.as_bytes(), client);
                            }
                        }
                        let Ok((len, from)) = socket.recv_from(&mut buf) else {
                            continue;
                        };
                        let command = String::from_utf8_lossy(&buf[..len]).into_owned();
                        received.lock().unwrap().push(command.clone());
                        let Some(client) = from.as_pathname().map(Path::to_path_buf) else {
                            continue;
                        };
                        last_client = Some(client.clone());
                        if let Answer::Send(messages) = answer(&command) {
                            // A client that sent DETACH as it closed is gone before the
                            // reply, as with the real supplicant, so a failed send is ignored.
                            for message in messages {
                                let _ = socket.send_to(message.as_bytes(), &client);
                            }
                        }
                    }
                })
            };

            FakeServer {
                dir,
                path,
                received,
                push,
                thread: Some(thread),
                stop,
            }
        }

        /// Sends a datagram to the last client that sent a command.
        pub fn push(&self, message: &str) {
            self.push.send(message.to_string()).unwrap();
        }

        /// Returns the commands received so far.
        pub fn commands(&self) -> Vec<String> {
            self.received.lock().unwrap().clone()
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            *self.stop.lock().unwrap() = true;
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Answer, FakeServer};
    use super::*;

    fn options(dir: &Path) -> ClientOptions {
        ClientOptions {
            parent_dir: Some(dir.to_path_buf()),
            timeout: Duration::from_millis(500),
        }
    }

    fn client_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn request_returns_reply_without_newline() {
        let server = FakeServer::start(|command| match command {
            "GET mac_addr" => Answer::reply("0\n"),
            _ => Answer::reply("UNKNOWN COMMAND\n"),
        });
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        assert_eq!(control.request("GET mac_addr").unwrap(), "0");
        assert_eq!(server.commands(), vec!["GET mac_addr"]);
    }

    #[test]
    fn request_ok_accepts_only_ok() {
        let server = FakeServer::start(|command| match command {
            "SET preassoc_mac_addr 1" => Answer::reply("OK\n"),
            _ => Answer::reply("1\n"),
        });
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        assert!(control.request_ok("SET preassoc_mac_addr 1").is_ok());
        let err = control.request_ok("GET x").unwrap_err();
        assert!(matches!(err, CtrlError::Protocol { .. }), "{err}");
    }

    #[test]
    fn fail_reply_is_rejected_error() {
        let server = FakeServer::start(|_| Answer::reply("FAIL\n"));
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        let err = control.request("SET mac_addr 7").unwrap_err();
        match err {
            CtrlError::Rejected { command, reply } => {
                assert_eq!(command, "SET mac_addr 7");
                assert_eq!(reply, "FAIL");
            }
            other => panic!("expected Rejected, got {other}"),
        }
    }

    #[test]
    fn unknown_command_names_the_command() {
        let server = FakeServer::start(|_| Answer::reply("UNKNOWN COMMAND\n"));
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        let err = control.request("MAC_RAND_SCAN all enable=1").unwrap_err();
        match err {
            CtrlError::UnknownCommand { command } => assert_eq!(command, "MAC_RAND_SCAN"),
            other => panic!("expected UnknownCommand, got {other}"),
        }
    }

    #[test]
    fn silent_server_times_out() {
        let server = FakeServer::start(|_| Answer::Silence);
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        let started = Instant::now();
        let err = control.request("PING").unwrap_err();
        assert!(matches!(err, CtrlError::Timeout { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn events_during_request_are_kept() {
        let server = FakeServer::start(|command| match command {
            "ATTACH" => Answer::reply("OK\n"),
            "SELECT_NETWORK 0" => Answer::Send(vec![
                "<3>CTRL-EVENT-SCAN-STARTED ".to_string(),
                "OK\n".to_string(),
            ]),
            _ => Answer::reply("FAIL\n"),
        });
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();
        control.attach().unwrap();

        control.request_ok("SELECT_NETWORK 0").unwrap();
        let event = control.next_event(Duration::ZERO).unwrap().unwrap();
        assert_eq!(event.name(), "CTRL-EVENT-SCAN-STARTED");
        assert_eq!(event.level, 3);

        server.push(
            "<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]",
        );
        // The push reaches the client once the server loop runs again.
        let event = control
            .next_event(Duration::from_secs(2))
            .unwrap()
            .expect("the pushed event");
        assert_eq!(event.name(), "CTRL-EVENT-CONNECTED");
        assert_eq!(event.field("id"), Some("0"));
        assert_eq!(event.field("id_str"), Some(""));
    }

    #[test]
    fn next_event_times_out_with_none() {
        let server = FakeServer::start(|_| Answer::reply("OK\n"));
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();
        control.attach().unwrap();

        let event = control.next_event(Duration::from_millis(100)).unwrap();
        assert_eq!(event, None);
    }

    #[test]
    fn wake_ends_an_unlimited_wait() {
        use std::os::fd::{AsFd, FromRawFd, OwnedFd};

        let server = FakeServer::start(|_| Answer::reply("OK\n"));
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();
        control.attach().unwrap();
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe2 writes.
        let created = unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(created, 0);
        // SAFETY: pipe2 just opened both descriptors, and nothing else owns them.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };

        // An event arrives while nothing wakes the wait.
        server.push("<3>CTRL-EVENT-SCAN-RESULTS ");
        let event = control
            .next_event_or_wake(None, &[read_end.as_fd()])
            .unwrap()
            .expect("the pushed event");
        assert_eq!(event.name(), "CTRL-EVENT-SCAN-RESULTS");

        // A limited wait without events ends at its limit.
        let started = Instant::now();
        let event = control
            .next_event_or_wake(Some(Duration::from_millis(100)), &[read_end.as_fd()])
            .unwrap();
        assert_eq!(event, None);
        assert!(started.elapsed() >= Duration::from_millis(100));

        // A wake from another thread ends a wait without a limit.
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: one readable byte is written to the pipe's open write end.
            unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&write_end),
                    b"x".as_ptr().cast(),
                    1,
                )
            };
            write_end
        });
        let event = control
            .next_event_or_wake(None, &[read_end.as_fd()])
            .unwrap();
        assert_eq!(event, None);
        drop(waker.join().unwrap());
    }

    #[test]
    fn late_reply_is_not_taken_for_next() {
        // The first PING times out. Its reply arrives later and must be dropped.
        let mut count = 0;
        let server = FakeServer::start(move |command| {
            count += 1;
            match (command, count) {
                ("PING", 1) => Answer::Silence,
                ("GET mac_addr", _) => Answer::reply("1\n"),
                _ => Answer::reply("PONG\n"),
            }
        });
        let local = client_dir();
        let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();

        assert!(control.request("PING").is_err());
        server.push("PONG\n");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(control.request("GET mac_addr").unwrap(), "1");
    }

    #[test]
    fn missing_server_is_connect_error() {
        let local = client_dir();
        let missing = local.path().join("wlan9");
        let err = ControlSocket::connect(&missing, &options(local.path()))
            .err()
            .unwrap();
        assert!(matches!(err, CtrlError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("ctrl_interface="), "{err}");
    }

    #[test]
    fn client_files_removed_on_drop() {
        let server = FakeServer::start(|_| Answer::reply("PONG\n"));
        let local = client_dir();
        {
            let mut control = ControlSocket::connect(&server.path, &options(local.path())).unwrap();
            control.request("PING").unwrap();
            assert_eq!(fs::read_dir(local.path()).unwrap().count(), 1);
        }
        assert_eq!(fs::read_dir(local.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_connect_leaves_no_files() {
        let local = client_dir();
        let missing = local.path().join("absent");
        let _ = ControlSocket::connect(&missing, &options(local.path()));
        let leftovers: Vec<_> = fs::read_dir(local.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn client_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = client_dir();
        let dir = create_private_dir(parent.path()).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn set_network_value_is_hidden() {
        assert_eq!(
            redacted_command("SET_NETWORK 0 psk \"secret\""),
            "SET_NETWORK 0 psk ..."
        );
        assert_eq!(redacted_command("SET mac_addr 1"), "SET mac_addr 1");
    }

    #[test]
    fn event_parse_rejects_replies() {
        assert_eq!(Event::parse("OK\n"), None);
        assert_eq!(Event::parse("<x>text"), None);
        let event = Event::parse(
            "<2>CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1\n",
        )
        .unwrap();
        assert_eq!(event.name(), "CTRL-EVENT-DISCONNECTED");
        assert_eq!(event.field("reason"), Some("3"));
        assert_eq!(event.field("locally_generated"), Some("1"));
        assert_eq!(event.field("missing"), None);
    }
}
