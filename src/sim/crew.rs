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

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// A partition that records every window it ran and on which thread.
    struct Recorder {
        name: usize,
        windows: Vec<(u64, ThreadId)>,
        /// Panics in the window that ends here.
        panic_at: Option<u64>,
    }

    impl Recorder {
        fn new(name: usize) -> Self {
            Recorder {
                name,
                windows: Vec::new(),
                panic_at: None,
            }
        }
    }

    impl Windowed for Recorder {
        fn run_window(&mut self, end: u64) {
            assert_ne!(self.panic_at, Some(end), "partition {} fails", self.name);
            self.windows.push((end, std::thread::current().id()));
        }
    }

    #[test]
    fn every_partition_runs_each_window_once_and_comes_back_in_order() {
        const HELPERS: usize = 3;
        let crew = Crew::new(HELPERS);
        let mut mine = Recorder::new(0);
        let mut theirs: Vec<Recorder> = (1..=HELPERS).map(Recorder::new).collect();
        std::thread::scope(|scope| {
            let _dismiss = crew.start(scope);
            for end in [10, 20, 35] {
                crew.run(end, &mut mine, &mut theirs);
            }
        });
        let names: Vec<usize> = theirs.iter().map(|part| part.name).collect();
        assert_eq!(names, [1, 2, 3], "partitions return to the slots they left");
        let me = std::thread::current().id();
        assert_eq!(mine.windows, [(10, me), (20, me), (35, me)]);
        let mut helper_threads = Vec::new();
        for part in &theirs {
            let ends: Vec<u64> = part.windows.iter().map(|&(end, _)| end).collect();
            assert_eq!(ends, [10, 20, 35], "partition {}", part.name);
            let thread = part.windows[0].1;
            assert_ne!(thread, me, "a helper's partition runs on the helper");
            assert!(
                part.windows.iter().all(|&(_, t)| t == thread),
                "a slot keeps its helper thread"
            );
            helper_threads.push(thread);
        }
        helper_threads.dedup();
        assert_eq!(helper_threads.len(), HELPERS, "one thread per helper");
    }

    #[test]
    fn a_helper_that_panics_stops_the_run_instead_of_hanging_it() {
        let crew = Crew::new(2);
        let mut mine = Recorder::new(0);
        let mut theirs = vec![Recorder::new(1), Recorder::new(2)];
        theirs[1].panic_at = Some(20);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|scope| {
                let _dismiss = crew.start(scope);
                crew.run(10, &mut mine, &mut theirs);
                crew.run(20, &mut mine, &mut theirs);
            })
        }));
        let message = outcome.expect_err("the helper's panic reaches the caller");
        let text = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| message.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(text.contains("a simulator helper thread died"), "{text}");
        assert_eq!(mine.windows.len(), 2, "this thread ran both windows");
    }

    #[test]
    fn pause_spins_before_it_yields() {
        let mut spins = 0;
        for _ in 0..SPINS_BEFORE_YIELD + 5 {
            pause(&mut spins);
        }
        assert_eq!(
            spins, SPINS_BEFORE_YIELD,
            "counts spins, then stops counting"
        );
    }
}
