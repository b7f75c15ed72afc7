//! The signals the daemon reacts to, received through a `signalfd` so that the event loop can
//! wait for them and for link notifications in one `poll(2)`.
//!
//! The signals are blocked for the whole process before any thread starts, so no thread runs a
//! default handler for them, and the kernel queues them on the descriptor instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The request a received signal stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `SIGHUP`: reload the configuration.
    Reload,
    /// `SIGTERM` or `SIGINT`: exit, leaving every address as it is.
    Exit,
    /// `SIGUSR1`: the system resumed from suspend; check every link again.
    Resume,
}

const HANDLED: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

/// A non-blocking `signalfd` for the handled signals.
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks the handled signals for the calling thread and the threads it starts later, and
    /// opens the descriptor. Call it before starting any thread.
    pub fn block() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset initializes it before any other use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned by this frame.
        unsafe { libc::sigemptyset(&mut set) };
        for signal in HANDLED {
            // SAFETY: as above; the signal numbers are valid.
            unsafe { libc::sigaddset(&mut set, signal) };
        }
        // SAFETY: `set` is initialized, and the old mask is not requested.
        let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if result != 0 {
            return Err(io::Error::from_raw_os_error(result));
        }
        // SAFETY: -1 requests a new descriptor, and `set` is initialized.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { fd })
    }

    /// Reads every queued signal without blocking, in arrival order.
    pub fn read(&self) -> io::Result<Vec<Request>> {
        let mut requests = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data, fully written by a successful read.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: the buffer is `info`, valid for `size` bytes.
            let read = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
            if read < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(requests),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            if read as usize != size {
                return Ok(requests);
            }
            let request = match info.ssi_signo as libc::c_int {
                libc::SIGHUP => Request::Reload,
                libc::SIGUSR1 => Request::Resume,
                _ => Request::Exit,
            };
            requests.push(request);
        }
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
