//! Limiting a pass to the links it is about.
//!
//! [`crate::link::apply::apply`] reads the whole link list before and after its changes, which
//! costs time in proportion to the number of links. When the daemon changes one new link on a
//! host with a thousand, that read delays the change and widens the window in which another
//! program can raise the link with its hardware address. [`Scoped`] answers the link list with
//! only the links of the pass, each read by index, so a small pass costs the same whatever the
//! number of other links.

use crate::link::{Errno, IpAddress, Link, LinkError, LinkOps, Request, Route};

/// A [`LinkOps`] whose link list contains only the links in `indexes`.
pub struct Scoped<'a> {
    inner: &'a mut dyn LinkOps,
    indexes: Vec<u32>,
}

impl<'a> Scoped<'a> {
    /// Wraps `inner`, listing only the links in `indexes`.
    pub fn new(inner: &'a mut dyn LinkOps, indexes: Vec<u32>) -> Scoped<'a> {
        Scoped { inner, indexes }
    }
}

impl LinkOps for Scoped<'_> {
    fn netns_key(&self) -> &str {
        self.inner.netns_key()
    }

    /// Reads each link of the scope; a link that is gone is left out, as a dump would.
    fn links(&mut self) -> Result<Vec<Link>, LinkError> {
        let mut links = Vec::with_capacity(self.indexes.len());
        for &index in &self.indexes {
            if let Some(link) = self.inner.link(index)? {
                links.push(link);
            }
        }
        Ok(links)
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, LinkError> {
        self.inner.link(index)
    }

    fn execute(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Errno>>, LinkError> {
        self.inner.execute(requests)
    }

    fn ip_addresses(&mut self) -> Result<Vec<IpAddress>, LinkError> {
        self.inner.ip_addresses()
    }

    fn routes(&mut self) -> Result<Vec<Route>, LinkError> {
        self.inner.routes()
    }
}
