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

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
    State,
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
    /// The index of the link the request is about.
    pub fn index(&self) -> u32 {
        match self {
            Request::SetAddress { index, .. } | Request::SetAdminState { index, .. } => *index,
            Request::AddIp(ip) | Request::RemoveIp(ip) => ip.index,
            Request::AddRoute(route) => route.oif.unwrap_or(0),
        }
    }

    /// The operation, for error messages.
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
    /// Who installed it (`RTPROT_*`: 2 kernel, 3 boot, 4 static, 9 router advertisement).
    pub protocol: u8,
    /// The message as dumped, minus the attributes the kernel only reports.
    message: RouteMessage,
}

/// `RTPROT_KERNEL`: routes the kernel derives from addresses.
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_RA`: routes learned from IPv6 router advertisements.
pub const RTPROT_RA: u8 = 9;

impl Route {
    /// Whether this route is the same as `other`: same family, destination, gateway, output link,
    /// table and metric.
    pub fn same_as(&self, other: &Route) -> bool {
        let priority = |route: &Route| {
            route.message.attributes.iter().find_map(|attribute| match attribute {
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

    /// Lists every link in the namespace. Driver, assign type and the ethtool permanent address
    /// are left for the caller to fill in.
    pub fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        let mut request = LinkMessage::default();
        // RTEXT_FILTER_SKIP_STATS keeps each link message small: the statistics are unused.
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self.dump(RouteNetlinkMessage::GetLink(request), Operation::ListLinks)?;

        let mut links = Vec::with_capacity(replies.len());
        for reply in replies {
            if let RouteNetlinkMessage::NewLink(message) = reply {
                links.push(decode_link(&message));
            }
        }
        Ok(links)
    }

    /// Reads one link by index; `Ok(None)` when no link has that index.
    pub fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let sequence = self.send(&[RouteNetlinkMessage::GetLink(request)], NLM_F_REQUEST)?;

        loop {
            for message in self.receive(Operation::GetLink)? {
                if message.header.sequence_number != sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        return Ok(Some(decode_link(&link)));
                    }
                    NetlinkPayload::Error(error) => match error.code {
                        Some(code) if code.get().abs() == libc::ENODEV => return Ok(None),
                        Some(code) => {
                            return Err(LinkError::Request {
                                operation: Operation::GetLink,
                                errno: Errno(code.get().abs()),
                            });
                        }
                        None => {}
                    },
                    _ => {}
                }
            }
        }
    }

    /// Lists every IPv4 and IPv6 address in the namespace.
    pub fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        let request = AddressMessage::default();
        let replies = self.dump(
            RouteNetlinkMessage::GetAddress(request),
            Operation::ListIpAddresses,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(message) => decode_ip_address(&message),
                _ => None,
            })
            .collect())
    }

    /// Lists every IPv4 and IPv6 unicast route of every table.
    pub fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let replies =
                self.dump(RouteNetlinkMessage::GetRoute(request), Operation::ListRoutes)?;
            routes.extend(replies.into_iter().filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(message) => decode_route(message),
                _ => None,
            }));
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
            let first = self.send_each(&messages)?;

            let mut pending: HashMap<u32, usize> = (0..window.len())
                .map(|offset| (first.wrapping_add(offset as u32), offset))
                .collect();
            let mut window_results: Vec<Option<Result<(), Errno>>> = vec![None; window.len()];
            while !pending.is_empty() {
                for message in self.receive(operation)? {
                    let Some(offset) = pending.get(&message.header.sequence_number).copied()
                    else {
                        continue;
                    };
                    if let NetlinkPayload::Error(error) = message.payload {
                        window_results[offset] = Some(match error.code {
                            None => Ok(()),
                            Some(code) => Err(Errno(code.get().abs())),
                        });
                        pending.remove(&message.header.sequence_number);
                    }
                }
            }
            results.extend(window_results.into_iter().flatten());
        }
        Ok(results)
    }

    /// Runs a dump request and returns every message of the reply, restarting the dump when
    /// the kernel marks it as interrupted by a concurrent change.
    fn dump(
        &mut self,
        request: RouteNetlinkMessage,
        operation: Operation,
    ) -> Result<Vec<RouteNetlinkMessage>, LinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let sequence = self.send(&[request.clone()], NLM_F_REQUEST | NLM_F_DUMP)?;
            let mut replies = Vec::new();
            let mut interrupted = false;
            'reply: loop {
                for message in self.receive(operation)? {
                    if message.header.sequence_number != sequence {
                        continue;
                    }
                    if message.header.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match message.payload {
                        NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                        NetlinkPayload::Done(_) => break 'reply,
                        NetlinkPayload::Error(error) => match error.code {
                            Some(code) => {
                                return Err(LinkError::Request {
                                    operation,
                                    errno: Errno(code.get().abs()),
                                });
                            }
                            None => break 'reply,
                        },
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(replies);
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

    /// Sends one message per payload with consecutive sequence numbers, all with `flags`, and
    /// returns the first sequence number.
    fn send(&mut self, payloads: &[RouteNetlinkMessage], flags: u16) -> Result<u32, LinkError> {
        let messages: Vec<(RouteNetlinkMessage, u16)> = payloads
            .iter()
            .map(|payload| (payload.clone(), flags))
            .collect();
        self.send_each(&messages)
    }

    /// Sends every message in one datagram; the kernel processes them in order and replies to
    /// each.
    fn send_each(&mut self, messages: &[(RouteNetlinkMessage, u16)]) -> Result<u32, LinkError> {
        let first = self.sequence.wrapping_add(1);
        let mut datagram = Vec::new();
        for (payload, flags) in messages {
            self.sequence = self.sequence.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = *flags;
            header.sequence_number = self.sequence;
            let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload.clone()));
            message.finalize();

            let start = datagram.len();
            // Messages in one datagram start on 4-byte boundaries (NLMSG_ALIGN).
            let aligned = message.buffer_len().next_multiple_of(4);
            datagram.resize(start + aligned, 0);
            message.serialize(&mut datagram[start..start + message.buffer_len()]);
            log::trace!("netlink send seq {}: {:?}", self.sequence, payload);
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

    /// Reads one datagram and decodes every message in it.
    fn receive(
        &mut self,
        operation: Operation,
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, LinkError> {
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

        let mut messages = Vec::new();
        let mut offset = 0;
        while offset + 16 <= length {
            let bytes = &self.buffer[offset..length];
            let message_length =
                u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if message_length < 16 || message_length > bytes.len() {
                return Err(LinkError::Protocol {
                    operation,
                    detail: format!("invalid message length {message_length}"),
                });
            }
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                &bytes[..message_length],
            )
            .map_err(|err| LinkError::Protocol {
                operation,
                detail: err.to_string(),
            })?;
            log::trace!("netlink receive: {message:?}");
            messages.push(message);
            offset += message_length.next_multiple_of(4);
        }
        Ok(messages)
    }
}

fn socket_error(operation: Operation, source: io::Error) -> LinkError {
    if source.raw_os_error() == Some(libc::ENOBUFS) {
        LinkError::NoBuffers { operation }
    } else {
        LinkError::Socket { operation, source }
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

fn decode_link(message: &LinkMessage) -> Link {
    let flags = message.header.flags;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        info_kind: None,
        wireless: false,
        link_type: u16::from(message.header.link_layer_type),
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
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(bytes) => link.address = decode_mac(bytes),
            LinkAttribute::PermAddress(bytes) => {
                link.permanent = decode_mac(bytes);
                if link.permanent.is_some() {
                    link.permanent_source = Some(super::PermanentSource::Netlink);
                }
            }
            LinkAttribute::OperState(state) => link.operstate = decode_operstate(*state),
            LinkAttribute::Link(parent) => link.parent = Some(*parent),
            LinkAttribute::Wireless(_) => link.wireless = true,
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
                                link.ipv6_addr_gen_mode = Some(u8::from(mode));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    link
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
    // The header holds the low 8 bits; IFA_FLAGS carries all 32.
    message.header.flags = AddressHeaderFlags::from_bits_retain(flags as u8);

    match ip.address {
        IpAddr::V4(_) => {
            message
                .attributes
                .push(AddressAttribute::Local(ip.address));
            message
                .attributes
                .push(AddressAttribute::Address(ip.peer.unwrap_or(ip.address)));
            if let Some(IpAddr::V4(broadcast)) = ip.broadcast {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(broadcast));
            }
            if let Some(label) = &ip.label {
                message.attributes.push(AddressAttribute::Label(label.clone()));
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
        .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(flags)));
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

/// The receive buffer the notification socket asks for with `SO_RCVBUFFORCE`, which ignores
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
            Err(source) => return Err(socket_error(operation, source)),
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
        let mut offset = 0;
        while offset + 16 <= length {
            let bytes = &self.buffer[offset..length];
            let message_length =
                u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if message_length < 16 || message_length > bytes.len() {
                return Err(LinkError::Protocol {
                    operation,
                    detail: format!("invalid message length {message_length}"),
                });
            }
            let message =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..message_length])
                    .map_err(|err| LinkError::Protocol {
                        operation,
                        detail: err.to_string(),
                    })?;
            log::trace!("netlink notification: {message:?}");
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    events.push(LinkEvent::New(decode_link(&link)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    let link = decode_link(&link);
                    events.push(LinkEvent::Removed {
                        index: link.index,
                        name: link.name,
                    });
                }
                _ => {}
            }
            offset += message_length.next_multiple_of(4);
        }
        Ok(Some(events))
    }
}
