//! Helper threads that run partitions through windows of virtual time.
//!
//! A window holds from a few to a few thousand events, tens to hundreds of
//! microseconds of work, and a run has hundreds of thousands of them. Waking
//! a sleeping thread costs about as much as a short window, so helpers spin
//! while they wait (yielding after a while) instead of sleeping, and the
//! partitions travel to them by value through one mutex each.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Scope;

/// Spins before a waiting thread starts yielding its core.
const SPINS_BEFORE_YIELD: u32 = 1 << 10;

/// Work handed to the helpers: one slot per helper.
pub(super) struct Crew<P> {
    slots: Vec<Mutex<Option<P>>>,
    /// Bumped for every window; the window's end is in `end`.
    window: AtomicU64,
    end: AtomicU64,
    /// Helpers done with the current window.
    done: AtomicUsize,
    stop: AtomicBool,
    /// Helpers whose thread still runs (a panic ends one early).
    alive: AtomicUsize,
}

/// Something a helper can run through a window.
pub(super) trait Windowed: Send {
    /// Runs every event due before `end`.
    fn run_window(&mut self, end: u64);
}

impl<P: Windowed> Crew<P> {
    /// A crew of `helpers` threads, not yet started.
    pub(super) fn new(helpers: usize) -> Self {
        Crew {
            slots: (0..helpers).map(|_| Mutex::new(None)).collect(),
            window: AtomicU64::new(0),
            end: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
        }
    }

    /// Starts the helper threads in `scope`; they wait for windows until
    /// the returned guard is dropped (also when this thread panics, so that
    /// the scope can end).
    pub(super) fn start<'scope, 'env>(
        &'scope self,
        scope: &'scope Scope<'scope, 'env>,
    ) -> Dismiss<'scope, P>
    where
        P: 'scope,
    {
        for slot in 0..self.slots.len() {
            self.alive.fetch_add(1, Ordering::AcqRel);
            scope.spawn(move || {
                let _alive = Alive(&self.alive);
                self.serve(slot);
            });
        }
        Dismiss(self)
    }

    fn serve(&self, slot: usize) {
        let mut seen = 0;
        loop {
            let mut spins = 0u32;
            loop {
                let window = self.window.load(Ordering::Acquire);
                if window != seen {
                    seen = window;
                    break;
                }
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                pause(&mut spins);
            }
            let end = self.end.load(Ordering::Acquire);
            if let Some(part) = self.slots[slot].lock().expect("not poisoned").as_mut() {
                part.run_window(end);
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Runs `mine` on this thread and `theirs`, one each, on the helpers,
    /// all up to `end`; returns when every one is done.
    pub(super) fn run(&self, end: u64, mine: &mut P, theirs: &mut Vec<P>) {
        debug_assert_eq!(theirs.len(), self.slots.len());
        for (slot, part) in self.slots.iter().zip(theirs.drain(..)) {
            *slot.lock().expect("not poisoned") = Some(part);
        }
        self.done.store(0, Ordering::Release);
        self.end.store(end, Ordering::Release);
        self.window.fetch_add(1, Ordering::AcqRel);
        mine.run_window(end);
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < self.slots.len() {
            assert_eq!(
                self.alive.load(Ordering::Acquire),
                self.slots.len(),
                "a simulator helper thread died"
            );
            pause(&mut spins);
        }
        for slot in &self.slots {
            theirs.push(slot.lock().expect("not poisoned").take().expect("returned"));
        }
    }
}

/// Dismisses the crew when dropped.
pub(super) struct Dismiss<'a, P>(&'a Crew<P>);

impl<P> Drop for Dismiss<'_, P> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

/// Counts a helper thread out when it ends, by return or by panic.
struct Alive<'a>(&'a AtomicUsize);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One round of waiting: a spin hint at first, then a yield of the core.
fn pause(spins: &mut u32) {
    if *spins < SPINS_BEFORE_YIELD {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
