//! A synchronous rtnetlink client: the only module that uses `netlink-sys`,
//! `netlink-packet-core` and `netlink-packet-route`, so that upgrading those 0.x crates touches
//! this file alone.
//!
//! It sends requests on one `NETLINK_ROUTE` socket and matches every reply to its request by
//! sequence number. Dumps are read until `NLMSG_DONE` and restarted when the kernel flags them
//! as interrupted (`NLM_F_DUMP_INTR`). Batches send many requests before reading any reply and
//! then collect one acknowledgement or error per request. When the kernel drops replies because
//! the receive buffer overflowed, the socket reports ENOBUFS, which is returned as
//! [`LinkError::NoBuffers`]. The socket belongs to the namespace of the thread that opened it.
//!
//! This module decodes and encodes messages; it does not decide what to change.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    DecodeError, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, ParseableParametrized,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkInfo,
    LinkMessage, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use super::error::{Errno, LinkError, Operation};
use super::{AssignType, IpAddress, Link, OperState};
use crate::addr::MacAddr;

/// How many requests a batch sends before it reads their replies. Each reply occupies about
/// 1 KiB of the socket's receive buffer (the skb, not the 36-byte message), and the default
/// `net.core.rmem_default` is 208 KiB, so 64 replies leave a wide margin.
const BATCH_WINDOW: usize = 64;

/// The receive buffer size requested with `SO_RCVBUF`; the kernel caps it at
/// `net.core.rmem_max`.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

/// The size of one `recv`. The kernel builds dump messages of at most 32 KiB.
const RECEIVE_CHUNK_BYTES: usize = 64 * 1024;

/// How often an interrupted dump is restarted before giving up.
const DUMP_ATTEMPTS: usize = 5;

/// `sizeof(struct ifinfomsg)`.
const LINK_HEADER_LEN: usize = 16;

/// A change to send in a batch.
#[derive(Debug, Clone)]
pub enum Request {
    /// Set the hardware address (`RTM_SETLINK` with `IFLA_ADDRESS`).
    SetAddress {
        /// The link's index.
        index: u32,
        /// The new address.
        address: MacAddr,
    },
    /// Set the link administratively up or down (`RTM_SETLINK` changing `IFF_UP`).
    SetAdminState {
        /// The link's index.
        index: u32,
        /// Up when true.
        up: bool,
    },
    /// Add an IP address (`RTM_NEWADDR` with `NLM_F_CREATE | NLM_F_EXCL`).
    AddIp(IpAddress),
    /// Remove an IP address (`RTM_DELADDR`).
    RemoveIp(IpAddress),
    /// Add a route that was read earlier (`RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_EXCL`).
    AddRoute(Route),
}

impl Request {
    /// Returns the index of the link the request changes.
    pub fn index(&self) -> u32 {
        match self {
            Request::SetAddress { index, .. } | Request::SetAdminState { index, .. } => *index,
            Request::AddIp(ip) | Request::RemoveIp(ip) => ip.index,
            Request::AddRoute(route) => route.oif.unwrap_or(0),
        }
    }

    /// Returns the operation, for error messages.
    pub fn operation(&self) -> Operation {
        match self {
            Request::SetAddress { .. } => Operation::SetAddress,
            Request::SetAdminState { up: true, .. } => Operation::SetUp,
            Request::SetAdminState { up: false, .. } => Operation::SetDown,
            Request::AddIp(_) => Operation::AddIpAddress,
            Request::RemoveIp(_) => Operation::RemoveIpAddress,
            Request::AddRoute(_) => Operation::AddRoute,
        }
    }
}

/// A route as read from the kernel, kept whole so that it can be added back unchanged.
#[derive(Debug, Clone)]
pub struct Route {
    /// The destination prefix; none for a default route.
    pub destination: Option<IpAddr>,
    /// The destination prefix length.
    pub prefix_len: u8,
    /// The gateway.
    pub gateway: Option<IpAddr>,
    /// The output link's index (`RTA_OIF`), or the first next hop's for a multipath route.
    pub oif: Option<u32>,
    /// Whether the route has several next hops (`RTA_MULTIPATH`).
    pub multipath: bool,
    /// The routing table (`RTA_TABLE`, else the header's table).
    pub table: u32,
    /// The origin of the route (`RTPROT_*`: 2 kernel, 3 boot, 4 static, 9 router advertisement).
    pub protocol: u8,
    /// The message as dumped, minus the attributes the kernel only reports.
    message: RouteMessage,
}

/// `RTPROT_KERNEL`: routes the kernel derives from addresses.
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_RA`: routes learned from IPv6 router advertisements.
pub const RTPROT_RA: u8 = 9;

impl Route {
    /// Returns whether this route is the same as `other`: same family, destination, gateway, output link,
    /// table and metric.
    pub fn same_as(&self, other: &Route) -> bool {
        let priority = |route: &Route| {
            route
                .message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    RouteAttribute::Priority(value) => Some(*value),
                    _ => None,
                })
        };
        self.message.header.address_family == other.message.header.address_family
            && self.destination == other.destination
            && self.prefix_len == other.prefix_len
            && self.gateway == other.gateway
            && self.oif == other.oif
            && self.table == other.table
            && priority(self) == priority(other)
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.destination {
            Some(destination) => write!(f, "{destination}/{}", self.prefix_len)?,
            None => f.write_str("default")?,
        }
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if self.table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// An open rtnetlink socket.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl AsRawFd for Rtnl {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Without NETLINK_CAP_ACK every error reply carries a copy of the whole request.
        socket.set_cap_ack(true)?;
        socket.set_rx_buf_sz(RECEIVE_BUFFER_BYTES)?;
        Ok(Rtnl {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(RECEIVE_CHUNK_BYTES),
        })
    }

    /// Sets `SO_RCVBUF`, so that tests can make the kernel drop replies.
    #[cfg(test)]
    fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_rx_buf_sz(bytes)
    }

    /// Lists every link in the namespace. Driver, assign type and the ethtool permanent address
    /// are left for the caller to fill in.
    pub fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        let mut request = LinkMessage::default();
        // RTEXT_FILTER_SKIP_STATS keeps each link message small: the statistics are unused.
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.dump(
            RouteNetlinkMessage::GetLink(request),
            Operation::ListLinks,
            |message_type, payload| match message_type {
                RTM_NEWLINK => decode_link(payload).map(Some),
                _ => Ok(None),
            },
        )
    }

    /// Reads one link by index; `Ok(None)` when no link has that index.
    pub fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let sequence = self.send(&[(RouteNetlinkMessage::GetLink(request), NLM_F_REQUEST)])?;

        loop {
            for reply in self.receive(Operation::GetLink)? {
                if reply.sequence != sequence {
                    continue;
                }
                match reply.body {
                    Body::Data {
                        message_type: RTM_NEWLINK,
                        payload,
                    } => {
                        let link = decode_link(&self.buffer[payload])
                            .map_err(|err| protocol_error(Operation::GetLink, err))?;
                        return Ok(Some(link));
                    }
                    Body::Error(Errno(libc::ENODEV)) => return Ok(None),
                    Body::Error(errno) => {
                        return Err(LinkError::Request {
                            operation: Operation::GetLink,
                            errno,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Lists every IPv4 and IPv6 address in the namespace.
    pub fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            Operation::ListIpAddresses,
            |message_type, payload| {
                if message_type != RTM_NEWADDR {
                    return Ok(None);
                }
                match RouteNetlinkMessage::parse_with_param(payload, message_type)? {
                    RouteNetlinkMessage::NewAddress(message) => Ok(decode_ip_address(&message)),
                    _ => Ok(None),
                }
            },
        )
    }

    /// Lists every IPv4 and IPv6 unicast route of every table.
    pub fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            routes.extend(self.dump(
                RouteNetlinkMessage::GetRoute(request),
                Operation::ListRoutes,
                |message_type, payload| {
                    if message_type != RTM_NEWROUTE {
                        return Ok(None);
                    }
                    match RouteNetlinkMessage::parse_with_param(payload, message_type)? {
                        RouteNetlinkMessage::NewRoute(message) => Ok(decode_route(message)),
                        _ => Ok(None),
                    }
                },
            )?);
        }
        Ok(routes)
    }

    /// Sends every request, then collects one result per request, in order. `Err` is returned
    /// only when the socket itself fails; a request the kernel rejects gets its errno in the
    /// returned list.
    pub fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        let mut results = Vec::with_capacity(requests.len());
        for window in requests.chunks(BATCH_WINDOW) {
            let operation = window[0].operation();
            let messages: Vec<(RouteNetlinkMessage, u16)> =
                window.iter().map(encode_request).collect();
            let first = self.send(&messages)?;

            let mut window_results: Vec<Option<Result<(), Errno>>> = vec![None; window.len()];
            let mut pending = window.len();
            while pending > 0 {
                for reply in self.receive(operation)? {
                    let offset = reply.sequence.wrapping_sub(first) as usize;
                    let Some(slot) = window_results.get_mut(offset) else {
                        continue;
                    };
                    let result = match reply.body {
                        Body::Ack => Ok(()),
                        Body::Error(errno) => Err(errno),
                        _ => continue,
                    };
                    if slot.replace(result).is_none() {
                        pending -= 1;
                    }
                }
            }
            results.extend(window_results.into_iter().flatten());
        }
        Ok(results)
    }

    /// Runs a dump request and decodes every message of the reply with `decode`, restarting
    /// the dump when the kernel marks it as interrupted by a concurrent change.
    fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        operation: Operation,
        mut decode: impl FnMut(u16, &[u8]) -> Result<Option<T>, DecodeError>,
    ) -> Result<Vec<T>, LinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let sequence = self.send(&[(request.clone(), NLM_F_REQUEST | NLM_F_DUMP)])?;
            let mut items = Vec::new();
            let mut interrupted = false;
            'reply: loop {
                for reply in self.receive(operation)? {
                    if reply.sequence != sequence {
                        continue;
                    }
                    if reply.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match reply.body {
                        Body::Data {
                            message_type,
                            payload,
                        } => {
                            let item = decode(message_type, &self.buffer[payload])
                                .map_err(|err| protocol_error(operation, err))?;
                            items.extend(item);
                        }
                        Body::Done | Body::Ack => break 'reply,
                        Body::Error(errno) => return Err(LinkError::Request { operation, errno }),
                        Body::Other => {}
                    }
                }
            }
            if !interrupted {
                return Ok(items);
            }
            log::debug!("{operation}: the kernel interrupted the dump, restarting it");
        }
        Err(LinkError::Protocol {
            operation,
            detail: format!(
                "the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times in a row"
            ),
        })
    }

    /// Sends every message in one datagram, with consecutive sequence numbers, and returns the
    /// first sequence number. The kernel processes the messages in order and replies to each.
    fn send(&mut self, messages: &[(RouteNetlinkMessage, u16)]) -> Result<u32, LinkError> {
        let first = self.sequence.wrapping_add(1);
        let mut datagram = Vec::new();
        for (payload, flags) in messages {
            self.sequence = self.sequence.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = *flags;
            header.sequence_number = self.sequence;
            let mut message =
                NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload.clone()));
            message.finalize();

            let start = datagram.len();
            // Messages in one datagram start on 4-byte boundaries (NLMSG_ALIGN).
            let aligned = message.buffer_len().next_multiple_of(4);
            datagram.resize(start + aligned, 0);
            message.serialize(&mut datagram[start..start + message.buffer_len()]);
            // Only the message type: a payload can carry a permanent address.
            log::trace!(
                "netlink send seq {}: type {}",
                self.sequence,
                payload.message_type()
            );
        }

        let operation = messages
            .first()
            .map(|(payload, _)| operation_of(payload))
            .unwrap_or(Operation::ListLinks);
        let sent = self
            .socket
            .send(&datagram, 0)
            .map_err(|source| socket_error(operation, source))?;
        if sent != datagram.len() {
            return Err(LinkError::Protocol {
                operation,
                detail: format!("sent {sent} of {} bytes", datagram.len()),
            });
        }
        Ok(first)
    }

    /// Reads one datagram and splits it into messages, whose payloads stay in the buffer until
    /// the next call.
    fn receive(&mut self, operation: Operation) -> Result<Vec<Reply>, LinkError> {
        self.buffer.clear();
        self.buffer.reserve(RECEIVE_CHUNK_BYTES);
        let length = self
            .socket
            .recv(&mut self.buffer, libc::MSG_TRUNC)
            .map_err(|source| socket_error(operation, source))?;
        if length > self.buffer.len() {
            return Err(LinkError::Protocol {
                operation,
                detail: format!(
                    "a {length}-byte reply did not fit the {}-byte buffer",
                    self.buffer.len()
                ),
            });
        }

        let mut replies = Vec::new();
        for header in split_datagram(&self.buffer[..length], operation) {
            let MessageHeader {
                message_type,
                flags,
                sequence,
                length: message_length,
                payload,
            } = header?;

            let body = match message_type {
                NLMSG_DONE => Body::Done,
                NLMSG_ERROR => {
                    // struct nlmsgerr starts with a negative errno, or 0 for an acknowledgement.
                    let code = self
                        .buffer
                        .get(payload.start..payload.start + 4)
                        .ok_or_else(|| LinkError::Protocol {
                            operation,
                            detail: String::from("truncated error message"),
                        })?;
                    match i32::from_ne_bytes(code.try_into().unwrap()) {
                        0 => Body::Ack,
                        code => Body::Error(Errno(code.abs())),
                    }
                }
                NLMSG_NOOP | NLMSG_OVERRUN => Body::Other,
                _ => Body::Data {
                    message_type,
                    payload,
                },
            };
            log::trace!(
                "netlink receive seq {sequence}: type {message_type}, {message_length} bytes"
            );
            replies.push(Reply {
                sequence,
                flags,
                body,
            });
        }
        Ok(replies)
    }
}

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HEADER_LEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

/// The fields of one message's `struct nlmsghdr`, and where its payload is in the datagram.
struct MessageHeader {
    message_type: u16,
    flags: u16,
    sequence: u32,
    /// `nlmsg_len`: the header and the payload, without the padding after them.
    length: usize,
    payload: std::ops::Range<usize>,
}

/// Splits a received datagram into its messages, in order. Messages start on 4-byte
/// boundaries (NLMSG_ALIGN). An `nlmsg_len` shorter than the header or past the end of the
/// datagram is a protocol error, after which the iterator ends.
fn split_datagram(
    datagram: &[u8],
    operation: Operation,
) -> impl Iterator<Item = Result<MessageHeader, LinkError>> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset + NLMSG_HEADER_LEN > datagram.len() {
            return None;
        }
        let bytes = &datagram[offset..];
        let length = u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize;
        if length < NLMSG_HEADER_LEN || length > bytes.len() {
            offset = datagram.len();
            return Some(Err(LinkError::Protocol {
                operation,
                detail: format!("invalid message length {length}"),
            }));
        }

        let header = MessageHeader {
            message_type: u16::from_ne_bytes(bytes[4..6].try_into().unwrap()),
            flags: u16::from_ne_bytes(bytes[6..8].try_into().unwrap()),
            sequence: u32::from_ne_bytes(bytes[8..12].try_into().unwrap()),
            length,
            payload: offset + NLMSG_HEADER_LEN..offset + length,
        };
        offset += length.next_multiple_of(4);
        Some(Ok(header))
    })
}

/// One message of a received datagram.
struct Reply {
    sequence: u32,
    flags: u16,
    body: Body,
}

enum Body {
    /// `NLMSG_DONE`: the end of a dump.
    Done,
    /// `NLMSG_ERROR` with code 0.
    Ack,
    /// `NLMSG_ERROR` with an errno.
    Error(Errno),
    /// Any other message; the payload is a range of the receive buffer.
    Data {
        message_type: u16,
        payload: std::ops::Range<usize>,
    },
    /// `NLMSG_NOOP` or `NLMSG_OVERRUN`.
    Other,
}

fn protocol_error(operation: Operation, err: DecodeError) -> LinkError {
    LinkError::Protocol {
        operation,
        detail: err.to_string(),
    }
}

fn socket_error(operation: Operation, error: io::Error) -> LinkError {
    if error.raw_os_error() == Some(libc::ENOBUFS) {
        LinkError::NoBuffers { operation }
    } else {
        LinkError::Socket { operation, error }
    }
}

fn operation_of(payload: &RouteNetlinkMessage) -> Operation {
    match payload {
        RouteNetlinkMessage::GetLink(_) => Operation::ListLinks,
        RouteNetlinkMessage::GetAddress(_) => Operation::ListIpAddresses,
        RouteNetlinkMessage::GetRoute(_) => Operation::ListRoutes,
        RouteNetlinkMessage::NewAddress(_) => Operation::AddIpAddress,
        RouteNetlinkMessage::DelAddress(_) => Operation::RemoveIpAddress,
        RouteNetlinkMessage::NewRoute(_) => Operation::AddRoute,
        _ => Operation::SetAddress,
    }
}

fn encode_request(request: &Request) -> (RouteNetlinkMessage, u16) {
    let acknowledged = NLM_F_REQUEST | NLM_F_ACK;
    match request {
        Request::SetAddress { index, address } => {
            let mut message = LinkMessage::default();
            message.header.index = *index;
            message
                .attributes
                .push(LinkAttribute::Address(address.octets().to_vec()));
            (RouteNetlinkMessage::SetLink(message), acknowledged)
        }
        Request::SetAdminState { index, up } => {
            let mut message = LinkMessage::default();
            message.header.index = *index;
            message.header.change_mask = LinkFlags::Up;
            if *up {
                message.header.flags = LinkFlags::Up;
            }
            (RouteNetlinkMessage::SetLink(message), acknowledged)
        }
        Request::AddIp(ip) => (
            RouteNetlinkMessage::NewAddress(encode_ip_address(ip)),
            acknowledged | NLM_F_CREATE | NLM_F_EXCL,
        ),
        Request::RemoveIp(ip) => (
            RouteNetlinkMessage::DelAddress(encode_ip_address(ip)),
            acknowledged,
        ),
        Request::AddRoute(route) => (
            RouteNetlinkMessage::NewRoute(route.message.clone()),
            acknowledged | NLM_F_CREATE | NLM_F_EXCL,
        ),
    }
}

/// Reads a 6-byte hardware address; an all-zero one means "none".
fn decode_mac(bytes: &[u8]) -> Option<MacAddr> {
    MacAddr::from_slice(bytes).filter(|addr| !addr.is_zero())
}

/// The `IFLA_*` attributes [`decode_link`] reads. The others (statistics, IPv6 device
/// configuration, ...) are skipped without being decoded, which matters when dumping a thousand
/// links.
const LINK_ATTRIBUTES_READ: [u16; 7] = [
    1,  // IFLA_ADDRESS
    3,  // IFLA_IFNAME
    5,  // IFLA_LINK
    16, // IFLA_OPERSTATE
    IFLA_LINKINFO,
    IFLA_AF_SPEC,
    54, // IFLA_PERM_ADDRESS
];
const IFLA_WIRELESS: u16 = 11;
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;

fn decode_link(payload: &[u8]) -> Result<Link, DecodeError> {
    let header = LinkHeader::parse(payload)?;
    let flags = header.flags;
    let mut link = Link {
        index: header.index,
        name: String::new(),
        info_kind: None,
        wireless: false,
        link_type: u16::from(header.link_layer_type),
        driver: None,
        admin_up: flags.contains(LinkFlags::Up),
        lower_up: flags.contains(LinkFlags::LowerUp),
        operstate: OperState::Unknown,
        address: None,
        permanent: None,
        permanent_source: None,
        assign_type: AssignType::Unknown,
        parent: None,
        ipv6_addr_gen_mode: None,
    };
    let attributes = payload.get(LINK_HEADER_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attributes) {
        let nla = nla?;
        // kind() has the NLA_F_NESTED and NLA_F_NET_BYTEORDER flags cleared.
        let kind = nla.kind();
        if kind == IFLA_WIRELESS {
            // Only its presence matters; the wireless event inside is not decoded.
            link.wireless = true;
            continue;
        }
        if !LINK_ATTRIBUTES_READ.contains(&kind) {
            continue;
        }
        let attribute = match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(attribute) => attribute,
            // The link kind and IPv6 settings are details. A kernel newer than this decoder may
            // nest something it cannot read, and the link is still worth listing.
            Err(err) if kind == IFLA_LINKINFO || kind == IFLA_AF_SPEC => {
                log::debug!("link {}: skipping attribute {kind}: {err}", header.index);
                continue;
            }
            Err(err) => return Err(err),
        };
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Address(bytes) => link.address = decode_mac(&bytes),
            LinkAttribute::PermAddress(bytes) => {
                link.permanent = decode_mac(&bytes);
                if link.permanent.is_some() {
                    link.permanent_source = Some(super::PermanentSource::Netlink);
                }
            }
            LinkAttribute::OperState(state) => link.operstate = decode_operstate(state),
            LinkAttribute::Link(parent) => link.parent = Some(parent),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.info_kind = Some(kind.to_string());
                    }
                }
            }
            LinkAttribute::AfSpecUnspec(families) => {
                for family in families {
                    if let AfSpecUnspec::Inet6(entries) = family {
                        for entry in entries {
                            if let AfSpecInet6::AddrGenMode(mode) = entry {
                                link.ipv6_addr_gen_mode = Some(u8::from(&mode));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

fn decode_operstate(state: State) -> OperState {
    match state {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

fn decode_ip_address(message: &AddressMessage) -> Option<IpAddress> {
    let mut address = None;
    let mut local = None;
    let mut broadcast = None;
    let mut label = None;
    let mut protocol = None;
    let mut flags = u32::from(message.header.flags.bits());
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Broadcast(ip) => broadcast = Some(IpAddr::V4(*ip)),
            AddressAttribute::Label(text) => label = Some(text.clone()),
            AddressAttribute::Flags(value) => flags = value.bits(),
            AddressAttribute::Protocol(value) => protocol = Some(u8::from(*value)),
            _ => {}
        }
    }
    // For IPv4, IFA_LOCAL is the address and IFA_ADDRESS the peer; IPv6 sends only IFA_ADDRESS
    // unless the address is point-to-point.
    let (own, peer) = match (local, address) {
        (Some(local), Some(address)) if local != address => (local, Some(address)),
        (Some(local), _) => (local, None),
        (None, Some(address)) => (address, None),
        (None, None) => return None,
    };
    Some(IpAddress {
        index: message.header.index,
        address: own,
        prefix_len: message.header.prefix_len,
        peer,
        broadcast,
        label,
        flags,
        scope: u8::from(message.header.scope),
        protocol,
    })
}

/// `IFA_F_*` bits that describe state (DAD in progress or failed) rather than configuration;
/// they are dropped when an address is added back.
const IFA_STATE_FLAGS: u32 = 0x04 | 0x08 | 0x20 | 0x40;

fn encode_ip_address(ip: &IpAddress) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = match ip.address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = ip.prefix_len;
    message.header.index = ip.index;
    message.header.scope = AddressScope::from(ip.scope);
    let flags = ip.flags & !IFA_STATE_FLAGS;
    // The header has room for the low 8 bits only, so IFA_FLAGS carries all 32.
    message.header.flags = AddressHeaderFlags::from_bits_retain(flags as u8);

    match ip.address {
        IpAddr::V4(_) => {
            message.attributes.push(AddressAttribute::Local(ip.address));
            message
                .attributes
                .push(AddressAttribute::Address(ip.peer.unwrap_or(ip.address)));
            if let Some(IpAddr::V4(broadcast)) = ip.broadcast {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(broadcast));
            }
            if let Some(label) = &ip.label {
                message
                    .attributes
                    .push(AddressAttribute::Label(label.clone()));
            }
        }
        IpAddr::V6(_) => {
            message
                .attributes
                .push(AddressAttribute::Address(ip.address));
            if let Some(peer) = ip.peer {
                message.attributes.push(AddressAttribute::Local(ip.address));
                message.attributes[0] = AddressAttribute::Address(peer);
            }
        }
    }
    message
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
            flags,
        )));
    message
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn decode_route(mut message: RouteMessage) -> Option<Route> {
    let header = &message.header;
    if !matches!(
        header.address_family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) {
        return None;
    }
    let mut route = Route {
        destination: None,
        prefix_len: header.destination_prefix_length,
        gateway: None,
        oif: None,
        multipath: false,
        table: u32::from(header.table),
        protocol: u8::from(header.protocol),
        message: RouteMessage::default(),
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => route.destination = route_ip(address),
            RouteAttribute::Gateway(address) => route.gateway = route_ip(address),
            RouteAttribute::Oif(index) => route.oif = Some(*index),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::MultiPath(hops) => {
                route.multipath = true;
                route.oif = route.oif.or(hops.first().map(|hop| hop.interface_index));
            }
            _ => {}
        }
    }
    // Attributes that only describe the route's state would make the kernel reject or
    // misread the request when the route is added back.
    message.attributes.retain(|attribute| {
        !matches!(
            attribute,
            RouteAttribute::CacheInfo(_) | RouteAttribute::Expires(_) | RouteAttribute::Other(_)
        )
    });
    message.header.flags = Default::default();
    if route.protocol == u8::from(RouteProtocol::Unspec) {
        message.header.protocol = RouteProtocol::Boot;
    }
    route.message = message;
    Some(route)
}

// Link notifications for the daemon.

/// `RTNLGRP_LINK`: the multicast group on which the kernel announces every new, changed and
/// removed link (`<linux/rtnetlink.h>`).
const RTNLGRP_LINK: u32 = 1;

/// `RTM_DELLINK`.
const RTM_DELLINK: u16 = 17;

/// The receive buffer the notification socket requests with `SO_RCVBUFFORCE`, which ignores
/// `net.core.rmem_max` for a caller with CAP_NET_ADMIN. A link notification takes about 2 KiB
/// of buffer, so 8 MiB holds a burst of a few thousand before the kernel drops any (ENOBUFS).
const NOTIFICATION_BUFFER_BYTES: libc::c_int = 8 << 20;

/// One link notification.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: a link appeared or changed. Driver, assign type and the ethtool permanent
    /// address are not filled in.
    New(Link),
    /// `RTM_DELLINK`: a link was removed.
    Removed {
        /// The link's index.
        index: u32,
        /// The link's name.
        name: String,
    },
}

/// A non-blocking socket subscribed to link notifications in the namespace of the thread that
/// opened it.
pub struct LinkEvents {
    socket: Socket,
    buffer: Vec<u8>,
}

impl AsRawFd for LinkEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl LinkEvents {
    /// Opens the socket and joins `RTNLGRP_LINK`.
    pub fn open() -> io::Result<LinkEvents> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(RTNLGRP_LINK)?;
        socket.set_non_blocking(true)?;

        let size = NOTIFICATION_BUFFER_BYTES;
        // SAFETY: the option value is a c_int that lives for the call, and its size is passed.
        let forced = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if forced != 0 {
            // Without CAP_NET_ADMIN the kernel caps the size at net.core.rmem_max.
            socket.set_rx_buf_sz(size)?;
        }
        Ok(LinkEvents {
            socket,
            buffer: Vec::with_capacity(RECEIVE_CHUNK_BYTES),
        })
    }

    /// Sets `SO_RCVBUF`, so that tests can make the kernel drop notifications.
    #[cfg(test)]
    pub(super) fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_rx_buf_sz(bytes)
    }

    /// Reads one datagram of notifications. Returns `Ok(None)` when none is queued, and
    /// [`LinkError::NoBuffers`] when the kernel dropped notifications because the buffer was
    /// full: the caller must then read every link again, because some changes were lost.
    pub fn receive(&mut self) -> Result<Option<Vec<LinkEvent>>, LinkError> {
        let operation = Operation::MonitorLinks;
        self.buffer.clear();
        self.buffer.reserve(RECEIVE_CHUNK_BYTES);
        let length = match self.socket.recv(&mut self.buffer, libc::MSG_TRUNC) {
            Ok(length) => length,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(Some(Vec::new())),
            Err(error) => return Err(socket_error(operation, error)),
        };
        if length > self.buffer.len() {
            return Err(LinkError::Protocol {
                operation,
                detail: format!(
                    "a {length}-byte notification did not fit the {}-byte buffer",
                    self.buffer.len()
                ),
            });
        }

        let mut events = Vec::new();
        for header in split_datagram(&self.buffer[..length], operation) {
            let header = header?;
            let message_type = header.message_type;
            let message_length = header.length;
            let payload = &self.buffer[header.payload];
            log::trace!("netlink notification: type {message_type}, {message_length} bytes");
            match message_type {
                RTM_NEWLINK => {
                    let link =
                        decode_link(payload).map_err(|err| protocol_error(operation, err))?;
                    events.push(LinkEvent::New(link));
                }
                RTM_DELLINK => {
                    let link =
                        decode_link(payload).map_err(|err| protocol_error(operation, err))?;
                    events.push(LinkEvent::Removed {
                        index: link.index,
                        name: link.name,
                    });
                }
                _ => {}
            }
        }
        Ok(Some(events))
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::Emitable;
    use netlink_packet_route::link::{InfoKind, WirelessEvent};

    use super::*;
    use crate::link::testns::TestNetns;

    fn encode(message: &LinkMessage) -> Vec<u8> {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        bytes
    }

    fn message(attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 7;
        message.header.link_layer_type = 1.into();
        message.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        message.attributes = attributes;
        message
    }

    #[test]
    fn decode_link_reads_permanent_and_wireless() {
        let bytes = encode(&message(vec![
            LinkAttribute::IfName(String::from("wlan0")),
            LinkAttribute::Address(vec![0x02, 0, 0, 0, 0, 1]),
            LinkAttribute::PermAddress(vec![0x3c, 0x22, 0xfb, 1, 2, 3]),
            LinkAttribute::Wireless(WirelessEvent::Other(vec![0; 4])),
            LinkAttribute::OperState(State::Dormant),
            LinkAttribute::Mtu(1500),
        ]));
        let link = decode_link(&bytes).unwrap();
        assert_eq!(link.index, 7);
        assert_eq!(link.name, "wlan0");
        assert!(link.admin_up);
        assert!(link.lower_up);
        assert_eq!(link.address, Some("02:00:00:00:00:01".parse().unwrap()));
        assert_eq!(link.permanent, Some("3c:22:fb:01:02:03".parse().unwrap()));
        assert_eq!(
            link.permanent_source,
            Some(super::super::PermanentSource::Netlink)
        );
        assert!(link.wireless);
        assert_eq!(link.kind(), "wireless");
        assert_eq!(link.operstate, OperState::Dormant);
    }

    #[test]
    fn decode_link_treats_zero_addresses_as_unknown() {
        let bytes = encode(&message(vec![
            LinkAttribute::IfName(String::from("eth0")),
            LinkAttribute::Address(vec![0; 6]),
            LinkAttribute::PermAddress(vec![0; 6]),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ]));
        let link = decode_link(&bytes).unwrap();
        assert_eq!(link.address, None);
        assert_eq!(link.permanent, None);
        assert_eq!(link.permanent_source, None);
        assert_eq!(link.info_kind.as_deref(), Some("veth"));
    }

    /// Builds one `struct nlmsghdr` with `payload` after it, padded to 4 bytes.
    fn raw_message(message_type: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let length = (NLMSG_HEADER_LEN + payload.len()) as u32;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&length.to_ne_bytes());
        bytes.extend_from_slice(&message_type.to_ne_bytes());
        bytes.extend_from_slice(&NLM_F_ACK.to_ne_bytes());
        bytes.extend_from_slice(&sequence.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        bytes
    }

    #[test]
    fn split_datagram_skips_padding() {
        let mut datagram = raw_message(RTM_NEWLINK, 7, &[1, 2, 3, 4, 5]);
        datagram.extend(raw_message(NLMSG_DONE, 8, &[]));

        let headers: Vec<MessageHeader> = split_datagram(&datagram, Operation::ListLinks)
            .collect::<Result<_, _>>()
            .unwrap();

        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].message_type, RTM_NEWLINK);
        assert_eq!(headers[0].flags, NLM_F_ACK);
        assert_eq!(headers[0].sequence, 7);
        assert_eq!(headers[0].length, NLMSG_HEADER_LEN + 5);
        assert_eq!(&datagram[headers[0].payload.clone()], &[1, 2, 3, 4, 5]);
        assert_eq!(headers[1].message_type, NLMSG_DONE);
        assert_eq!(headers[1].sequence, 8);
        assert!(headers[1].payload.is_empty());
    }

    #[test]
    fn split_datagram_rejects_length_past_end() {
        let mut datagram = raw_message(RTM_NEWLINK, 1, &[0; 4]);
        datagram[0..4].copy_from_slice(&64u32.to_ne_bytes());

        let results: Vec<_> = split_datagram(&datagram, Operation::MonitorLinks).collect();

        assert_eq!(results.len(), 1);
        let Err(LinkError::Protocol { detail, .. }) = &results[0] else {
            panic!(
                "expected a protocol error, got {:?}",
                results[0].as_ref().err()
            );
        };
        assert_eq!(detail, "invalid message length 64");
    }

    #[test]
    fn decode_link_rejects_truncated_message() {
        let bytes = encode(&message(vec![LinkAttribute::IfName(String::from("eth0"))]));
        assert!(decode_link(&bytes[..10]).is_err());
    }

    #[test]
    fn overflowing_receive_buffer_is_no_buffers() {
        let Some(ns) = TestNetns::create("overflowing_receive_buffer_is_no_buffers") else {
            return;
        };
        ns.ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ]);
        let mut rtnl = ns.netns().run_inside(Rtnl::open).unwrap().unwrap();
        let index = rtnl
            .links()
            .unwrap()
            .into_iter()
            .find(|link| link.name == "veth0")
            .unwrap()
            .index;

        // The kernel's minimum receive buffer holds only a few acknowledgements, so most of a
        // 64-request window is dropped and the socket reports ENOBUFS.
        rtnl.set_receive_buffer(0).unwrap();
        let requests: Vec<Request> = (0..BATCH_WINDOW)
            .map(|i| Request::SetAdminState {
                index,
                up: i % 2 == 0,
            })
            .collect();
        let err = rtnl.execute(&requests).unwrap_err();
        assert!(matches!(err, LinkError::NoBuffers { .. }), "{err}");
        assert!(err.to_string().contains("ENOBUFS"), "{err}");
    }

    #[test]
    fn batch_reports_each_result_in_order() {
        let Some(ns) = TestNetns::create("batch_reports_each_result_in_order") else {
            return;
        };
        ns.ip(&[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
        ]);
        let mut rtnl = ns.netns().run_inside(Rtnl::open).unwrap().unwrap();
        let index = rtnl
            .links()
            .unwrap()
            .into_iter()
            .find(|link| link.name == "veth0")
            .unwrap()
            .index;
        let requests = [
            Request::SetAddress {
                index,
                address: "02:00:00:00:00:07".parse().unwrap(),
            },
            Request::SetAddress {
                index: 9999,
                address: "02:00:00:00:00:08".parse().unwrap(),
            },
            Request::SetAdminState { index, up: true },
        ];
        let results = rtnl.execute(&requests).unwrap();
        assert_eq!(results, [Ok(()), Err(Errno(libc::ENODEV)), Ok(())]);
        let link = rtnl.link(index).unwrap().unwrap();
        assert_eq!(link.address, Some("02:00:00:00:00:07".parse().unwrap()));
        assert!(link.admin_up);
        assert_eq!(rtnl.link(9999).unwrap(), None);
    }
}
