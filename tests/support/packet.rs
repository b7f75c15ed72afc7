//! Link-layer (`AF_PACKET`) sockets for the leak tests: one that sends probe frames on a chosen
//! link and one that captures every frame arriving in a network namespace.
//!
//! A probe is an Ethernet broadcast with the IEEE "local experimental" EtherType 0x88B5. Its
//! payload starts with [`PROBE_MAGIC`], so that a capture can tell probes from the frames the
//! kernel sends by itself (IPv6 router solicitations, duplicate address detection, MLD reports).
//!
//! The probe socket is of type `SOCK_DGRAM`: the kernel writes the Ethernet header, with the
//! address the link has at the moment it transmits (`dev->dev_addr`) as the source, exactly
//! as it does for its own traffic. The sender never reads or chooses the source address.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use macveil::MacAddr;
use macveil::link::Netns;

/// EtherType of the probe frames: 0x88B5, "IEEE Std 802 - Local Experimental EtherType 1".
pub const PROBE_ETHERTYPE: u16 = 0x88b5;

/// First bytes of every probe payload.
pub const PROBE_MAGIC: &[u8; 8] = b"mvprobe\0";

/// `ETH_P_ALL`: every protocol, for the capture socket.
const ETH_P_ALL: u16 = 0x0003;

/// `PACKET_OUTGOING`: a frame the namespace itself sent, seen by a capture on the way out.
pub const PACKET_OUTGOING: u8 = 4;

/// Receive buffer of the capture socket, set with `SO_RCVBUFFORCE`. Each captured frame costs
/// about 1 KiB of buffer, so 16 MiB takes several seconds of the leak test's probe traffic.
const CAPTURE_BUFFER_BYTES: libc::c_int = 16 << 20;

/// One frame read by a capture socket.
pub struct Frame {
    /// The index of the link that received it, in the capture's namespace.
    pub ifindex: u32,
    /// `PACKET_HOST`, `PACKET_BROADCAST`, ..., [`PACKET_OUTGOING`].
    pub packet_type: u8,
    /// The Ethernet source address.
    pub source: MacAddr,
    /// The EtherType.
    pub ethertype: u16,
    /// The bytes after the Ethernet header.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Returns the sender's link index and the sequence number of a probe, or none for any
    /// other frame.
    pub fn probe(&self) -> Option<(u32, u32)> {
        if self.ethertype != PROBE_ETHERTYPE || !self.payload.starts_with(PROBE_MAGIC) {
            return None;
        }
        let rest = &self.payload[PROBE_MAGIC.len()..];
        if rest.len() < 8 {
            return None;
        }
        let ifindex = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let sequence = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        Some((ifindex, sequence))
    }
}

/// An `AF_PACKET` socket that belongs to one network namespace.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket in `netns` that sends probe frames on any of its links.
    pub fn probe_sender(netns: &Netns) -> io::Result<PacketSocket> {
        open_in(netns, libc::SOCK_DGRAM, PROBE_ETHERTYPE)
    }

    /// Opens a socket in `netns` that receives every frame on every link, with a large receive
    /// buffer and a receive timeout of `timeout`, so that a capture loop can check for its stop
    /// flag.
    pub fn capture(netns: &Netns, timeout: Duration) -> io::Result<PacketSocket> {
        let socket = open_in(netns, libc::SOCK_RAW, ETH_P_ALL)?;
        socket.set_int_option(libc::SO_RCVBUFFORCE, CAPTURE_BUFFER_BYTES)?;

        let timeout = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: the option value is a timeval that lives for the call, and its size is passed.
        let result = unsafe {
            libc::setsockopt(
                socket.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    /// Sends a probe as an Ethernet broadcast on the link `ifindex`. The kernel fills in the
    /// link's current address as the source.
    pub fn send_probe(&self, ifindex: u32, sequence: u32) -> io::Result<()> {
        let mut payload = Vec::with_capacity(PROBE_MAGIC.len() + 8);
        payload.extend_from_slice(PROBE_MAGIC);
        payload.extend_from_slice(&ifindex.to_be_bytes());
        payload.extend_from_slice(&sequence.to_be_bytes());

        let mut address = link_address(ifindex, PROBE_ETHERTYPE);
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&[0xff; 6]);

        // SAFETY: the buffer and the address live for the call, and their sizes are passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&raw const address).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one frame. Returns `Ok(None)` when the receive timeout passed first.
    pub fn receive(&self, buffer: &mut [u8]) -> io::Result<Option<Frame>> {
        // SAFETY: sockaddr_ll is plain data, for which all zero bytes are a valid value.
        let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut address_length = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;

        // SAFETY: the buffer and the address live for the call, and their sizes are passed;
        // the kernel writes at most that many bytes into each.
        let length = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                (&raw mut address).cast(),
                &mut address_length,
            )
        };
        if length < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        }

        let frame = &buffer[..length as usize];
        if frame.len() < 14 {
            return Ok(None);
        }
        Ok(Some(Frame {
            ifindex: address.sll_ifindex as u32,
            packet_type: address.sll_pkttype,
            source: MacAddr::from_slice(&frame[6..12]).expect("six bytes"),
            ethertype: u16::from_be_bytes([frame[12], frame[13]]),
            payload: frame[14..].to_vec(),
        }))
    }

    /// Returns how many frames the kernel dropped because the receive buffer was full, since the
    /// last call (`PACKET_STATISTICS` resets the counters when read).
    pub fn dropped(&self) -> io::Result<u32> {
        // SAFETY: tpacket_stats is plain data, for which all zero bytes are a valid value.
        let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut length = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: the value and its length live for the call, and the kernel writes at most
        // `length` bytes.
        let result = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut length,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stats.tp_drops)
    }

    fn set_int_option(&self, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: the option value is a c_int that lives for the call, and its size is passed.
        let result = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const value).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Opens an `AF_PACKET` socket of `kind` for `protocol` inside `netns`. The socket stays in that
/// namespace for its whole life.
fn open_in(netns: &Netns, kind: libc::c_int, protocol: u16) -> io::Result<PacketSocket> {
    let opened = netns
        .run_inside(move || -> io::Result<OwnedFd> {
            // SAFETY: socket() takes plain integers and returns a new descriptor or -1.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    kind | libc::SOCK_CLOEXEC,
                    libc::c_int::from(protocol.to_be()),
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a new descriptor that nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .map_err(io::Error::other)?;
    Ok(PacketSocket { fd: opened? })
}

/// Builds a link-layer address for `sendto` on the link `ifindex`.
fn link_address(ifindex: u32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data, for which all zero bytes are a valid value.
    let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::c_ushort;
    address.sll_protocol = protocol.to_be();
    address.sll_ifindex = ifindex as libc::c_int;
    address
}
