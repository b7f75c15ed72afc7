//! Taking chosen links down for their address change.
//!
//! [`crate::link::apply::apply`] changes an address while the link is up when the driver allows
//! it, and takes the link down and up again (restoring its IP addresses and routes) only when
//! the driver rejects the change with EBUSY. For a link found up with the address it must hide,
//! the daemon always wants the second: down, new address, up, so that the link's connection
//! starts again under the new address, as it does when a network manager activates a link.
//! [`ForcedCycle`] wraps the kernel interface and returns EBUSY for the first address change of
//! each chosen link while that link is still up, which makes `apply` run its cycle for exactly
//! those links.

use std::collections::HashSet;

use crate::link::{Errno, IpAddress, Link, LinkError, LinkOps, Request, Route};

/// A [`LinkOps`] that makes `apply` cycle the links in `indexes`.
pub struct ForcedCycle<'a> {
    inner: &'a mut dyn LinkOps,
    indexes: HashSet<u32>,
    taken_down: HashSet<u32>,
}

impl<'a> ForcedCycle<'a> {
    /// Wraps `inner`; the links in `indexes` are cycled for their change.
    pub fn new(inner: &'a mut dyn LinkOps, indexes: HashSet<u32>) -> ForcedCycle<'a> {
        ForcedCycle {
            inner,
            indexes,
            taken_down: HashSet::new(),
        }
    }

    fn intercepts(&self, request: &Request) -> bool {
        match request {
            Request::SetAddress { index, .. } => {
                self.indexes.contains(index) && !self.taken_down.contains(index)
            }
            _ => false,
        }
    }
}

impl LinkOps for ForcedCycle<'_> {
    fn netns_key(&self) -> &str {
        self.inner.netns_key()
    }

    fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        self.inner.links()
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        self.inner.link(index)
    }

    /// Sends every request the kernel should receive in one batch, in order, and returns EBUSY
    /// for the intercepted ones.
    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        let mut results: Vec<Option<Result<(), Errno>>> = vec![None; requests.len()];
        let mut forwarded = Vec::with_capacity(requests.len());
        let mut positions = Vec::with_capacity(requests.len());
        for (position, request) in requests.iter().enumerate() {
            if self.intercepts(request) {
                results[position] = Some(Err(Errno(libc::EBUSY)));
                continue;
            }
            if let Request::SetAdminState { index, up: false } = request {
                self.taken_down.insert(*index);
            }
            forwarded.push(request.clone());
            positions.push(position);
        }

        if !forwarded.is_empty() {
            let answers = self.inner.execute(&forwarded)?;
            for (position, answer) in positions.into_iter().zip(answers) {
                results[position] = Some(answer);
            }
        }
        Ok(results
            .into_iter()
            .map(|result| result.unwrap_or(Err(Errno(libc::EIO))))
            .collect())
    }

    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.inner.ip_addresses()
    }

    fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.inner.routes()
    }
}
