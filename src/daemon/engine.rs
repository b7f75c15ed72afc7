//! The daemon's core, without its event loop: given links and why they are looked at, resolve
//! each link's policy, decide, change addresses, and record and log what happened. The event
//! loop ([`super::run`]) and the udev helper ([`super::udev`]) both drive it.
//!
//! One pass works on a batch of links:
//!
//! 1. Each link's policy comes from the configuration and its facts ([`super::facts`]). A
//!    managed link without a permanent address gets its reference address recorded before
//!    anything changes ([`ReferenceStore`]).
//! 2. [`super::target::plan`] turns the policy into an intent and [`decide`] into an action.
//! 3. Address changes go to [`apply`] in one call per failure mode. Links that are up with the
//!    address they must hide are cycled through [`ForcedCycle`]. With
//!    `macveil.on-failure=down`, a link whose change failed is left down.
//! 4. Each link's record ([`RecordStore`]) is updated when its outcome changed, and every change
//!    and failure is logged.
//!
//! The engine keeps, per link, the state it last saw (to tell a link going down from other
//! changes), whether it spares the link, and its undo history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cycle::ForcedCycle;
use super::decide::{
    Action, Context, Intent, LinkView, MAX_UNDO_PER_MINUTE, Trigger, UndoHistory, decide,
};
use super::drive::DrivenLinks;
use super::facts;
use super::nm::DeviceStates;
use super::scoped::Scoped;
use super::state::{LinkRecord, LinkStatus, RecordStore, RecordUpdate, Writer, now_seconds};
use super::target::{self, Keys, Plan, Shared};
use super::udev::UdevView;
use crate::addr::MacAddr;
use crate::config::{Config, LinkFacts, LinkPolicy, OnFailure, Source};
use crate::link::apply::{self, AfterFailure, ApplyOptions, Change, LinkReport, Outcome};
use crate::link::state::{Baseline, ReferenceStore, References};
use crate::link::{Link, LinkError, LinkEvent, LinkOps, Request};
use crate::rng::RandomSource;

/// The largest number of changes that [`apply`] reads link by link rather than with one dump.
/// The limit is an estimate: one read per link is cheaper than a dump of every link while the
/// pass is much smaller than the host's link count.
const SCOPED_PASS_MAX: usize = 16;

/// The engine's settings, fixed for its life.
pub struct Settings {
    /// The state directory (references and link records).
    pub state_dir: PathBuf,
    /// `--now`: change links that are up even at the first start of a boot.
    pub now: bool,
    /// `--reveal`: log permanent and reference addresses in full.
    pub reveal: bool,
    /// This is the daemon's first start of the boot, so links found up are spared unless `now`
    /// or `macveil.apply-to-running` requests otherwise.
    pub first_start: bool,
    /// Never cycle a link that is up: the udev helper only sets addresses of links that are
    /// down, and leaves running links to the daemon.
    pub never_cycle: bool,
    /// `/sys/class/net`, when the links are in the caller's namespace.
    pub sysfs_net: Option<PathBuf>,
    /// NetworkManager's device state files, when the links are in the caller's namespace.
    pub nm_devices: Option<DeviceStates>,
    /// udev's view of the links, when the links are in the caller's namespace and the engine
    /// leaves new links to macveil's udev rule. The udev helper itself has none.
    pub udev: Option<UdevView>,
    /// The program that writes the link records.
    pub writer: Writer,
}

/// The outcome of one pass, counted over its links.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Links looked at.
    pub links: usize,
    /// Links whose address was changed.
    pub changed: usize,
    /// Links left up with the address they must hide (spared at the first start of a boot).
    pub exposed: usize,
    /// Links taken or kept down because their address could not be set.
    pub held_down: usize,
    /// Links whose change failed with `macveil.on-failure=warn`.
    pub failed: usize,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.links += other.links;
        self.changed += other.changed;
        self.exposed += other.exposed;
        self.held_down += other.held_down;
        self.failed += other.failed;
    }
}

/// The engine's memory of one link between passes.
#[derive(Debug, Default)]
struct Known {
    name: String,
    admin_up: bool,
    address: Option<MacAddr>,
    /// Found up with the address to hide at the first start of the boot, and up with it since.
    spared: bool,
    history: UndoHistory,
    /// Left down after repeated write-backs, and down since.
    given_up: bool,
    /// Its change failed with `macveil.on-failure=warn`. It is not retried on the link's own
    /// changes, which include the cycle of the failed attempt, until it reappears or the
    /// configuration is reloaded or the system resumes.
    warned: bool,
    /// The warning that the policy leaves it with its address by default was logged since it
    /// appeared or the configuration was last loaded.
    unprotected_logged: bool,
    /// When a `random` link with `macveil.random-rotate` gets its next address.
    rotate_at: Option<Instant>,
    /// The last record written, to skip writing the same outcome again.
    record: Option<LinkRecord>,
}

/// One link in a pass.
struct Item {
    link: Link,
    trigger: Trigger,
    policy: LinkPolicy,
    baseline: Baseline,
    plan: Plan,
    action: Action,
}

/// The daemon's core.
pub struct Engine {
    settings: Settings,
    config: Config,
    keys: Keys,
    boot_id: Result<String, String>,
    references: ReferenceStore,
    /// The references as last read or recorded.
    references_cache: Option<References>,
    /// Links removed since the references were last written. The next write drops their
    /// references.
    removed_links: Vec<(u32, String)>,
    records: RecordStore,
    netns: String,
    known: HashMap<u32, Known>,
    /// The sysfs and ethtool facts last read for virtual links of each `IFLA_INFO_KIND`. With
    /// them, a new link of a kind seen before is changed from its notification alone. `None`
    /// marks a kind whose links differed.
    kinds: HashMap<String, Option<KindFacts>>,
    /// The links of the current pass that come straight from their notification, whose facts
    /// come from `kinds`.
    notified: HashSet<u32>,
    rng: Box<dyn RandomSource>,
    /// The Wi-Fi links whose connections a driver drives, whose addresses the engine leaves to
    /// the driver unless they show the address to hide.
    driven: Option<DrivenLinks>,
}

/// The facts a virtual link's notification lacks, as links of its kind had them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindFacts {
    driver: Option<String>,
    driver_version: Option<String>,
}

impl Engine {
    /// Creates the engine for the namespace `ops` works in.
    pub fn new(
        ops: &dyn LinkOps,
        settings: Settings,
        config: Config,
        keys: Keys,
        boot_id: Result<String, String>,
        rng: Box<dyn RandomSource>,
    ) -> Engine {
        Engine {
            references: ReferenceStore::new(&settings.state_dir),
            references_cache: None,
            removed_links: Vec::new(),
            records: RecordStore::new(&settings.state_dir),
            netns: ops.netns_key().to_string(),
            settings,
            config,
            keys,
            boot_id,
            known: HashMap::new(),
            kinds: HashMap::new(),
            notified: HashSet::new(),
            rng,
            driven: None,
        }
    }

    /// Shares the set of links whose Wi-Fi connections the daemon's drivers drive. The engine
    /// then never rotates such a link's address, because a driver takes the link down to set
    /// the address of the network it chose, and a rotation at that moment would replace it.
    /// A driven link that shows the address it must hide is still changed or held down.
    pub fn set_driven_links(&mut self, driven: DrivenLinks) {
        self.driven = Some(driven);
    }

    /// Returns the namespace key the records use.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Reads every link and enforces the policy on it: the daemon's first pass. Links found up
    /// are spared when this is the first start of the boot.
    pub fn start(&mut self, ops: &mut dyn LinkOps) -> Result<Summary, LinkError> {
        let links = ops.links()?;
        // References of links removed while no daemon ran would otherwise stay until the next
        // boot.
        self.references.retain_present(&self.netns, &links)?;
        self.references_cache = None;
        let present: Vec<u32> = links.iter().map(|link| link.index).collect();
        for link in &links {
            self.known.insert(
                link.index,
                Known {
                    name: link.name.clone(),
                    admin_up: link.admin_up,
                    address: link.address,
                    spared: self.settings.first_start && link.admin_up,
                    ..Known::default()
                },
            );
        }
        let work = links
            .into_iter()
            .map(|link| (link, Trigger::Dump))
            .collect();
        let summary = self.process(ops, work, Vec::new())?;
        self.records
            .update(&self.netns, &RecordUpdate::default(), Some(&present))?;
        Ok(summary)
    }

    /// Enforces the policy on one link and returns the record of what happened, for the udev
    /// helper. `link` may carry a name other than the kernel's: udev renames a link after its
    /// rules ran, and the policy, the stable address and the records use the final name.
    pub fn enforce_one(
        &mut self,
        ops: &mut dyn LinkOps,
        link: Link,
    ) -> Result<(Summary, Option<LinkRecord>), LinkError> {
        let index = link.index;
        let mut renamed = Vec::new();
        self.observe(&link, &mut renamed);
        let summary = self.process(ops, vec![(link, Trigger::Appeared)], Vec::new())?;
        let record = self
            .known
            .get(&index)
            .and_then(|known| known.record.clone());
        Ok((summary, record))
    }

    /// Handles a batch of link notifications.
    pub fn handle(
        &mut self,
        ops: &mut dyn LinkOps,
        events: Vec<LinkEvent>,
    ) -> Result<Summary, LinkError> {
        let mut pending: BTreeMap<u32, Trigger> = BTreeMap::new();
        let mut latest: HashMap<u32, Link> = HashMap::new();
        let mut removed = Vec::new();
        let mut renamed = Vec::new();

        for event in events {
            match event {
                LinkEvent::New(link) => {
                    let trigger = self.observe(&link, &mut renamed);
                    let entry = pending.entry(link.index).or_insert(trigger);
                    *entry = stronger(*entry, trigger);
                    latest.insert(link.index, link);
                }
                LinkEvent::Removed { index, name } => {
                    self.known.remove(&index);
                    pending.remove(&index);
                    latest.remove(&index);
                    removed.push((index, name));
                }
            }
        }
        self.carry_references(ops, &renamed)?;

        // A new link whose notification contains every fact its policy needs is changed from
        // it before anything else is read, because a program that raises new links at once
        // races this change.
        let mut work = Vec::with_capacity(pending.len());
        let mut notified = HashSet::new();
        for (index, trigger) in pending {
            let seen = latest.remove(&index);
            if let Some(link) =
                seen.filter(|link| trigger == Trigger::Appeared && self.knows_kind(link))
            {
                notified.insert(index);
                work.push((link, trigger));
                continue;
            }
            // A link removed since its notification has a removal notification queued.
            if let Some(link) = ops.link(index)? {
                work.push((link, trigger));
            }
        }
        self.notified = notified;
        let summary = self.process(ops, work, removed);
        let notified = std::mem::take(&mut self.notified);
        let mut summary = summary?;
        if !notified.is_empty() {
            summary.add(self.check_notified(ops, notified)?);
        }
        Ok(summary)
    }

    /// Returns whether `link` is a virtual link of a kind whose facts are known, so that its
    /// notification gives everything its policy depends on.
    fn knows_kind(&self, link: &Link) -> bool {
        virtual_kind(link).is_some_and(|kind| matches!(self.kinds.get(kind), Some(Some(_))))
    }

    /// Reads the links that were changed from their notification in full, now that the change
    /// is made, and handles one again when its kind's facts did not hold for it.
    fn check_notified(
        &mut self,
        ops: &mut dyn LinkOps,
        notified: HashSet<u32>,
    ) -> Result<Summary, LinkError> {
        let mut work = Vec::new();
        for index in notified {
            let Some(link) = ops.link(index)? else {
                continue;
            };
            let expected = virtual_kind(&link).and_then(|kind| self.kinds.get(kind).cloned());
            let facts = facts::of(&link, None, self.settings.sysfs_net.as_deref());
            let found = KindFacts {
                driver: facts.driver.clone(),
                driver_version: facts.driver_version.clone(),
            };
            if facts.device.is_none() && expected == Some(Some(found)) {
                continue;
            }
            // NOTE: the link keeps the address its notification's policy gave it unless the
            // full facts make it exposed. No kind with two drivers is known to this code.
            log::warn!(
                "{}: its driver or device differs from earlier links of its kind; handling it \
                 again with every fact",
                link.name
            );
            if let Some(kind) = virtual_kind(&link) {
                self.kinds.insert(kind.to_string(), None);
            }
            work.push((link, Trigger::Changed));
        }
        self.process(ops, work, Vec::new())
    }

    /// Builds the facts of `link` for its policy: from sysfs, or for a link taken from its
    /// notification, from earlier links of its kind. Facts read from sysfs teach the kind's.
    fn facts_of(&mut self, link: &Link, reference: Option<MacAddr>) -> LinkFacts {
        if self.notified.contains(&link.index) {
            let known = virtual_kind(link).and_then(|kind| self.kinds.get(kind).cloned().flatten());
            let mut facts = facts::of(link, reference, None);
            if let Some(known) = known {
                facts.driver = known.driver;
                facts.driver_version = known.driver_version;
            }
            return facts;
        }

        let facts = facts::of(link, reference, self.settings.sysfs_net.as_deref());
        if let Some(kind) = virtual_kind(link).filter(|_| facts.device.is_none()) {
            let found = KindFacts {
                driver: facts.driver.clone(),
                driver_version: facts.driver_version.clone(),
            };
            let entry = self
                .kinds
                .entry(kind.to_string())
                .or_insert(Some(found.clone()));
            if entry.as_ref().is_some_and(|known| *known != found) {
                *entry = None;
            }
        }
        facts
    }

    /// Reads every link again after notifications were lost, and handles each one as if its
    /// notification had arrived.
    pub fn resync(&mut self, ops: &mut dyn LinkOps) -> Result<Summary, LinkError> {
        let links = ops.links()?;
        let present: HashSet<u32> = links.iter().map(|link| link.index).collect();
        let removed: Vec<(u32, String)> = self
            .known
            .iter()
            .filter(|(index, _)| !present.contains(index))
            .map(|(index, known)| (*index, known.name.clone()))
            .collect();
        for (index, _) in &removed {
            self.known.remove(index);
        }

        let mut renamed = Vec::new();
        let mut work = Vec::with_capacity(links.len());
        for link in links {
            let trigger = self.observe(&link, &mut renamed);
            work.push((link, trigger));
        }
        self.carry_references(ops, &renamed)?;
        self.process(ops, work, removed)
    }

    /// Checks every link after a resume from suspend: `random` links get a new address.
    pub fn resume(&mut self, ops: &mut dyn LinkOps) -> Result<Summary, LinkError> {
        self.clear_warnings();
        self.whole_pass(ops, Trigger::Resumed)
    }

    /// Replaces the configuration and enforces it on every link. The secret key is read again
    /// when next needed.
    pub fn reload(&mut self, ops: &mut dyn LinkOps, config: Config) -> Result<Summary, LinkError> {
        self.config = config;
        self.keys.forget();
        self.clear_warnings();
        for known in self.known.values_mut() {
            known.unprotected_logged = false;
        }
        self.whole_pass(ops, Trigger::Changed)
    }

    /// Looks at links again when the secret key was missing, so that a key that became readable
    /// (a /var mounted late) takes effect without waiting for a change of those links.
    pub fn retry_blocked(&mut self, ops: &mut dyn LinkOps) -> Result<Summary, LinkError> {
        if !self.keys.is_missing() {
            return Ok(Summary::default());
        }
        self.keys.forget();
        self.clear_warnings();
        self.whole_pass(ops, Trigger::Changed)
    }

    /// Returns the earliest `macveil.random-rotate` deadline, if any link has one.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.known
            .values()
            .filter_map(|known| known.rotate_at)
            .min()
    }

    /// Gives every `random` link whose rotation is due its next address.
    pub fn rotate_due(
        &mut self,
        ops: &mut dyn LinkOps,
        now: Instant,
    ) -> Result<Summary, LinkError> {
        let due: Vec<u32> = self
            .known
            .iter()
            .filter(|(_, known)| known.rotate_at.is_some_and(|at| at <= now))
            .map(|(index, _)| *index)
            .collect();
        let mut work = Vec::with_capacity(due.len());
        for index in due {
            if let Some(known) = self.known.get_mut(&index) {
                known.rotate_at = None;
            }
            if let Some(link) = ops.link(index)? {
                // A rotation is handled like a resume: a new random address, up or down.
                work.push((link, Trigger::Resumed));
            }
        }
        self.process(ops, work, Vec::new())
    }

    /// Lets links whose change failed with `macveil.on-failure=warn` be tried again.
    fn clear_warnings(&mut self) {
        for known in self.known.values_mut() {
            known.warned = false;
        }
    }

    fn whole_pass(
        &mut self,
        ops: &mut dyn LinkOps,
        trigger: Trigger,
    ) -> Result<Summary, LinkError> {
        let links = ops.links()?;
        let mut renamed = Vec::new();
        for link in &links {
            self.observe(link, &mut renamed);
        }
        self.carry_references(ops, &renamed)?;
        let work = links.into_iter().map(|link| (link, trigger)).collect();
        self.process(ops, work, Vec::new())
    }

    /// Compares a notified or dumped link with what the engine last saw, remembers the new
    /// state, and returns the trigger it stands for. Renamed links are added to `renamed` with
    /// their old name.
    fn observe(&mut self, link: &Link, renamed: &mut Vec<(Link, String)>) -> Trigger {
        let Some(known) = self.known.get_mut(&link.index) else {
            self.known.insert(
                link.index,
                Known {
                    name: link.name.clone(),
                    admin_up: link.admin_up,
                    address: link.address,
                    ..Known::default()
                },
            );
            return Trigger::Appeared;
        };
        let trigger = if known.admin_up && !link.admin_up {
            Trigger::WentDown
        } else {
            Trigger::Changed
        };
        if known.name != link.name {
            renamed.push((link.clone(), known.name.clone()));
            known.name = link.name.clone();
        }
        known.admin_up = link.admin_up;
        known.address = link.address;
        trigger
    }

    /// Copies the reference address of each renamed link to its new name, because references
    /// are keyed by name and a renamed link must keep hiding the same address.
    fn carry_references(
        &mut self,
        ops: &mut dyn LinkOps,
        renamed: &[(Link, String)],
    ) -> Result<(), LinkError> {
        if renamed.is_empty() {
            return Ok(());
        }
        let references = self.references.load()?;
        let mut carried = Vec::new();
        for (link, old_name) in renamed {
            if link.permanent.is_some() || references.get(&self.netns, link).is_some() {
                continue;
            }
            let mut old = link.clone();
            old.name = old_name.clone();
            if let Some(reference) = references.get(&self.netns, &old) {
                log::debug!("{old_name}: renamed to {}", link.name);
                let mut entry = link.clone();
                entry.address = Some(reference);
                carried.push(entry);
            }
        }
        let entries: Vec<&Link> = carried.iter().collect();
        self.references_cache = Some(self.references.record(ops.netns_key(), &entries)?);
        Ok(())
    }

    /// Runs one pass over `work` and drops the records of the `removed` links. A link whose
    /// change another program superseded with the address it must hide is looked at once more,
    /// as it is then.
    fn process(
        &mut self,
        ops: &mut dyn LinkOps,
        work: Vec<(Link, Trigger)>,
        removed: Vec<(u32, String)>,
    ) -> Result<Summary, LinkError> {
        let (mut summary, again) = self.process_once(ops, work, removed)?;
        if again.is_empty() {
            return Ok(summary);
        }
        let mut work = Vec::with_capacity(again.len());
        for index in again {
            if let Some(link) = ops.link(index)? {
                work.push((link, Trigger::Changed));
            }
        }
        let (second, _) = self.process_once(ops, work, Vec::new())?;
        summary.add(second);
        Ok(summary)
    }

    /// Runs one pass and returns its summary and the links to look at again: those another
    /// program gave back the address they must hide while macveil changed them. They are
    /// neither counted nor recorded in this pass.
    fn process_once(
        &mut self,
        ops: &mut dyn LinkOps,
        work: Vec<(Link, Trigger)>,
        removed: Vec<(u32, String)>,
    ) -> Result<(Summary, Vec<u32>), LinkError> {
        self.removed_links.extend(removed.iter().cloned());
        let mut update = RecordUpdate {
            upsert: Vec::new(),
            remove: removed,
        };
        if work.is_empty() {
            self.records.update(&self.netns, &update, None)?;
            return Ok((Summary::default(), Vec::new()));
        }

        let references = self.references_for(&work)?;
        let mut items = self.decide_all(work, &references);
        let reports = self.execute(ops, &mut items)?;

        let mut summary = Summary::default();
        let mut again = Vec::new();
        for item in &items {
            let report = reports.get(&item.link.index);
            if item.action == Action::AwaitUdev {
                // The rule's helper records the link; a record here would race with its own.
                log::debug!("{}: left to the udev rule", item.link.name);
                continue;
            }
            let hidden = item.baseline.address();
            if let Some(Outcome::Superseded(current)) = report.map(|report| &report.outcome) {
                if hidden == Some(*current) {
                    again.push(item.link.index);
                    continue;
                }
            }
            // A link removed while it was being changed has failed nothing: its removal
            // notification follows and drops the engine's state for it.
            if let Some(Outcome::Failed(error)) = report.map(|report| &report.outcome) {
                if matches!(ops.link(item.link.index), Ok(None)) {
                    let error = self.redact_text(&error.to_string(), item.baseline.address());
                    log::debug!(
                        "{}: removed while its address was being set ({error})",
                        item.link.name
                    );
                    continue;
                }
            }
            let (record, counted) = self.conclude(item, report);
            summary.add(counted);
            let known = self.known.entry(item.link.index).or_default();
            if known
                .record
                .as_ref()
                .is_some_and(|old| same_outcome(old, &record))
            {
                continue;
            }
            known.record = Some(record.clone());
            update.upsert.push(record);
        }
        self.records.update(&self.netns, &update, None)?;
        Ok((summary, again))
    }

    /// Loads the references and records one for each managed link that has neither a permanent
    /// address nor a reference yet.
    fn references_for(&mut self, work: &[(Link, Trigger)]) -> Result<References, LinkError> {
        // Entries are never replaced, so the copy from the last read stays true. A link missing
        // from it makes `record` read the file again, with any entry the udev helper added.
        let references = match self.references_cache.take() {
            Some(references) => references,
            None => self.references.load()?,
        };
        let mut missing = Vec::new();
        for (link, _) in work {
            if link.permanent.is_some()
                || link.address.is_none()
                || references.get(&self.netns, link).is_some()
            {
                continue;
            }
            // At first sight the reference is the current address.
            let facts = self.facts_of(link, link.address);
            if self.config.policy_for(&facts).managed {
                missing.push(link);
            }
        }
        let references = if missing.is_empty() {
            references
        } else {
            let removed = std::mem::take(&mut self.removed_links);
            self.references.update(&self.netns, &missing, &removed)?
        };
        self.references_cache = Some(references.clone());
        Ok(references)
    }

    fn decide_all(&mut self, work: Vec<(Link, Trigger)>, references: &References) -> Vec<Item> {
        let now = Instant::now();
        let mut items = Vec::with_capacity(work.len());
        for (link, trigger) in work {
            let baseline = Baseline::of(&link, &self.netns, references);
            let reference = match baseline {
                Baseline::Reference(address) => Some(address),
                _ => None,
            };
            let facts = self.facts_of(&link, reference);
            let policy = self.config.policy_for(&facts);
            let plan = target::plan(
                &policy,
                &link,
                baseline.address(),
                Shared {
                    keys: &mut self.keys,
                    boot_id: &self.boot_id,
                    rng: self.rng.as_mut(),
                },
            );

            let hidden = baseline.address();
            let exposed = hidden.is_some() && hidden == link.address;
            let known = self.known.entry(link.index).or_default();
            if !link.admin_up || !exposed {
                known.spared = false;
            }
            let spare = self.settings.never_cycle
                || (known.spared && !self.settings.now && !policy.apply_to_running.value);
            let context = Context {
                spare_running_links: spare,
                // Only the rotation of a link that is not exposed depends on it.
                managed_elsewhere: !exposed
                    && (self
                        .settings
                        .nm_devices
                        .as_ref()
                        .is_some_and(|states| states.is_managed(link.index))
                        || self
                            .driven
                            .as_ref()
                            .is_some_and(|driven| driven.contains(link.index))),
                // Only a link that is down and exposed can be left to the rule.
                udev_pending: !link.admin_up
                    && exposed
                    && self
                        .settings
                        .udev
                        .as_ref()
                        .is_some_and(|udev| udev.rule_pending(link.index)),
            };

            if trigger == Trigger::Appeared {
                known.warned = false;
                known.unprotected_logged = false;
            }
            if !known.unprotected_logged
                && let Some(warning) = policy.unprotected_warning()
            {
                log::warn!("{}: {warning}", link.name);
                known.unprotected_logged = true;
            }
            let retry_suppressed = known.warned
                && policy.on_failure.value == OnFailure::Warn
                && matches!(trigger, Trigger::Changed | Trigger::WentDown);
            let action = match (link.address, plan.intent) {
                _ if retry_suppressed => Action::None,
                // A link without a 6-byte address has nothing to hide or set.
                (None, _) => Action::None,
                (Some(current), intent) => {
                    let view = LinkView {
                        is_up: link.admin_up,
                        current,
                        hidden,
                    };
                    let next = plan.next;
                    let mut next_random = || next.expect("a random plan has its next address");
                    let intent = match intent {
                        Intent::Random if next.is_none() => Intent::Blocked,
                        other => other,
                    };
                    decide(
                        trigger,
                        view,
                        intent,
                        context,
                        &mut known.history,
                        now,
                        &mut next_random,
                    )
                }
            };
            log::debug!(
                "{}: {trigger:?}, policy {}, {}, action {action:?}",
                link.name,
                plan.label,
                if exposed { "exposed" } else { "not exposed" }
            );
            items.push(Item {
                link,
                trigger,
                policy,
                baseline,
                plan,
                action,
            });
        }
        items
    }

    /// Carries out the actions and returns the apply reports by link index.
    fn execute(
        &mut self,
        ops: &mut dyn LinkOps,
        items: &mut [Item],
    ) -> Result<HashMap<u32, LinkReport>, LinkError> {
        let mut reports = HashMap::new();
        for after_failure in [AfterFailure::StayDown, AfterFailure::RestoreAdminState] {
            let mut changes = Vec::new();
            let mut cycled = HashSet::new();
            for item in items.iter() {
                if failure_mode(&item.policy) != after_failure {
                    continue;
                }
                match item.action {
                    Action::SetWhileDown(address) => changes.push(Change {
                        index: item.link.index,
                        address,
                    }),
                    Action::Cycle(address) => {
                        changes.push(Change {
                            index: item.link.index,
                            address,
                        });
                        cycled.insert(item.link.index);
                    }
                    _ => {}
                }
            }
            if changes.is_empty() {
                continue;
            }
            for item in items
                .iter()
                .filter(|item| cycled.contains(&item.link.index))
            {
                self.warn_cycle(item);
            }

            let options = ApplyOptions {
                cycle: true,
                after_failure,
            };
            let seen: Option<Vec<Link>> = changes
                .iter()
                .map(|change| {
                    items
                        .iter()
                        .find(|item| item.link.index == change.index)
                        .filter(|item| self.notified.contains(&item.link.index))
                        .map(|item| item.link.clone())
                })
                .collect();
            let results = if let Some(seen) = seen {
                // Links taken from their notification, whose references were just recorded.
                let mut forced = ForcedCycle::new(ops, cycled);
                let references = self.references_cache.clone().unwrap_or_default();
                apply::apply_seen(&mut forced, seen, &references, &changes, &options)?
            } else if changes.len() <= SCOPED_PASS_MAX {
                let indexes = changes.iter().map(|change| change.index).collect();
                let mut scoped = Scoped::new(ops, indexes);
                let mut forced = ForcedCycle::new(&mut scoped, cycled);
                apply::apply(&mut forced, &self.references, &changes, &options)?
            } else {
                let mut forced = ForcedCycle::new(ops, cycled);
                apply::apply(&mut forced, &self.references, &changes, &options)?
            };
            for report in results {
                reports.insert(report.index, report);
            }
        }

        let down: Vec<Request> = items
            .iter()
            .filter(|item| matches!(item.action, Action::GiveUp | Action::HoldDown))
            .filter(|item| failure_mode(&item.policy) == AfterFailure::StayDown)
            .map(|item| Request::SetAdminState {
                index: item.link.index,
                up: false,
            })
            .collect();
        if !down.is_empty() {
            let results = ops.execute(&down)?;
            for (request, result) in down.iter().zip(results) {
                if let Err(errno) = result {
                    let name = items
                        .iter()
                        .find(|item| item.link.index == request.index())
                        .map_or("?", |item| item.link.name.as_str());
                    log::error!(
                        "{name}: could not take the link down ({errno}); it may send with the \
                         address it must hide, so take it down by hand ('ip link set {name} down')"
                    );
                }
            }
        }
        Ok(reports)
    }

    fn warn_cycle(&self, item: &Item) {
        let hidden = item.baseline.address();
        if hidden.is_none() || hidden != item.link.address {
            log::info!(
                "{}: cycling it for its next {} address",
                item.link.name,
                item.plan.label
            );
            return;
        }
        let hidden = hidden
            .map(|address| self.show_hidden(address))
            .unwrap_or_default();
        match item.trigger {
            Trigger::Changed | Trigger::Appeared | Trigger::WentDown => log::warn!(
                "{}: up with the address it must hide ({hidden}); taking it down to set its {} \
                 address",
                item.link.name,
                self.show_label(item)
            ),
            Trigger::Dump | Trigger::Resumed => log::info!(
                "{}: up with the address it must hide ({hidden}); cycling it to set its {} address",
                item.link.name,
                self.show_label(item)
            ),
        }
    }

    /// Logs the outcome of one link and builds its record.
    fn conclude(&mut self, item: &Item, report: Option<&LinkReport>) -> (LinkRecord, Summary) {
        let mut summary = Summary {
            links: 1,
            ..Summary::default()
        };
        let name = &item.link.name;
        let mut record = LinkRecord {
            netns: self.netns.clone(),
            ifindex: item.link.index,
            ifname: name.clone(),
            policy: item.plan.label.clone(),
            origin: origin_of(&item.policy),
            status: LinkStatus::Kept,
            address: item.link.address.map(|address| address.to_string()),
            detail: None,
            writer: self.settings.writer,
            time: now_seconds(),
        };
        let hidden = item.baseline.address();
        let exposed = hidden.is_some() && hidden == item.link.address;
        let stays_down = failure_mode(&item.policy) == AfterFailure::StayDown;

        match (item.action, report) {
            (Action::SetWhileDown(_) | Action::Cycle(_), Some(report)) => {
                self.conclude_change(item, report, &mut record, &mut summary);
            }
            (Action::SetWhileDown(_) | Action::Cycle(_), None) => {
                record.status = LinkStatus::Failed;
                record.detail = Some(String::from("the change was not attempted"));
                summary.failed += 1;
            }
            (Action::ReportExposed, _) => {
                record.status = LinkStatus::Exposed;
                record.address = None;
                let detail = if self.settings.never_cycle {
                    String::from(
                        "up with the address it must hide; the daemon changes running links",
                    )
                } else {
                    String::from(
                        "up with the address it must hide and left up because this is the \
                         daemon's first start since boot; restart the daemon with --now, set \
                         macveil.apply-to-running=yes, or take the link down and up",
                    )
                };
                if self.known_record_status(item.link.index) != Some(LinkStatus::Exposed) {
                    log::warn!(
                        "{name}: exposed: {detail} ({})",
                        hidden
                            .map(|address| self.show_hidden(address))
                            .unwrap_or_default()
                    );
                }
                record.detail = Some(detail);
                summary.exposed += 1;
            }
            (Action::GiveUp, _) => {
                let consequence = if stays_down {
                    "the link stays down"
                } else {
                    "macveil stops undoing it until the configuration is reloaded \
                     (macveil.on-failure=warn)"
                };
                let detail = format!(
                    "its hardware address was written back more than {MAX_UNDO_PER_MINUTE} times \
                     within a minute, so another program keeps setting it; {consequence}. If \
                     NetworkManager manages it, set {}=preserve in its profile or run 'macveil nm \
                     install'; otherwise stop the program that sets the address, then bring the \
                     link up",
                    item.policy.cloned_mac_address_key()
                );
                self.conclude_refusal(item, detail, &mut record, &mut summary);
            }
            (Action::HoldDown, _) => {
                let reason = item.plan.blocked.clone().unwrap_or_default();
                let consequence = if stays_down {
                    "the link stays down until it can"
                } else {
                    "the link keeps its address (macveil.on-failure=warn)"
                };
                let detail = format!(
                    "its {} address cannot be derived ({reason}); {consequence}",
                    item.plan.label
                );
                self.conclude_refusal(item, detail, &mut record, &mut summary);
            }
            (Action::None, _) if exposed && self.is_warned(item.link.index) => {
                // A failed change under on-failure=warn that is not retried yet.
                let previous = self
                    .known
                    .get(&item.link.index)
                    .and_then(|known| known.record.clone());
                if let Some(previous) = previous {
                    record.detail = previous.detail;
                }
                record.status = LinkStatus::Failed;
                record.address = None;
                summary.failed += 1;
            }
            (Action::None, _) => {
                self.conclude_unchanged(item, exposed, &mut record, &mut summary);
            }
            // `process_once` records nothing for a link left to the udev rule.
            (Action::AwaitUdev, _) => {}
        }

        if record.status == LinkStatus::Failed && !stays_down {
            if let Some(known) = self.known.get_mut(&item.link.index) {
                known.warned = true;
            }
        }
        self.keep_given_up(item, report, &mut record);
        self.schedule_rotation(item, &record);
        (record, summary)
    }

    /// Records and logs a link the engine takes down (or, with `macveil.on-failure=warn`, only
    /// warns about) without changing its address.
    fn conclude_refusal(
        &self,
        item: &Item,
        detail: String,
        record: &mut LinkRecord,
        summary: &mut Summary,
    ) {
        let name = &item.link.name;
        record.address = None;
        if failure_mode(&item.policy) == AfterFailure::StayDown {
            record.status = LinkStatus::HeldDown;
            summary.held_down += 1;
            if self.known_record_status(item.link.index) != Some(LinkStatus::HeldDown) {
                log::error!("{name}: {detail}");
            }
        } else {
            record.status = LinkStatus::Failed;
            summary.failed += 1;
            if self.known_record_status(item.link.index) != Some(LinkStatus::Failed) {
                log::warn!("{name}: {detail}");
            }
        }
        record.detail = Some(detail);
    }

    fn conclude_change(
        &self,
        item: &Item,
        report: &LinkReport,
        record: &mut LinkRecord,
        summary: &mut Summary,
    ) {
        let name = &item.link.name;
        match &report.outcome {
            Outcome::Changed | Outcome::Unchanged => {
                record.status = LinkStatus::Set;
                record.address = Some(report.requested.to_string());
                if matches!(report.outcome, Outcome::Changed) {
                    summary.changed += 1;
                    let old = report
                        .old
                        .map(|old| self.show_address(old, item))
                        .unwrap_or_else(|| String::from("none"));
                    log::info!(
                        "{name}: {} address {} set (was {old}; policy {})",
                        self.show_label(item),
                        self.show_address(report.requested, item),
                        record.origin
                    );
                }
                if !report.lost.is_empty() {
                    let lost = self.redact_text(&report.lost.join(", "), item.baseline.address());
                    record.detail = Some(format!("the cycle lost {lost}"));
                }
            }
            Outcome::Superseded(current) => {
                // Another program (the udev helper, when both act on a new link) set its own
                // address while this change was in flight. The link is not exposed, because
                // `process_once` checked that, and replacing one anonymized address with
                // another gains no privacy.
                record.status = LinkStatus::Kept;
                record.address = Some(current.to_string());
                record.detail = Some(format!(
                    "another program set {current} right after macveil set its {} address {}",
                    item.plan.label, report.requested
                ));
                log::info!(
                    "{name}: another program set {} right after macveil set {}; keeping it",
                    self.show_address(*current, item),
                    self.show_address(report.requested, item)
                );
            }
            Outcome::Failed(error) => {
                let stays_down = failure_mode(&item.policy) == AfterFailure::StayDown;
                if stays_down {
                    record.status = LinkStatus::HeldDown;
                    summary.held_down += 1;
                } else {
                    record.status = LinkStatus::Failed;
                    summary.failed += 1;
                }
                record.address = report
                    .new
                    .filter(|address| Some(*address) != item.baseline.address())
                    .map(|address| address.to_string());
                let consequence = if stays_down {
                    "The link stays down so that it cannot send with the address it must hide \
                     (macveil.on-failure=down). To use the link with its own address, exclude it \
                     with macveil.manage=no in a [device] section that matches it, or set \
                     macveil.on-failure=warn"
                } else {
                    "The link keeps its address (macveil.on-failure=warn)"
                };
                // Driver errors quote the addresses involved, one of which may be the address
                // to hide.
                let error = self.redact_text(&error.to_string(), item.baseline.address());
                let detail = format!(
                    "could not set its {} address: {error}. {consequence}",
                    self.show_label(item)
                );
                if stays_down {
                    log::error!("{name}: {detail}");
                } else {
                    log::warn!("{name}: {detail}");
                }
                record.detail = Some(detail);
            }
        }
    }

    fn conclude_unchanged(
        &self,
        item: &Item,
        exposed: bool,
        record: &mut LinkRecord,
        summary: &mut Summary,
    ) {
        match item.plan.intent {
            Intent::Unmanaged => {
                record.status = LinkStatus::Ignored;
                record.detail = Some(format!("not managed: {}", item.policy.reason));
            }
            Intent::Preserve | Intent::Permanent => {
                record.status = LinkStatus::Ignored;
                record.detail = Some(format!(
                    "{}={} leaves the address as it is",
                    item.policy.cloned_mac_address_key(),
                    item.plan.label
                ));
            }
            Intent::Blocked if exposed => {
                // Down with the address it must hide: it stays down until the address can be
                // derived, and is taken down if anything raises it.
                record.status = LinkStatus::HeldDown;
                record.address = None;
                let reason = item.plan.blocked.clone().unwrap_or_default();
                record.detail = Some(format!(
                    "waiting for its {} address ({reason}); it is taken down if raised",
                    item.plan.label
                ));
                if self.known_record_status(item.link.index) != Some(LinkStatus::HeldDown) {
                    log::error!(
                        "{}: {}",
                        item.link.name,
                        record.detail.as_deref().unwrap_or("")
                    );
                }
                summary.held_down += 1;
            }
            _ => {
                // Not exposed: keep the record of the address macveil set, if this is it.
                let previous = self
                    .known
                    .get(&item.link.index)
                    .and_then(|known| known.record.as_ref());
                if let Some(previous) = previous {
                    if previous.status == LinkStatus::Set && previous.address == record.address {
                        // The same outcome, under the link's current name.
                        let ifname = std::mem::take(&mut record.ifname);
                        *record = previous.clone();
                        record.ifname = ifname;
                        return;
                    }
                }
                record.status = LinkStatus::Kept;
                record.detail = Some(String::from(
                    "already has an address other than the one it must hide",
                ));
            }
        }
    }

    /// Keeps the record of a link left down after repeated write-backs while it stays down, even
    /// when it gets its address in the meantime, so that the record still explains why it is down.
    fn keep_given_up(&mut self, item: &Item, report: Option<&LinkReport>, record: &mut LinkRecord) {
        let Some(known) = self.known.get_mut(&item.link.index) else {
            return;
        };
        let up_after = report.map_or(item.link.admin_up, |report| report.is_up);
        if item.action == Action::GiveUp {
            known.given_up = true;
            return;
        }
        if up_after {
            known.given_up = false;
            return;
        }
        if known.given_up && matches!(record.status, LinkStatus::Set | LinkStatus::Kept) {
            record.status = LinkStatus::HeldDown;
            record.detail = Some(String::from(
                "left down because its hardware address kept coming back; bring it up once the                  program that sets it is stopped or reconfigured",
            ));
        }
    }

    /// Sets or clears the rotation deadline of a `random` link after its pass.
    fn schedule_rotation(&mut self, item: &Item, record: &LinkRecord) {
        let Some(known) = self.known.get_mut(&item.link.index) else {
            return;
        };
        let period = item
            .policy
            .random_rotate
            .value
            .filter(|period| *period > Duration::ZERO);
        let rotates = item.plan.intent == Intent::Random && record.status == LinkStatus::Set;
        match period {
            Some(period) if rotates => {
                let changed_now = matches!(item.action, Action::SetWhileDown(_) | Action::Cycle(_));
                if changed_now || known.rotate_at.is_none() {
                    known.rotate_at = Some(Instant::now() + period);
                }
            }
            _ => known.rotate_at = None,
        }
    }

    fn is_warned(&self, index: u32) -> bool {
        self.known.get(&index).is_some_and(|known| known.warned)
    }

    fn known_record_status(&self, index: u32) -> Option<LinkStatus> {
        self.known
            .get(&index)
            .and_then(|known| known.record.as_ref())
            .map(|record| record.status)
    }

    /// Formats a permanent or reference address for a log line.
    /// Masks the address to hide, and IPv6 addresses derived from it, in `text` unless
    /// `--reveal` was given.
    fn redact_text(&self, text: &str, hidden: Option<MacAddr>) -> String {
        if self.settings.reveal {
            text.to_string()
        } else {
            crate::link::redact::text(text, hidden)
        }
    }

    /// Formats `address` for a log line: redacted unless `--reveal` when it is the address this
    /// link must hide, its permanent address, or any link's recorded reference, because an
    /// address copied from another link identifies that link's hardware just as well.
    fn show_address(&self, address: MacAddr, item: &Item) -> String {
        let hidden_here =
            item.baseline.address() == Some(address) || item.link.permanent == Some(address);
        let hidden_elsewhere = self
            .references_cache
            .as_ref()
            .is_some_and(|references| references.contains_address(address));
        if hidden_here || hidden_elsewhere {
            self.show_hidden(address)
        } else {
            address.to_string()
        }
    }

    /// Formats the policy's label, which is the address itself for an explicit address policy.
    fn show_label(&self, item: &Item) -> String {
        match item.plan.label.parse::<MacAddr>() {
            Ok(address) => self.show_address(address, item),
            Err(_) => item.plan.label.to_string(),
        }
    }

    fn show_hidden(&self, address: MacAddr) -> String {
        if self.settings.reveal {
            address.to_string()
        } else {
            address.redacted()
        }
    }
}

/// Returns the `IFLA_INFO_KIND` of a virtual Ethernet link, which its notification contains.
/// A link without one (a physical card, Wi-Fi) needs sysfs to tell what it is.
fn virtual_kind(link: &Link) -> Option<&str> {
    link.info_kind
        .as_deref()
        .filter(|_| link.link_type == crate::link::ARPHRD_ETHER && !link.wireless)
}

/// Returns the stronger of two triggers for the same link within one batch.
fn stronger(first: Trigger, second: Trigger) -> Trigger {
    let rank = |trigger: Trigger| match trigger {
        Trigger::Appeared => 4,
        Trigger::WentDown => 3,
        Trigger::Resumed => 2,
        Trigger::Dump => 1,
        Trigger::Changed => 0,
    };
    if rank(second) > rank(first) {
        second
    } else {
        first
    }
}

fn failure_mode(policy: &LinkPolicy) -> AfterFailure {
    match policy.on_failure.value {
        OnFailure::Down => AfterFailure::StayDown,
        OnFailure::Warn => AfterFailure::RestoreAdminState,
    }
}

/// Returns the origin of the link's cloned-mac-address, or why the link is not managed.
fn origin_of(policy: &LinkPolicy) -> String {
    if !policy.managed {
        return policy.reason.to_string();
    }
    match &policy.cloned_mac_address.source {
        Source::Configured(origin) => origin.to_string(),
        other => format!("{} ({other})", policy.cloned_mac_address_key()),
    }
}

/// Returns whether two records have the same content, ignoring when they were written.
fn same_outcome(old: &LinkRecord, new: &LinkRecord) -> bool {
    let mut old = old.clone();
    old.time = new.time;
    old == *new
}
