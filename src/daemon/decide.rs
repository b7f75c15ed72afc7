//! The daemon's decisions: given what the kernel reports about one link, what the policy wants and
//! what the daemon remembers, choose the one action to take. Pure logic, no system calls, so every
//! rule below is covered by unit tests.
//!
//! The rules, in order:
//! - An unmanaged link, or one whose policy keeps its address (`preserve`), is left alone.
//! - A link that carries the address it must hide is given its policy address. The address to hide
//!   is the permanent address, or the reference address recorded when macveil first saw the link.
//!   A link that is down gets the address in place. A link that is up is taken down, changed and
//!   brought back up, except on the first start of a boot when the operator did not ask to change
//!   running links.
//! - A link that carries any other address is left alone, because another program choosing its own
//!   random or stable address is fine and fighting over two anonymized addresses helps nobody.
//! - A `random` link that goes down gets its next address at once, unless another program manages
//!   its address, so the new address is in place whenever anything raises the link again.
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
    /// This is the first daemon start of the boot and the operator did not ask to change links that
    /// are already up (`--now`, `macveil.apply-to-running=yes`).
    pub spare_running_links: bool,
    /// Another program (NetworkManager) manages this link's address with a policy of its own.
    pub managed_elsewhere: bool,
}

/// The action for one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// The link is up with the address it must hide and is left up, because this is the first
    /// start of the boot. It is reported as exposed.
    ReportExposed,
    /// Set this address while the link is down.
    SetWhileDown(MacAddr),
    /// Take the link down, set this address, bring it back up.
    Cycle(MacAddr),
    /// The hardware address came back too often: take the link down and leave it down.
    GiveUp,
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
        Intent::Random => None,
        Intent::Fixed(address) => Some(address),
    };

    let exposed = link.hidden == Some(link.current);
    if !exposed {
        // A random link gets its next address as soon as it goes down, unless another program
        // owns its address. Every other anonymized address is left as it is.
        let rotate = matches!(trigger, Trigger::WentDown | Trigger::Resumed)
            && intent == Intent::Random
            && !link.is_up
            && !context.managed_elsewhere;
        return if rotate {
            Action::SetWhileDown(next_random())
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
    if context.spare_running_links && trigger == Trigger::Dump {
        return Action::ReportExposed;
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
        };
        let at_startup = run(
            Trigger::Dump,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(at_startup, Action::ReportExposed);

        // A link that is down at startup is still changed, and a later change is enforced.
        let down = run(
            Trigger::Dump,
            link(false, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(down, Action::SetWhileDown(STABLE));
        let later = run(
            Trigger::Changed,
            link(true, HARDWARE),
            Intent::Fixed(STABLE),
            context,
        );
        assert_eq!(later, Action::Cycle(STABLE));
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
    fn random_not_rotated_when_managed_elsewhere() {
        let context = Context {
            spare_running_links: false,
            managed_elsewhere: true,
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
