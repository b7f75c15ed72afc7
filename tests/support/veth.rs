//! Creating and removing veth pairs with one rtnetlink request each, without running `ip`, so
//! that a benchmark can time to the microsecond when it asked the kernel for a new link.
//!
//! The requests are encoded by hand (`struct nlmsghdr`, `struct ifinfomsg` and `IFLA_*`
//! attributes from `linux/rtnetlink.h`, `linux/if_link.h` and `linux/veth.h`), because the
//! crate's rtnetlink client only reads and changes links and never creates them. This module
//! does not decode notifications; `macveil::link::LinkMonitor` does.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use macveil::MacAddr;
use macveil::link::Netns;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_ERROR: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

/// Size of `struct nlmsghdr`.
const HEADER_BYTES: usize = 16;

/// Size of `struct ifinfomsg`.
const IFINFOMSG_BYTES: usize = 16;

/// A `NETLINK_ROUTE` socket in one network namespace, for creating and removing veth pairs.
pub struct VethFactory {
    fd: OwnedFd,
    sequence: u32,
}

impl VethFactory {
    /// Opens the socket inside `netns`. Links it creates appear there.
    pub fn open(netns: &Netns) -> io::Result<VethFactory> {
        let fd = netns
            .run_inside(|| -> io::Result<OwnedFd> {
                // SAFETY: socket() takes plain integers and returns a new descriptor or -1.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        libc::NETLINK_ROUTE,
                    )
                };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: fd is a new descriptor that nothing else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .map_err(io::Error::other)??;
        Ok(VethFactory { fd, sequence: 0 })
    }

    /// Creates the veth pair `name` (here, with `address`) and `peer`, and returns the moment
    /// just before the request was sent. With `peer_netns_pid`, the peer is created in the
    /// network namespace of that process.
    pub fn create(
        &mut self,
        name: &str,
        address: MacAddr,
        peer: &str,
        peer_netns_pid: Option<u32>,
    ) -> io::Result<Instant> {
        let mut body = vec![0u8; IFINFOMSG_BYTES];
        put_attribute(&mut body, IFLA_IFNAME, &nul_terminated(name));
        put_attribute(&mut body, IFLA_ADDRESS, &address.octets());
        put_nested(&mut body, IFLA_LINKINFO, |info| {
            put_attribute(info, IFLA_INFO_KIND, b"veth\0");
            put_nested(info, IFLA_INFO_DATA, |data| {
                put_nested(data, VETH_INFO_PEER, |peer_message| {
                    peer_message.extend_from_slice(&[0u8; IFINFOMSG_BYTES]);
                    put_attribute(peer_message, IFLA_IFNAME, &nul_terminated(peer));
                    if let Some(pid) = peer_netns_pid {
                        put_attribute(peer_message, IFLA_NET_NS_PID, &pid.to_ne_bytes());
                    }
                });
            });
        });

        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let sent_at = Instant::now();
        self.request(RTM_NEWLINK, flags, &body)
            .map_err(|error| with_context(error, &format!("creating veth {name}")))?;
        Ok(sent_at)
    }

    /// Removes the link `name`; for a veth, the kernel removes its peer too.
    pub fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut body = vec![0u8; IFINFOMSG_BYTES];
        put_attribute(&mut body, IFLA_IFNAME, &nul_terminated(name));
        self.request(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, &body)
            .map_err(|error| with_context(error, &format!("removing {name}")))
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, message_type: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut message = Vec::with_capacity(HEADER_BYTES + body.len());
        message.extend_from_slice(&((HEADER_BYTES + body.len()) as u32).to_ne_bytes());
        message.extend_from_slice(&message_type.to_ne_bytes());
        message.extend_from_slice(&flags.to_ne_bytes());
        message.extend_from_slice(&self.sequence.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(body);

        // SAFETY: the buffer lives for the call and its length is passed.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        self.wait_acknowledgement()
    }

    /// Reads replies until the error message (`NLMSG_ERROR`, 0 for success) of the last request.
    fn wait_acknowledgement(&self) -> io::Result<()> {
        let mut buffer = vec![0u8; 8192];
        loop {
            // SAFETY: the buffer lives for the call and its length is passed.
            let length = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            if length < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }

            let mut offset = 0;
            let length = length as usize;
            while offset + HEADER_BYTES <= length {
                let field = |at: usize| -> [u8; 4] {
                    [
                        buffer[offset + at],
                        buffer[offset + at + 1],
                        buffer[offset + at + 2],
                        buffer[offset + at + 3],
                    ]
                };
                let message_length = u32::from_ne_bytes(field(0)) as usize;
                let message_type = u16::from_ne_bytes([buffer[offset + 4], buffer[offset + 5]]);
                let sequence = u32::from_ne_bytes(field(8));
                if message_length < HEADER_BYTES {
                    return Err(io::Error::other("invalid netlink message length"));
                }
                if message_type == NLMSG_ERROR && sequence == self.sequence {
                    let error = i32::from_ne_bytes(field(HEADER_BYTES));
                    if error == 0 {
                        return Ok(());
                    }
                    return Err(io::Error::from_raw_os_error(-error));
                }
                offset += message_length.next_multiple_of(4);
            }
        }
    }
}

fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// Appends one `struct nlattr` with `payload`, padded to 4 bytes.
fn put_attribute(buffer: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let length = (4 + payload.len()) as u16;
    buffer.extend_from_slice(&length.to_ne_bytes());
    buffer.extend_from_slice(&kind.to_ne_bytes());
    buffer.extend_from_slice(payload);
    buffer.resize(buffer.len().next_multiple_of(4), 0);
}

/// Appends a nested attribute whose contents `fill` writes. It carries no `NLA_F_NESTED` flag,
/// as `ip` sends it, because the kernel parses link attributes without requiring the flag.
fn put_nested(buffer: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0u8; 4]);
    fill(buffer);
    let length = (buffer.len() - start) as u16;
    buffer[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    buffer[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
}

fn with_context(error: io::Error, what: &str) -> io::Error {
    io::Error::new(error.kind(), format!("{what} failed: {error}"))
}

// The hand-written sizes are the kernel's.
const _: () = assert!(mem::size_of::<libc::nlmsghdr>() == HEADER_BYTES);
const _: () = assert!(mem::size_of::<libc::ifinfomsg>() == IFINFOMSG_BYTES);
