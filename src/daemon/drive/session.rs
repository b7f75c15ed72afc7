//! One driver's work on one supplicant: the choice of a network, the connection, and what
//! follows it, in the order the parent module describes. The thread around it, and the
//! decision to drive a link at all, belong to [`super`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{AddressPolicy, Candidate, Recorded, StopSignal};
use crate::addr::MacAddr;
use crate::config::ClonedMac;
use crate::daemon::target::Keys;
use crate::generate::stable_id::escape_ssid;
use crate::link::LinkError;
use crate::rng::OsRandom;
use crate::wifi::address::{AddressInputs, association_address};
use crate::wifi::ctrl::{CtrlError, Event};
use crate::wifi::drive::{self, ConnectPlan, DriveError, Radio};
use crate::wifi::supplicant::{
    NetworkEntry, ScanResult, Status, Supplicant, SupplicantOps, decode_network_ssid,
};

/// Maximum time from `SELECT_NETWORK` to `CTRL-EVENT-CONNECTED`, as for `macveil wifi connect`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum time for the supplicant to regain the network by itself, with the same address,
/// before the driver chooses again. An access point that restarts is usually back sooner.
pub const REGAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum wait for `CTRL-EVENT-SCAN-RESULTS` after `SCAN`. A scan of every 2.4 and 5 GHz
/// channel takes a few seconds.
const SCAN_TIMEOUT: Duration = Duration::from_secs(15);

/// The first and the last wait before scanning again while no candidate is in range.
const FIRST_RESCAN: Duration = Duration::from_secs(5);
const LAST_RESCAN: Duration = Duration::from_secs(60);

/// The first and the last wait before a failed connection is tried again.
const FIRST_RETRY: Duration = Duration::from_secs(10);
const LAST_RETRY: Duration = Duration::from_secs(300);

/// The reason a driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The daemon stopped it (a reload, a policy change, SIGTERM).
    Stopped,
    /// The supplicant terminated, or its socket failed.
    SupplicantGone,
    /// The supplicant changes the interface address itself; the fix was logged.
    Refused,
}

/// The outcome of following a connection.
enum Follow {
    /// The network was not regained in time.
    ChooseAgain,
    /// The driver ends.
    End(End),
}

/// The driving logic for one supplicant, apart from the thread, so that tests can run it.
pub(super) struct Driver {
    pub(super) ifname: String,
    pub(super) hidden: Option<MacAddr>,
    pub(super) policy: AddressPolicy,
    /// Whether the supplicant's scans use random addresses. Without them, the driver gives
    /// the link a fresh random address before it scans to choose again.
    pub(super) private_scans: bool,
    pub(super) boot_id: Option<String>,
    pub(super) keys: Keys,
    pub(super) recorded: Recorded,
    /// The network that was last lost or reported not found, left out of the next choice.
    pub(super) not_found: Option<u32>,
    /// The state folder and the supplicant's socket inode under which the candidates are saved
    /// for a daemon that restarts. `None` keeps them in memory only.
    pub(super) saved: Option<(PathBuf, u64)>,
    pub(super) stop: Arc<StopSignal>,
    /// [`REGAIN_TIMEOUT`], shorter in tests.
    pub(super) regain_timeout: Duration,
}

impl Driver {
    pub(super) fn run(
        &mut self,
        radio: &mut dyn Radio,
        supplicant: &mut Supplicant,
        exited: Option<&OwnedFd>,
    ) -> End {
        let mut ops = Stoppable {
            supplicant,
            stop: Arc::clone(&self.stop),
            exited,
            attached: false,
        };
        let mut candidates = match self.prepare(&mut ops) {
            Ok(candidates) => candidates,
            Err(end) => return end,
        };

        let mut rescan = Backoff::new(FIRST_RESCAN, LAST_RESCAN);
        let mut retry = Backoff::new(FIRST_RETRY, LAST_RETRY);
        // A network whose connection failed before the supplicant tried it (the address could
        // not be set, for example) is tried again without a scan. The link is down then, and
        // bringing it up to scan would send with an address chosen for another network.
        let mut pending: Option<Candidate> = None;
        // Set when the link carries the address of a network that was lost, which scans that
        // do not use random addresses would show to the networks in range.
        let mut needs_fresh_address = false;
        loop {
            if needs_fresh_address {
                match self.give_fresh_address(radio, &mut ops) {
                    Ok(()) => needs_fresh_address = false,
                    Err(err) => {
                        if let DriveError::Control { source, .. } = &err
                            && let Some(end) = self.ended(source)
                        {
                            return end;
                        }
                        let wait = retry.next();
                        log::error!(
                            "{err}; the link keeps no address of a lost network, and the daemon \
                             tries again in {} s",
                            wait.as_secs()
                        );
                        if let Some(end) = self.pause(&mut ops, wait) {
                            return end;
                        }
                        continue;
                    }
                }
            }

            if pending.is_none()
                && let Err(err) = self.refresh_candidates(&mut ops, &mut candidates)
                && let Some(end) = self.ended(&err)
            {
                return end;
            }
            let chosen = match pending.take() {
                Some(chosen) => chosen,
                None => match self.choose(&mut ops, &candidates) {
                    Ok(Some(chosen)) => {
                        rescan.reset();
                        chosen
                    }
                    Ok(None) => {
                        // Each scan round without random addresses gets an address of its
                        // own, so that a network that comes into range later does not hear
                        // the one that the networks in range now heard.
                        needs_fresh_address = !self.private_scans;
                        let wait = rescan.next();
                        log::info!(
                            "{}: none of the networks {} is in range; scanning again in {} s",
                            self.ifname,
                            list_ssids(&candidates),
                            wait.as_secs()
                        );
                        if let Some(end) = self.pause(&mut ops, wait) {
                            return end;
                        }
                        continue;
                    }
                    Err(err) => match self.ended(&err) {
                        Some(end) => return end,
                        None => {
                            let wait = retry.next();
                            log::error!(
                                "{}: choosing a network failed: {err}; trying again in {} s",
                                self.ifname,
                                wait.as_secs()
                            );
                            if let Some(end) = self.pause(&mut ops, wait) {
                                return end;
                            }
                            continue;
                        }
                    },
                },
            };

            let ssid = escape_ssid(&chosen.ssid);
            let address = match self.address_for(radio, &chosen) {
                Ok(address) => address,
                Err(reason) => {
                    let wait = retry.next();
                    log::error!(
                        "{}: no address for network '{ssid}': {reason}; nothing was changed, and \
                         the daemon tries again in {} s",
                        self.ifname,
                        wait.as_secs()
                    );
                    pending = Some(chosen);
                    if let Some(end) = self.pause(&mut ops, wait) {
                        return end;
                    }
                    continue;
                }
            };
            let plan = ConnectPlan {
                network_id: chosen.id,
                ssid: chosen.ssid.clone(),
                address,
                timeout: CONNECT_TIMEOUT,
                stop_at_not_found: true,
            };
            log::debug!(
                "{}: connecting to '{ssid}' (network {}, policy {})",
                self.ifname,
                chosen.id,
                self.policy.cloned
            );

            let lost_since = match drive::connect(radio, &mut ops, &plan) {
                Ok(report) => {
                    log::info!(
                        "{}: connected to '{ssid}' with {} (policy {})",
                        self.ifname,
                        report.address,
                        self.policy.cloned
                    );
                    retry.reset();
                    None
                }
                Err(DriveError::NotConnected { last_event, .. })
                    if last_event
                        .as_deref()
                        .is_some_and(|event| event.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND")) =>
                {
                    // The scan results that showed the network were older than the
                    // supplicant's last scan: it is gone. Choose again without it.
                    log::info!(
                        "{}: '{ssid}' is no longer in range; choosing a network again",
                        self.ifname
                    );
                    if let Err(err) = ops.disconnect()
                        && let Some(end) = self.ended(&err)
                    {
                        return end;
                    }
                    self.not_found = Some(chosen.id);
                    needs_fresh_address = !self.private_scans;
                    continue;
                }
                Err(err @ DriveError::NotConnected { .. }) => {
                    log::warn!("{err}");
                    Some(Instant::now())
                }
                Err(err) => {
                    if let DriveError::Control { source, .. } = &err
                        && let Some(end) = self.ended(source)
                    {
                        return end;
                    }
                    let wait = retry.next();
                    log::error!("{err}; the daemon tries again in {} s", wait.as_secs());
                    // The radio and the supplicant are left as the error describes. A refusal
                    // means that the supplicant's settings changed, and a restart of the
                    // supplicant starts a new driver that checks them again.
                    if matches!(err, DriveError::SupplicantRandomizes { .. }) {
                        return End::Refused;
                    }
                    pending = Some(chosen);
                    if let Some(end) = self.pause(&mut ops, wait) {
                        return end;
                    }
                    continue;
                }
            };

            match self.follow(&mut ops, &chosen, lost_since) {
                Follow::End(end) => return end,
                Follow::ChooseAgain => {
                    // The network was just lost, and the next scan's results may still list
                    // it; it is left out of that one choice.
                    self.not_found = Some(chosen.id);
                    if let Err(err) = ops.disconnect()
                        && let Some(end) = self.ended(&err)
                    {
                        return end;
                    }
                    needs_fresh_address = !self.private_scans;
                }
            }
        }
    }

    /// Subscribes to events, records the candidates, checks the address settings and
    /// disconnects.
    fn prepare(&mut self, ops: &mut Stoppable<'_>) -> Result<Vec<Candidate>, End> {
        let ifname = self.ifname.clone();
        let fail = |driver: &Driver, step: &str, err: CtrlError| {
            if let Some(end) = driver.ended(&err) {
                return end;
            }
            log::error!(
                "{ifname}: {step} failed: {err}; the daemon does not drive its connections until \
                 wpa_supplicant restarts or the daemon reloads (SIGHUP)"
            );
            End::Refused
        };

        ops.attach()
            .map_err(|err| fail(self, "subscribing to wpa_supplicant's events", err))?;

        let recorded = self.recorded_candidates();
        let candidates = match recorded {
            Some(candidates) => candidates,
            None => {
                let networks = ops
                    .list_networks()
                    .map_err(|err| fail(self, "listing wpa_supplicant's networks", err))?;
                let candidates = read_candidates(ops, &networks)
                    .map_err(|err| fail(self, "reading the networks' settings", err))?;
                if !candidates.is_empty() {
                    self.record_candidates(&candidates);
                }
                candidates
            }
        };
        let candidates = if candidates.is_empty() {
            log::info!(
                "{ifname}: wpa_supplicant has no enabled network yet; the daemon takes over as \
                 soon as one is enabled"
            );
            self.wait_for_candidates(ops)?
        } else {
            candidates
        };

        for candidate in &candidates {
            match drive::check_supplicant_keeps_address(&ifname, ops, candidate.id) {
                Ok(()) => {}
                Err(DriveError::Control { source, .. }) => {
                    return Err(fail(self, "reading the address settings", source));
                }
                Err(err) => {
                    log::error!(
                        "{err}. The daemon does not choose its networks, so wpa_supplicant \
                         connects on its own with the link's address"
                    );
                    return Err(End::Refused);
                }
            }
        }

        ops.disconnect()
            .map_err(|err| fail(self, "disconnecting wpa_supplicant", err))?;
        log::info!(
            "{ifname}: the daemon chooses among the networks {} (policy {})",
            list_ssids(&candidates),
            self.policy.cloned
        );
        Ok(candidates)
    }

    fn recorded_candidates(&self) -> Option<Vec<Candidate>> {
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn record_candidates(&self, candidates: &[Candidate]) {
        *self
            .recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(candidates.to_vec());
        if let Some((state_dir, socket)) = &self.saved
            && let Err(err) = super::save_candidates(state_dir, &self.ifname, *socket, candidates)
        {
            log::warn!(
                "{}: cannot save the candidate networks: {err}; a restarted daemon chooses only \
                 among the networks the supplicant still has enabled",
                self.ifname
            );
        }
    }

    /// Waits until the supplicant has an enabled network. Enabling or adding one makes the
    /// supplicant scan before it connects, so the list is read again at each scan start. The
    /// daemon then disconnects it before its own attempt in most cases. An attempt that wins
    /// the race carries the link's fresh address, which no other network has seen.
    fn wait_for_candidates(&mut self, ops: &mut Stoppable<'_>) -> Result<Vec<Candidate>, End> {
        loop {
            let event = match ops.wait_event(None) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(err) => return Err(self.ended(&err).unwrap_or(End::SupplicantGone)),
            };
            match event.name() {
                "CTRL-EVENT-TERMINATING" => return Err(End::SupplicantGone),
                "CTRL-EVENT-SCAN-STARTED" | "CTRL-EVENT-NETWORK-ADDED" | "CTRL-EVENT-CONNECTED" => {
                }
                _ => continue,
            }
            let candidates = ops
                .list_networks()
                .and_then(|networks| read_candidates(ops, &networks))
                .map_err(|err| self.ended(&err).unwrap_or(End::SupplicantGone))?;
            if !candidates.is_empty() {
                self.record_candidates(&candidates);
                return Ok(candidates);
            }
        }
    }

    /// Adds to `candidates` the networks enabled since they were recorded, for example with
    /// `wpa_cli enable_network`. The networks that `SELECT_NETWORK` disabled stay candidates.
    fn refresh_candidates(
        &self,
        ops: &mut Stoppable<'_>,
        candidates: &mut Vec<Candidate>,
    ) -> Result<(), CtrlError> {
        let networks = ops.list_networks()?;
        let added: Vec<NetworkEntry> = networks
            .into_iter()
            .filter(|network| !candidates.iter().any(|known| known.id == network.id))
            .collect();
        let found = read_candidates(ops, &added)?;
        if !found.is_empty() {
            log::info!(
                "{}: also choosing among {}, enabled since",
                self.ifname,
                list_ssids(&found)
            );
            candidates.extend(found);
            self.record_candidates(candidates);
        }
        Ok(())
    }

    /// Returns whether the supplicant has an enabled network besides `chosen`, which it could
    /// move to on its own with `chosen`'s address.
    fn other_enabled(&self, ops: &mut Stoppable<'_>, chosen: &Candidate) -> bool {
        ops.list_networks().is_ok_and(|networks| {
            networks.iter().any(|network| {
                network.id != chosen.id && !network.is_disabled() && !network.is_p2p_persistent()
            })
        })
    }

    /// Scans and returns the candidate to connect to, if one is in range.
    ///
    fn choose(
        &mut self,
        ops: &mut Stoppable<'_>,
        candidates: &[Candidate],
    ) -> Result<Option<Candidate>, CtrlError> {
        match ops.supplicant.scan_fresh() {
            Ok(()) => {}
            // A scan is running already (`FAIL-BUSY`); its results serve as well.
            Err(CtrlError::Rejected { reply, .. }) if reply.contains("BUSY") => {}
            Err(err) => return Err(err),
        }

        let deadline = Instant::now() + SCAN_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                log::warn!(
                    "{}: no scan results within {} s; reading the last ones",
                    self.ifname,
                    SCAN_TIMEOUT.as_secs()
                );
                break;
            }
            match ops.next_event(remaining)? {
                Some(event) if event.name() == "CTRL-EVENT-SCAN-RESULTS" => break,
                Some(event) if event.name() == "CTRL-EVENT-TERMINATING" => {
                    return Err(terminated(&self.ifname));
                }
                _ => {}
            }
        }

        let results = ops.supplicant.scan_results()?;
        // A network just lost or reported not found is left out of this one choice, because
        // the results may still list it from an earlier scan.
        // With no other candidate in range it is chosen all the same: its address then only
        // reaches networks that are not candidates.
        let excluded = self.not_found.take();
        let remaining: Vec<Candidate> = candidates
            .iter()
            .filter(|candidate| Some(candidate.id) != excluded)
            .cloned()
            .collect();
        Ok(pick(&remaining, &results)
            .or_else(|| pick(candidates, &results))
            .cloned())
    }

    /// Gives the link a fresh random address while it is down, for scans that carry the
    /// interface address. The supplicant is disconnected, so it sends nothing meanwhile. On
    /// failure the link stays down.
    fn give_fresh_address(
        &mut self,
        radio: &mut dyn Radio,
        ops: &mut Stoppable<'_>,
    ) -> Result<(), DriveError> {
        let link_error = |source| DriveError::Link {
            ifname: self.ifname.clone(),
            source,
        };
        let current = radio.read().map_err(link_error)?.address;
        let avoid: Vec<MacAddr> = current.into_iter().chain(self.hidden).collect();
        let initial = self.hidden.or(current);
        let address =
            crate::generate::random(&mut OsRandom, self.policy.mask.as_ref(), initial, &avoid)
                .map_err(|err| DriveError::Link {
                    ifname: self.ifname.clone(),
                    source: LinkError::Protocol {
                        operation: crate::link::Operation::SetAddress,
                        detail: format!("no random address: {err}"),
                    },
                })?;

        radio.set_admin_state(false).map_err(link_error)?;
        if let Err(source) = radio.set_address(address) {
            return Err(DriveError::SetAddress {
                ifname: self.ifname.clone(),
                address,
                source,
            });
        }
        radio.set_admin_state(true).map_err(link_error)?;
        drive::wait_until_ready(&self.ifname, ops, address)?;
        log::info!(
            "{}: address set to {address} for the scans, because they do not use random \
             addresses",
            self.ifname
        );
        Ok(())
    }

    /// Derives the address of a connection to `chosen`, as `macveil wifi connect` does.
    fn address_for(
        &mut self,
        radio: &mut dyn Radio,
        chosen: &Candidate,
    ) -> Result<Option<MacAddr>, String> {
        let current = radio.read().map_err(|err| err.to_string())?.address;
        let host_id = match self.policy.cloned {
            ClonedMac::Stable | ClonedMac::StableSsid => Some(self.keys.host_id()?),
            _ => None,
        };
        let inputs = AddressInputs {
            ifname: &self.ifname,
            hidden: self.hidden,
            current,
            ssid: &chosen.ssid,
            stable_id: self.policy.stable_id.as_deref(),
            connection: None,
            boot_id: self.boot_id.as_deref(),
            mask: self.policy.mask.as_ref(),
        };
        association_address(self.policy.cloned, &inputs, host_id, &mut OsRandom)
            .map_err(|err| err.to_string())
    }

    /// Follows the connection until it is lost for longer than [`REGAIN_TIMEOUT`] or the
    /// driver ends. `lost_since` is set when the connection is not complete yet.
    fn follow(
        &mut self,
        ops: &mut Stoppable<'_>,
        chosen: &Candidate,
        mut lost_since: Option<Instant>,
    ) -> Follow {
        let ssid = escape_ssid(&chosen.ssid);
        loop {
            if let Some(since) = lost_since
                && since.elapsed() >= self.regain_timeout
            {
                log::info!(
                    "{}: '{ssid}' was not regained within {} s; choosing a network again",
                    self.ifname,
                    self.regain_timeout.as_secs()
                );
                return Follow::ChooseAgain;
            }

            // While the connection holds, the wait has no limit: the thread sleeps until the
            // supplicant reports something or the daemon stops the driver.
            let timeout =
                lost_since.map(|since| self.regain_timeout.saturating_sub(since.elapsed()));
            let event = match ops.wait_event(timeout) {
                Ok(event) => event,
                Err(err) => return Follow::End(self.ended(&err).unwrap_or(End::SupplicantGone)),
            };
            let Some(event) = event else {
                continue;
            };

            match event.name() {
                "CTRL-EVENT-TERMINATING" => return Follow::End(End::SupplicantGone),
                "CTRL-EVENT-DISCONNECTED" if lost_since.is_none() && !self.private_scans => {
                    // The supplicant's own scans to regain the network would carry its address
                    // to every network in range.
                    log::info!(
                        "{}: lost '{ssid}'; choosing a network again at once, because scans do \
                         not use random addresses",
                        self.ifname
                    );
                    return Follow::ChooseAgain;
                }
                "CTRL-EVENT-DISCONNECTED"
                    if lost_since.is_none() && self.other_enabled(ops, chosen) =>
                {
                    // A network enabled since the connection (wpa_cli enable_network) is one
                    // the supplicant could move to on its own with this network's address.
                    log::info!(
                        "{}: lost '{ssid}' while another network is enabled; choosing a network \
                         again at once",
                        self.ifname
                    );
                    return Follow::ChooseAgain;
                }
                "CTRL-EVENT-SCAN-STARTED"
                    if lost_since.is_some() && self.other_enabled(ops, chosen) =>
                {
                    // Enabling a network makes the supplicant scan, and it would join that
                    // network with this network's address.
                    log::info!(
                        "{}: another network was enabled while '{ssid}' is lost; choosing a \
                         network again at once",
                        self.ifname
                    );
                    return Follow::ChooseAgain;
                }
                "CTRL-EVENT-DISCONNECTED" if lost_since.is_none() => {
                    log::info!(
                        "{}: lost '{ssid}'; wpa_supplicant may regain it with the same address \
                         within {} s",
                        self.ifname,
                        self.regain_timeout.as_secs()
                    );
                    lost_since = Some(Instant::now());
                }
                "CTRL-EVENT-CONNECTED" => {
                    let selected = chosen.id.to_string();
                    if event.field("id").is_none_or(|id| id == selected) {
                        if lost_since.take().is_some() {
                            log::info!(
                                "{}: connected to '{ssid}' again with the same address",
                                self.ifname
                            );
                        }
                    } else {
                        log::warn!(
                            "{}: wpa_supplicant connected to another network than '{ssid}' ({}); \
                             choosing a network again",
                            self.ifname,
                            event.text
                        );
                        return Follow::ChooseAgain;
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits `duration`, reading events. Returns how the driver ends, if it does meanwhile.
    fn pause(&self, ops: &mut Stoppable<'_>, duration: Duration) -> Option<End> {
        let deadline = Instant::now() + duration;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            match ops.next_event(remaining) {
                Ok(Some(event)) if event.name() == "CTRL-EVENT-TERMINATING" => {
                    return Some(End::SupplicantGone);
                }
                Ok(_) => {}
                Err(err) => return Some(self.ended(&err).unwrap_or(End::SupplicantGone)),
            }
        }
    }

    /// Returns how the driver ends after `err`: stopped, or the supplicant is gone. `None` for
    /// an error worth a retry, such as a reply that timed out.
    fn ended(&self, err: &CtrlError) -> Option<End> {
        if self.stop.is_requested() {
            return Some(End::Stopped);
        }
        match err {
            CtrlError::Io { .. } | CtrlError::Connect { .. } => Some(End::SupplicantGone),
            _ => None,
        }
    }
}

/// Reads the enabled networks' SSIDs and priorities.
fn read_candidates(
    ops: &mut dyn SupplicantOps,
    networks: &[NetworkEntry],
) -> Result<Vec<Candidate>, CtrlError> {
    let mut candidates = Vec::new();
    for network in networks {
        if network.is_disabled() || network.is_p2p_persistent() {
            continue;
        }
        // LIST_NETWORKS shows the SSID escaped and shortened; GET_NETWORK gives its bytes.
        let reply = ops.get_network(network.id, "ssid")?;
        let ssid = decode_network_ssid(&reply).unwrap_or_else(|| network.ssid.clone());
        let priority = ops
            .get_network(network.id, "priority")?
            .trim()
            .parse()
            .unwrap_or(0);
        // Without key_mgmt the network matches an access point of any security.
        let key_mgmt = ops
            .get_network(network.id, "key_mgmt")
            .map(|reply| reply.trim().to_string())
            .unwrap_or_default();
        candidates.push(Candidate {
            id: network.id,
            ssid,
            priority,
            key_mgmt,
        });
    }
    Ok(candidates)
}

/// Returns the candidate in range with the highest priority, then the strongest signal. Ties
/// go to the lower network id, the order of the supplicant's configuration.
pub(super) fn pick<'a>(
    candidates: &'a [Candidate],
    results: &[ScanResult],
) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter_map(|candidate| {
            results
                .iter()
                .filter(|result| {
                    result.ssid == candidate.ssid
                        && security_matches(&candidate.key_mgmt, &result.flags)
                })
                .map(|result| result.signal)
                .max()
                .map(|signal| (candidate, signal))
        })
        .max_by(|(a, a_signal), (b, b_signal)| {
            a.priority
                .cmp(&b.priority)
                .then(a_signal.cmp(b_signal))
                .then(b.id.cmp(&a.id))
        })
        .map(|(candidate, _)| candidate)
}

/// Returns whether an access point whose scan flags are `flags` (`[WPA2-PSK-CCMP][ESS]`,
/// `[ESS]` for an open one) offers a key management of the network's `key_mgmt`, so that two
/// networks with one SSID but different security are distinguished. An empty or unknown
/// `key_mgmt` matches every access point.
pub(super) fn security_matches(key_mgmt: &str, flags: &str) -> bool {
    if key_mgmt.is_empty() {
        return true;
    }
    let protected = ["WPA", "RSN", "WEP", "OSEN"]
        .iter()
        .any(|word| flags.contains(word));
    key_mgmt.split_whitespace().any(|method| match method {
        // Open networks, and static WEP, which wpa_supplicant configures with NONE too.
        "NONE" => !protected || flags.contains("WEP"),
        "OWE" => flags.contains("OWE"),
        method if method.contains("SAE") => flags.contains("SAE"),
        method if method.contains("PSK") => flags.contains("PSK"),
        method if method.contains("EAP") || method == "IEEE8021X" => {
            flags.contains("EAP") || flags.contains("802.1X")
        }
        _ => true,
    })
}

fn list_ssids(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|candidate| format!("'{}'", escape_ssid(&candidate.ssid)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn terminated(ifname: &str) -> CtrlError {
    CtrlError::Io {
        command: String::from("(events)"),
        path: PathBuf::from(ifname),
        source: io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "wpa_supplicant is terminating",
        ),
    }
}

/// A wait that doubles after each use, from `first` up to `last`.
pub(super) struct Backoff {
    first: Duration,
    last: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(first: Duration, last: Duration) -> Backoff {
        Backoff {
            first,
            last,
            next: first,
        }
    }

    pub(super) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.last);
        wait
    }

    pub(super) fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The supplicant as a driver uses it. Every wait for events also ends when the daemon
/// requests a stop. `ATTACH` is sent once per driver, although [`crate::wifi::drive::connect`]
/// subscribes again for each connection.
struct Stoppable<'a> {
    supplicant: &'a mut Supplicant,
    stop: Arc<StopSignal>,
    /// The supplicant's pidfd, readable once the process exited; `None` when the process
    /// could not be found.
    exited: Option<&'a OwnedFd>,
    attached: bool,
}

impl Stoppable<'_> {
    fn check_stop(&self) -> Result<(), CtrlError> {
        if self.stop.is_requested() {
            return Err(CtrlError::Io {
                command: String::from("(events)"),
                path: PathBuf::new(),
                source: io::Error::new(io::ErrorKind::Interrupted, "the driver is stopping"),
            });
        }
        Ok(())
    }

    /// Returns the next event, waiting at most `timeout` (`None`: until an event or a stop
    /// request).
    fn wait_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, CtrlError> {
        self.check_stop()?;
        self.check_exited()?;
        let mut wake = vec![self.stop.wake_fd()];
        wake.extend(self.exited.map(AsFd::as_fd));
        let event = self
            .supplicant
            .control()
            .next_event_or_wake(timeout, &wake)?;
        self.check_stop()?;
        if event.is_none() {
            self.check_exited()?;
        }
        Ok(event)
    }

    /// Fails when the supplicant's process has exited, which a killed supplicant does without
    /// a word on its socket.
    fn check_exited(&self) -> Result<(), CtrlError> {
        let Some(pidfd) = self.exited else {
            return Ok(());
        };
        let mut poll = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `poll` is one valid pollfd for the whole call, and the pidfd stays open.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        if ready > 0 {
            return Err(CtrlError::Io {
                command: String::from("(events)"),
                path: PathBuf::new(),
                source: io::Error::new(io::ErrorKind::ConnectionAborted, "wpa_supplicant exited"),
            });
        }
        Ok(())
    }
}

impl SupplicantOps for Stoppable<'_> {
    fn get(&mut self, name: &str) -> Result<String, CtrlError> {
        self.supplicant.get(name)
    }

    fn get_network(&mut self, id: u32, name: &str) -> Result<String, CtrlError> {
        self.supplicant.get_network(id, name)
    }

    fn list_networks(&mut self) -> Result<Vec<NetworkEntry>, CtrlError> {
        self.supplicant.list_networks()
    }

    fn status(&mut self) -> Result<Status, CtrlError> {
        self.check_stop()?;
        self.supplicant.status()
    }

    fn disconnect(&mut self) -> Result<(), CtrlError> {
        self.supplicant.disconnect()
    }

    fn attach(&mut self) -> Result<(), CtrlError> {
        if !self.attached {
            self.supplicant.attach()?;
            self.attached = true;
        }
        Ok(())
    }

    fn select_network(&mut self, id: u32) -> Result<(), CtrlError> {
        self.check_stop()?;
        self.supplicant.select_network(id)
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, CtrlError> {
        self.wait_event(Some(timeout))
    }
}
