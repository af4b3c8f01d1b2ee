//! Virtual time: the [`VirtualClock`] devices read, the [`ClockSource`] it follows, and the [`Timers`]
//! deadline list that replaces polling.
//!
//! Time is nanoseconds since the machine started, a `u64` on every host. The clock samples its source on
//! every [`VirtualClock::now`] (a PIT count read in a calibration loop must see time move) and never goes
//! backwards. Natively the source is the host's monotonic clock ([`HostClock`]); on wasm32 the JS host pushes
//! its `performance.now()` into a [`ManualClock`] (`std::time::Instant` panics on wasm32-unknown-unknown, so
//! `HostClock` does not exist there); tests drive a `ManualClock` by hand.
//!
//! Devices schedule their next event (the PIT's next output edge) on [`Timers`]; the machine loop asks for
//! [`Timers::next_deadline`] to know how long `hlt` may sleep, and calls [`Timers::run_expired`]. A timer's
//! callback runs with no borrow of the list held, so it may re-arm itself.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Where virtual time comes from.
pub trait ClockSource {
    /// Nanoseconds since an arbitrary origin; consecutive calls should not decrease (the clock guards anyway).
    fn now_ns(&self) -> u64;
}

/// The host's monotonic clock, from the moment the source was made.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct HostClock {
    start: std::time::Instant,
}

#[cfg(not(target_arch = "wasm32"))]
impl HostClock {
    /// A clock reading 0 now.
    pub fn new() -> HostClock {
        HostClock {
            start: std::time::Instant::now(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for HostClock {
    fn default() -> Self {
        HostClock::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ClockSource for HostClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock set from outside: by tests, and on wasm32 by the JS host before each slice of execution. Clones
/// share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ns: Rc<Cell<u64>>,
}

impl ManualClock {
    /// A clock reading 0.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Sets the time.
    pub fn set(&self, ns: u64) {
        self.ns.set(ns);
    }

    /// Moves the time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.ns.set(self.ns.get().saturating_add(ns));
    }
}

impl ClockSource for ManualClock {
    fn now_ns(&self) -> u64 {
        self.ns.get()
    }
}

/// The machine's virtual clock: its source, made monotonic.
pub struct VirtualClock {
    source: Box<dyn ClockSource>,
    last: Cell<u64>,
}

impl std::fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualClock")
            .field("last_ns", &self.last.get())
            .finish()
    }
}

impl VirtualClock {
    /// A clock following `source`, shared by the devices that read time.
    pub fn new(source: Box<dyn ClockSource>) -> Rc<VirtualClock> {
        Rc::new(VirtualClock {
            last: Cell::new(source.now_ns()),
            source,
        })
    }

    /// A clock over a new [`ManualClock`], and that clock to drive it (tests, wasm32).
    pub fn manual() -> (Rc<VirtualClock>, ManualClock) {
        let m = ManualClock::new();
        (VirtualClock::new(Box::new(m.clone())), m)
    }

    /// The current virtual time in nanoseconds; never less than an earlier answer.
    pub fn now(&self) -> u64 {
        let t = self.source.now_ns().max(self.last.get());
        self.last.set(t);
        t
    }
}

/// Names a timer in a [`Timers`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(usize);

/// What runs when a timer expires; it gets the time it is run at.
pub type TimerCallback = Rc<dyn Fn(u64)>;

struct Timer {
    deadline: Option<u64>,
    callback: TimerCallback,
}

/// The machine's timers: callbacks with optional deadlines in virtual nanoseconds.
#[derive(Default)]
pub struct Timers {
    timers: RefCell<Vec<Timer>>,
}

impl std::fmt::Debug for Timers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let deadlines: Vec<_> = self.timers.borrow().iter().map(|t| t.deadline).collect();
        f.debug_struct("Timers").field("deadlines", &deadlines).finish()
    }
}

impl Timers {
    /// An empty list, shared by the devices that schedule on it and the machine loop.
    pub fn new() -> Rc<Timers> {
        Rc::new(Timers::default())
    }

    /// Registers a disarmed timer that will run `callback`.
    pub fn add(&self, callback: TimerCallback) -> TimerId {
        let mut timers = self.timers.borrow_mut();
        timers.push(Timer {
            deadline: None,
            callback,
        });
        TimerId(timers.len() - 1)
    }

    /// Arms `id` to expire at `deadline_ns` (replacing an earlier deadline).
    pub fn arm(&self, id: TimerId, deadline_ns: u64) {
        if let Some(t) = self.timers.borrow_mut().get_mut(id.0) {
            t.deadline = Some(deadline_ns);
        }
    }

    /// Disarms `id`.
    pub fn cancel(&self, id: TimerId) {
        if let Some(t) = self.timers.borrow_mut().get_mut(id.0) {
            t.deadline = None;
        }
    }

    /// The deadline of `id`, when armed.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        self.timers.borrow().get(id.0).and_then(|t| t.deadline)
    }

    /// The earliest deadline of all armed timers: how long the loop may sleep in `hlt`.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.borrow().iter().filter_map(|t| t.deadline).min()
    }

    /// Runs every timer whose deadline is at or before `now`, earliest first, each at most once per call
    /// (a callback that re-arms in the past waits for the next call instead of looping), and returns how
    /// many ran. Expired timers are disarmed before their callback runs.
    pub fn run_expired(&self, now: u64) -> usize {
        let mut due: Vec<(u64, usize, TimerCallback)> = {
            let mut timers = self.timers.borrow_mut();
            timers
                .iter_mut()
                .enumerate()
                .filter_map(|(i, t)| match t.deadline {
                    Some(d) if d <= now => {
                        t.deadline = None;
                        Some((d, i, t.callback.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        due.sort_by_key(|&(d, i, _)| (d, i));
        for (_, _, cb) in &due {
            cb(now);
        }
        due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_follows_source_and_never_goes_back() {
        let (clock, src) = VirtualClock::manual();
        assert_eq!(clock.now(), 0);
        src.set(500);
        assert_eq!(clock.now(), 500);
        src.set(100);
        assert_eq!(clock.now(), 500);
        src.advance(1000);
        assert_eq!(clock.now(), 1100);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn host_clock_moves_forward() {
        let clock = VirtualClock::new(Box::new(HostClock::new()));
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(clock.now() >= a + 1_000_000);
    }

    #[test]
    fn next_deadline_is_the_earliest_armed() {
        let timers = Timers::new();
        let a = timers.add(Rc::new(|_| {}));
        let b = timers.add(Rc::new(|_| {}));
        assert_eq!(timers.next_deadline(), None);
        timers.arm(a, 300);
        timers.arm(b, 200);
        assert_eq!(timers.next_deadline(), Some(200));
        timers.cancel(b);
        assert_eq!(timers.next_deadline(), Some(300));
        assert_eq!(timers.deadline(a), Some(300));
    }

    #[test]
    fn run_expired_runs_due_timers_in_deadline_order() {
        let timers = Timers::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let mk = |name: &'static str| {
            let log = log.clone();
            Rc::new(move |now: u64| log.borrow_mut().push((name, now))) as TimerCallback
        };
        let a = timers.add(mk("a"));
        let b = timers.add(mk("b"));
        let c = timers.add(mk("c"));
        timers.arm(a, 20);
        timers.arm(b, 10);
        timers.arm(c, 99);
        assert_eq!(timers.run_expired(50), 2);
        assert_eq!(*log.borrow(), vec![("b", 50), ("a", 50)]);
        assert_eq!(timers.next_deadline(), Some(99));
    }

    #[test]
    fn callback_may_rearm_itself_without_looping() {
        let timers = Timers::new();
        let count = Rc::new(Cell::new(0));
        let id_cell = Rc::new(Cell::new(None));
        let (t2, c2, i2) = (Rc::downgrade(&timers), count.clone(), id_cell.clone());
        let id = timers.add(Rc::new(move |now| {
            c2.set(c2.get() + 1);
            if let (Some(t), Some(id)) = (t2.upgrade(), i2.get()) {
                t.arm(id, now); // already due: must wait for the next run
            }
        }));
        id_cell.set(Some(id));
        timers.arm(id, 5);
        assert_eq!(timers.run_expired(10), 1);
        assert_eq!(count.get(), 1);
        assert_eq!(timers.next_deadline(), Some(10));
    }
}
