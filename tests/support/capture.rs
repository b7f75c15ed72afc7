//! A capture of every frame that arrives in one network namespace, on a thread of its own.
//!
//! The leak tests put the far end of each test link (the veth peer) in the capture's namespace,
//! so every frame the test link transmits arrives here. The capture records, per source
//! address, how many frames carried it and when, and per receiving link which source addresses
//! its probes carried. It ignores the frames the capture's own namespace sends.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use macveil::MacAddr;
use macveil::link::Netns;

use super::packet::{Frame, PACKET_OUTGOING, PacketSocket};

/// How long one receive call blocks before the thread checks whether to stop.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(20);

/// Frames between two readings of the socket's drop counter while traffic flows.
const FRAMES_PER_DROP_CHECK: u64 = 1000;

/// Frames seen with one source address.
#[derive(Debug, Clone, Copy)]
pub struct SourceSeen {
    /// Number of frames.
    pub frames: u64,
    /// When the first one arrived.
    pub first: Instant,
    /// When the last one arrived.
    pub last: Instant,
}

/// Probes received on one link of the capture's namespace.
#[derive(Debug, Clone)]
pub struct ProbesSeen {
    /// Number of probes.
    pub frames: u64,
    /// When the first one arrived.
    pub first: Instant,
    /// The source addresses the probes carried, each with the arrival of its first probe.
    pub sources: BTreeMap<MacAddr, Instant>,
}

/// Everything the capture has recorded so far.
#[derive(Debug, Default)]
pub struct CaptureLog {
    /// Frames by source address, probes and kernel traffic alike.
    pub by_source: HashMap<MacAddr, SourceSeen>,
    /// Probes by the index of the link that received them, in the capture's namespace.
    pub probes: HashMap<u32, ProbesSeen>,
    /// Every frame received from another namespace.
    pub frames: u64,
    /// Frames the kernel dropped because the capture's buffer was full.
    pub dropped: u64,
    /// The error that ended the capture thread, if any.
    pub error: Option<String>,
}

/// A running capture. Dropping it stops the thread.
pub struct Capture {
    log: Arc<Mutex<CaptureLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Opens the capture socket in `netns` and starts receiving. Every frame that arrives after
    /// this returns is recorded.
    pub fn start(netns: &Netns) -> Capture {
        let socket = PacketSocket::capture(netns, RECEIVE_TIMEOUT)
            .unwrap_or_else(|error| panic!("failed to open a capture socket in {netns}: {error}"));
        let log = Arc::new(Mutex::new(CaptureLog::default()));
        let stop = Arc::new(AtomicBool::new(false));

        let thread = {
            let log = Arc::clone(&log);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(String::from("capture"))
                .spawn(move || receive_loop(&socket, &log, &stop))
                .expect("failed to start the capture thread")
        };
        Capture {
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Locks the log for reading. Panics when the capture thread failed.
    pub fn log(&self) -> MutexGuard<'_, CaptureLog> {
        let log = self.log.lock().expect("capture log lock");
        if let Some(error) = &log.error {
            panic!("the capture failed: {error}");
        }
        log
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn receive_loop(socket: &PacketSocket, log: &Mutex<CaptureLog>, stop: &AtomicBool) {
    let mut buffer = vec![0u8; 65536];
    let mut since_drop_check = 0;
    while !stop.load(Ordering::Relaxed) {
        let frame = match socket.receive(&mut buffer) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                record_drops(socket, log);
                continue;
            }
            Err(error) => {
                log.lock().expect("capture log lock").error =
                    Some(format!("receiving a frame failed: {error}"));
                return;
            }
        };
        if frame.packet_type == PACKET_OUTGOING {
            continue;
        }
        record_frame(log, &frame, Instant::now());

        since_drop_check += 1;
        if since_drop_check == FRAMES_PER_DROP_CHECK {
            since_drop_check = 0;
            record_drops(socket, log);
        }
    }
    record_drops(socket, log);
}

fn record_frame(log: &Mutex<CaptureLog>, frame: &Frame, now: Instant) {
    let mut log = log.lock().expect("capture log lock");
    log.frames += 1;
    log.by_source
        .entry(frame.source)
        .and_modify(|seen| {
            seen.frames += 1;
            seen.last = now;
        })
        .or_insert(SourceSeen {
            frames: 1,
            first: now,
            last: now,
        });

    if frame.probe().is_some() {
        let probes = log.probes.entry(frame.ifindex).or_insert(ProbesSeen {
            frames: 0,
            first: now,
            sources: BTreeMap::new(),
        });
        probes.frames += 1;
        probes.sources.entry(frame.source).or_insert(now);
    }
}

fn record_drops(socket: &PacketSocket, log: &Mutex<CaptureLog>) {
    match socket.dropped() {
        Ok(0) => {}
        Ok(dropped) => log.lock().expect("capture log lock").dropped += u64::from(dropped),
        Err(error) => {
            log.lock().expect("capture log lock").error =
                Some(format!("reading the capture statistics failed: {error}"));
        }
    }
}
