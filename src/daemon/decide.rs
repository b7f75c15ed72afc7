//! The daemon's decisions: given what the kernel reports about one link, what the policy wants and
//! what the daemon remembers, choose the one action to take. Pure logic, no system calls, so every
//! rule below is covered by unit tests.
//!
//! The rules, in order:
//! - An unmanaged link, or one whose policy keeps its address (`preserve`, `permanent`), is left
//!   alone.
//! - A link that carries any address other than the one it must hide is left alone, because
//!   another program choosing its own random or stable address is fine and fighting over two
//!   anonymized addresses helps nobody. Two exceptions rotate a `random` link that no other
//!   program manages: when it goes down it gets its next address at once, so the new address is
//!   in place whenever anything raises it again, and after a resume from suspend it gets a new
//!   one whether it is up or down.
//! - A link that carries the address it must hide is given its policy address. The address to
//!   hide is the permanent address, or the reference address recorded when macveil first saw the
//!   link. A link that is down gets the address in place. A link that is up is taken down,
//!   changed and brought back up, except a link the daemon spares: one found up at the daemon's
//!   first start of the boot, when the operator did not ask to change running links.
//! - A new link that is down with the address it must hide is left to macveil's udev rule while
//!   udev has not finished with it, because the daemon and the rule's helper would otherwise
//!   both change it at once. If anything raises it with that address first, the rule above
//!   takes it down and changes it.
//! - A link whose policy address cannot be derived yet (the secret key is unreadable) is taken
//!   down when it is up with the address it must hide, and otherwise waits.
//! - A link whose hardware address keeps coming back is left down after a few undo attempts per
//!   minute.

use std::time::{Duration, Instant};

use crate::addr::MacAddr;

/// The policy's request for one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// The link is not managed by macveil.
    Unmanaged,
    /// Keep whatever address the link has (`preserve`).
    Preserve,
    /// Use the permanent address (`permanent`); nothing is hidden.
    Permanent,
    /// A fresh random address for each activation (`random`).
    Random,
    /// A deterministic address (`stable`, `stable-ssid` or an explicit address) that the caller has
    /// already derived.
    Fixed(MacAddr),
    /// The policy wants an address that cannot be derived yet, for example a `stable` one while
    /// the secret key is unreadable.
    Blocked,
}

/// The event that makes the daemon look at a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The link was found in the initial dump at startup or after a netlink overrun.
    Dump,
    /// The kernel announced a new link.
    Appeared,
    /// The kernel announced a change of address or flags.
    Changed,
    /// The link went from administratively up to down.
    WentDown,
    /// The system resumed from suspend.
    Resumed,
}

/// The facts about one link that the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkView {
    /// Whether the link is administratively up (IFF_UP).
    pub is_up: bool,
    /// The current address.
    pub current: MacAddr,
    /// The address to hide: the permanent address, else the recorded reference address.
    pub hidden: Option<MacAddr>,
}

/// The daemon-wide switches that change decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The link was up with the address it must hide at the daemon's first start of the boot, has
    /// stayed up with it since, and the operator did not ask to change running links (`--now`,
    /// `macveil.apply-to-running=yes`).
    pub spare_running_links: bool,
    /// Another program (NetworkManager) manages this link's address with a policy of its own.
    pub managed_elsewhere: bool,
    /// udev has not finished with this link yet, and macveil's udev rule will set its address.
    pub udev_pending: bool,
}

/// The action for one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// The link is up with the address it must hide and is left up, because the daemon spares
    /// it. It is reported as exposed.
    ReportExposed,
    /// Set this address while the link is down.
    SetWhileDown(MacAddr),
    /// Take the link down, set this address, bring it back up.
    Cycle(MacAddr),
    /// The hardware address came back too often: take the link down and leave it down.
    GiveUp,
    /// The policy address cannot be derived yet: take the link down until it can.
    HoldDown,
    /// The link is down and macveil's udev rule is about to set its address: leave it to the
    /// rule.
    AwaitUdev,
}

/// A random address to use for the next activation, drawn by the caller only when needed.
pub type NextRandom<'a> = &'a mut dyn FnMut() -> MacAddr;

/// The maximum number of times per minute the daemon undoes the hardware address on one link
/// before it leaves the link down.
pub const MAX_UNDO_PER_MINUTE: usize = 3;

/// Undo attempts on one link within the last minute.
#[derive(Debug, Default, Clone)]
pub struct UndoHistory {
    attempts: Vec<Instant>,
}

impl UndoHistory {
    /// Records an attempt at `now` and returns whether it stays within the limit.
    pub fn record(&mut self, now: Instant) -> bool {
        let window = Duration::from_secs(60);
        self.attempts
            .retain(|attempt| now.saturating_duration_since(*attempt) < window);
        self.attempts.push(now);
        self.attempts.len() <= MAX_UNDO_PER_MINUTE
    }
}

/// Chooses the action for one link.
///
/// `next_random` is called only when a `random` link needs a new address.
pub fn decide(
    trigger: Trigger,
    link: LinkView,
    intent: Intent,
    context: Context,
    history: &mut UndoHistory,
    now: Instant,
    next_random: NextRandom<'_>,
) -> Action {
    let target = match intent {
        Intent::Unmanaged | Intent::Preserve | Intent::Permanent => return Action::None,
        Intent::Random | Intent::Blocked => None,
        Intent::Fixed(address) => Some(address),
    };

    let exposed = link.hidden == Some(link.current);
    if !exposed {
        let rotates = intent == Intent::Random && !context.managed_elsewhere;
        return match trigger {
            Trigger::WentDown if rotates && !link.is_up => Action::SetWhileDown(next_random()),
            Trigger::Resumed if rotates && !link.is_up => Action::SetWhileDown(next_random()),
            Trigger::Resumed if rotates => Action::Cycle(next_random()),
            _ => Action::None,
        };
    }

    if link.is_up && context.spare_running_links {
        return Action::ReportExposed;
    }
    if !link.is_up && context.udev_pending {
        return Action::AwaitUdev;
    }
    if intent == Intent::Blocked {
        return if link.is_up {
            Action::HoldDown
        } else {
            Action::None
        };
    }
    let target = match target {
        Some(address) => address,
        None => next_random(),
    };
    if !link.is_up {
        return Action::SetWhileDown(target);
    }
    if history.record(now) {
        Action::Cycle(target)
    } else {
        Action::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDWARE: MacAddr = MacAddr([0x3c, 0x22, 0xfb, 1, 2, 3]);
    const STABLE: MacAddr = MacAddr([0x06, 0x0d, 0xcd, 0x0c, 0x9e, 0x2c]);
    const RANDOM: MacAddr = MacAddr([0x12, 1, 2, 3, 4, 5]);
    const OTHER: MacAddr = MacAddr([0x2a, 9, 9, 9, 9, 9]);

    fn link(is_up: bool, current: MacAddr) -> LinkView {
        LinkView {
            is_up,
            current,
            hidden: Some(HARDWARE),
        }
    }

    fn enforce() -> Context {
        Context {
            spare_running_links: false,
            managed_elsewhere: false,
            udev_pending: false,
        }
    }

    fn run(trigger: Trigger, view: LinkView, intent: Intent, context: Context) -> Action {
        let mut history = UndoHistory::default();
        decide(
            trigger,
            view,
            intent,
            context,
            &mut history,
            Instant::now(),
            &mut || RANDOM,
        )
    }

    #[test]
    fn unmanaged_and_preserve_are_left_alone() {
        for intent in [Intent::Unmanaged, Intent::Preserve, Intent::Permanent] {
            let action = run(Trigger::Appeared, link(true, HARDWARE), intent, enforce());
            assert_eq!(action, Action::None, "{intent:?}");
        }
    }

    #[test]
    fn new_down_link_gets_address_in_place() {
        let action = run(
            Trigger::Appeared,
            link(false, HARDWARE),
            Intent::Fixed(STABLE),
            enforce(),
        );
        assert_eq!(action, Action::SetWhileDown(STABLE));
    }

    #[test]
    fn new_down_link_left_to_udev_rule() {
        let context = Context {
            udev_pending: true,
            ..enforce()
        };
        let down = run(
            Trigger::Appeared,
            link(false, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(down, Action::AwaitUdev);

        // Raised with the address it must hide before the rule ran: undone at once.
        let raised = run(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(raised, Action::Cycle(STABLE));

        // The rule's own address is not fought.
        let set_by_rule = run(
            Trigger::Changed,
            link(false, OTHER),
            Intent::Random,
            context,
        );
        assert_eq!(set_by_rule, Action::None);
    }

    #[test]
    fn exposed_up_link_is_cycled() {
        let action = run(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Random,
            enforce(),
        );
        assert_eq!(action, Action::Cycle(RANDOM));
    }

    #[test]
    fn first_start_spares_running_links() {
        let context = Context {
            spare_running_links: true,
            managed_elsewhere: false,
            udev_pending: false,
        };
        let at_startup = run(
            Trigger::Dump,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(at_startup, Action::ReportExposed);

        // A spared link stays spared on later events while it keeps its address.
        let later = run(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(later, Action::ReportExposed);

        // A link that is down is changed even when running links are spared.
        let down = run(
            Trigger::Dump,
            link(false, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(down, Action::SetWhileDown(STABLE));

        // Without the exemption the same link is cycled.
        let enforced = run(
            Trigger::Dump,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            enforce(),
        );
        assert_eq!(enforced, Action::Cycle(STABLE));
    }

    #[test]
    fn other_anonymized_address_is_not_fought() {
        let action = run(
            Trigger::Changed,
            link(true, OTHER),
            Intent::Fixed(STABLE),
            enforce(),
        );
        assert_eq!(action, Action::None);
    }

    #[test]
    fn random_rotates_when_link_goes_down() {
        let action = run(
            Trigger::WentDown,
            link(false, OTHER),
            Intent::Random,
            enforce(),
        );
        assert_eq!(action, Action::SetWhileDown(RANDOM));

        let resumed = run(
            Trigger::Resumed,
            link(false, OTHER),
            Intent::Random,
            enforce(),
        );
        assert_eq!(resumed, Action::SetWhileDown(RANDOM));
    }

    #[test]
    fn random_up_link_rotates_on_resume() {
        let resumed = run(
            Trigger::Resumed,
            link(true, OTHER),
            Intent::Random,
            enforce(),
        );
        assert_eq!(resumed, Action::Cycle(RANDOM));

        // A stable link keeps its address across suspend.
        let stable = run(
            Trigger::Resumed,
            link(true, STABLE),
            Intent::Fixed(STABLE),
            enforce(),
        );
        assert_eq!(stable, Action::None);
    }

    #[test]
    fn random_up_link_not_rotated_on_change() {
        let action = run(
            Trigger::Changed,
            link(true, OTHER),
            Intent::Random,
            enforce(),
        );
        assert_eq!(action, Action::None);
    }

    #[test]
    fn blocked_link_is_held_down_when_exposed() {
        let up = run(
            Trigger::Appeared,
            link(true, HARDWARE),
            Intent::Blocked,
            enforce(),
        );
        assert_eq!(up, Action::HoldDown);

        let down = run(
            Trigger::Appeared,
            link(false, HARDWARE),
            Intent::Blocked,
            enforce(),
        );
        assert_eq!(down, Action::None);

        let anonymized = run(
            Trigger::Changed,
            link(true, OTHER),
            Intent::Blocked,
            enforce(),
        );
        assert_eq!(anonymized, Action::None);

        let spared = run(
            Trigger::Dump,
            link(true, HARDWARE),
            Intent::Blocked,
            Context {
                spare_running_links: true,
                managed_elsewhere: false,
                udev_pending: false,
            },
        );
        assert_eq!(spared, Action::ReportExposed);
    }

    #[test]
    fn random_not_rotated_when_managed_elsewhere() {
        let context = Context {
            spare_running_links: false,
            managed_elsewhere: true,
            udev_pending: false,
        };
        let action = run(
            Trigger::WentDown,
            link(false, OTHER),
            Intent::Random,
            context,
        );
        assert_eq!(action, Action::None);

        // The hardware address is still undone.
        let exposed = run(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Random,
            context,
        );
        assert_eq!(exposed, Action::Cycle(RANDOM));
    }

    #[test]
    fn stable_not_rotated_when_link_goes_down() {
        let action = run(
            Trigger::WentDown,
            link(false, STABLE),
            Intent::Fixed(STABLE),
            enforce(),
        );
        assert_eq!(action, Action::None);
    }

    #[test]
    fn repeated_undo_gives_up() {
        let mut history = UndoHistory::default();
        let start = Instant::now();
        let mut actions = Vec::new();
        for second in 0..(MAX_UNDO_PER_MINUTE as u64 + 1) {
            actions.push(decide(
                Trigger::Changed,
                link(true, HARDWARE),
                Intent::Fixed(STABLE),
                enforce(),
                &mut history,
                start + Duration::from_secs(second),
                &mut || RANDOM,
            ));
        }
        assert!(
            actions[..MAX_UNDO_PER_MINUTE]
                .iter()
                .all(|action| *action == Action::Cycle(STABLE)),
            "{actions:?}"
        );
        assert_eq!(actions[MAX_UNDO_PER_MINUTE], Action::GiveUp);

        // A minute later the link may be tried again.
        let later = decide(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            enforce(),
            &mut history,
            start + Duration::from_secs(200),
            &mut || RANDOM,
        );
        assert_eq!(later, Action::Cycle(STABLE));
    }

    #[test]
    fn unknown_hidden_address_is_never_exposed() {
        let view = LinkView {
            is_up: true,
            current: HARDWARE,
            hidden: None,
        };
        let action = run(Trigger::Changed, view, Intent::Fixed(STABLE), enforce());
        assert_eq!(action, Action::None);
    }
}
