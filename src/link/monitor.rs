//! Link notifications from a chosen network namespace, for the daemon's event loop.
//!
//! The kernel announces every new, changed and removed link on the `RTNLGRP_LINK` multicast
//! group. [`LinkMonitor`] is a non-blocking socket on that group, opened inside the namespace
//! the way [`super::LinkHandle`] opens its own. It only receives and decodes; it reads no
//! ethtool or sysfs facts and changes nothing.

use std::os::fd::{AsRawFd, RawFd};

use super::error::{LinkError, Operation};
use super::netns::Netns;
use super::rtnl::{LinkEvent, LinkEvents};

/// A subscription to link notifications in one namespace.
pub struct LinkMonitor {
    events: LinkEvents,
}

impl LinkMonitor {
    /// Subscribes inside `netns`. Every change after this call is either delivered or, when the
    /// kernel had to drop notifications, reported as [`LinkError::NoBuffers`].
    pub fn open(netns: &Netns) -> Result<LinkMonitor, LinkError> {
        let events = netns
            .run_inside(LinkEvents::open)?
            .map_err(|error| LinkError::Socket {
                operation: Operation::MonitorLinks,
                error,
            })?;
        Ok(LinkMonitor { events })
    }

    /// Reads the notifications of one datagram without blocking; `Ok(None)` when none is
    /// queued. [`LinkError::NoBuffers`] means notifications were lost and every link must be
    /// read again.
    pub fn receive(&mut self) -> Result<Option<Vec<LinkEvent>>, LinkError> {
        self.events.receive()
    }
}

#[cfg(test)]
impl LinkMonitor {
    /// Shrinks the receive buffer, so that tests can make the kernel drop notifications.
    pub(crate) fn set_receive_buffer(&self, bytes: usize) {
        self.events.set_receive_buffer(bytes).unwrap();
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::link::testns::TestNetns;

    /// Waits up to two seconds for the notifications that satisfy `done`.
    fn collect(monitor: &mut LinkMonitor, done: impl Fn(&[LinkEvent]) -> bool) -> Vec<LinkEvent> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut events = Vec::new();
        while !done(&events) && Instant::now() < deadline {
            match monitor.receive().unwrap() {
                Some(batch) => events.extend(batch),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        events
    }

    #[test]
    fn monitor_reports_new_and_removed_links() {
        let Some(ns) = TestNetns::create("monitor_reports_new_and_removed_links") else {
            return;
        };
        let mut monitor = LinkMonitor::open(&ns.netns()).unwrap();
        assert!(monitor.receive().unwrap().is_none(), "no notification yet");

        ns.ip(&[
            "link", "add", "mon0", "type", "veth", "peer", "name", "mon1",
        ]);
        let created = collect(&mut monitor, |events| {
            events
                .iter()
                .any(|event| matches!(event, LinkEvent::New(link) if link.name == "mon0"))
        });
        let link = created
            .iter()
            .find_map(|event| match event {
                LinkEvent::New(link) if link.name == "mon0" => Some(link.clone()),
                _ => None,
            })
            .expect("a notification for mon0");
        assert!(!link.admin_up);
        assert!(link.address.is_some());
        assert_eq!(link.info_kind.as_deref(), Some("veth"));

        ns.ip(&["link", "set", "mon0", "up"]);
        let raised = collect(&mut monitor, |events| {
            events.iter().any(
                |event| matches!(event, LinkEvent::New(up) if up.name == "mon0" && up.admin_up),
            )
        });
        assert!(!raised.is_empty(), "no notification for setting mon0 up");

        ns.ip(&["link", "del", "mon0"]);
        let removed = collect(&mut monitor, |events| {
            events.iter().any(
                |event| matches!(event, LinkEvent::Removed { index, .. } if *index == link.index),
            )
        });
        assert!(
            removed.iter().any(|event| matches!(
                event,
                LinkEvent::Removed { name, .. } if name == "mon0"
            )),
            "{removed:?}"
        );
    }

    #[test]
    fn overrun_is_reported_as_no_buffers() {
        let Some(ns) = TestNetns::create("overrun_is_reported_as_no_buffers") else {
            return;
        };
        let mut monitor = LinkMonitor::open(&ns.netns()).unwrap();
        // The kernel's minimum buffer holds only a couple of link notifications.
        monitor.set_receive_buffer(0);
        for number in 0..20 {
            let name = format!("ovr{number}");
            let peer = format!("ovp{number}");
            ns.ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        }

        let mut overrun = false;
        loop {
            match monitor.receive() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(LinkError::NoBuffers { operation }) => {
                    assert_eq!(operation, Operation::MonitorLinks);
                    overrun = true;
                }
                Err(err) => panic!("unexpected error: {err}"),
            }
        }
        assert!(overrun, "20 new veth pairs fitted in the minimum buffer");
        // The socket keeps working after an overrun.
        monitor.set_receive_buffer(1 << 20);
        ns.ip(&[
            "link", "add", "after", "type", "veth", "peer", "name", "afterp",
        ]);
        let events = collect(&mut monitor, |events| {
            events
                .iter()
                .any(|event| matches!(event, LinkEvent::New(link) if link.name == "after"))
        });
        assert!(!events.is_empty());
    }
}
