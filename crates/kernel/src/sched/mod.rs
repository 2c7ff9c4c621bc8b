//! Threads and the scheduler.
//!
//! Cooperative and single-CPU today: a thread runs until it blocks, sleeps,
//! yields or exits. All state sits behind one lock taken with interrupts
//! off, and the timer interrupt only wakes the idle wait, so adding
//! preemption means having the timer handler request a reschedule; adding
//! SMP means per-CPU `current` and run queues behind the same interface.
//!
//! `unsafe` here is the stack switch and the pointer to the saved stack
//! pointer it writes; both are justified where they happen.
#![allow(unsafe_code)]

use crate::mem;
use crate::platform::{IrqGuard, hal};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::{Mutex, MutexGuard};

/// Thread id.
pub type Tid = u64;

/// Id of the thread that runs `main`.
pub const MAIN_TID: Tid = 1;
/// How long a user program's thread runs before others that are ready
/// get the CPU (threads of the kernel and of native apps are cooperative).
pub const TIME_SLICE_NS: u64 = 10_000_000;
/// Stack size of a thread spawned without one.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    Running,
    Blocked,
    Exited,
}

struct Thread {
    name: String,
    state: State,
    /// Saved stack pointer while not running.
    sp: u64,
    /// Frames backing the stack, guard page included (`None` for the boot
    /// thread's stack).
    stack: Option<Stack>,
    stack_range: (u64, u64),
    entry: Option<Box<dyn FnOnce() + Send>>,
    joiner: Option<Tid>,
    detached: bool,
    wake_at: Option<u64>,
    /// A thread running a user program: its FPU registers and TLS base,
    /// saved while it does not run.
    #[cfg(feature = "user")]
    user: Option<Box<hal::UserCpuState>>,
}

struct Sched {
    threads: BTreeMap<Tid, Box<Thread>>,
    current: Tid,
    ready: VecDeque<Tid>,
    sleepers: BTreeSet<(u64, Tid)>,
    reap: Vec<Tid>,
    next_tid: Tid,
}

static SCHED: Mutex<Option<Sched>> = Mutex::new(None);
static STACK_LO: AtomicU64 = AtomicU64::new(0);
static STACK_HI: AtomicU64 = AtomicU64::new(0);
/// Things besides timers that can wake a thread (device interrupts).
/// While there are none, "every thread blocked, no timer" is a deadlock.
static EVENT_SOURCES: AtomicUsize = AtomicUsize::new(0);

/// A thread stack: `frames` frames from `base`; the lowest one is an
/// inaccessible guard page when the platform supports it, so an overflow
/// faults (and is reported as one) instead of corrupting memory.
#[derive(Clone, Copy)]
struct Stack {
    base: u64,
    frames: usize,
    guarded: bool,
}

/// Size of the guard page below each thread stack.
pub const GUARD_SIZE: u64 = mem::frames::FRAME_SIZE;

/// Stacks of exited threads, kept (guard page still in place) for the next
/// spawn of the same size. A server with a thread per connection otherwise
/// pays, per connection, a frame allocation and free plus two guard-page
/// changes (two `mprotect` calls on linuxu, about 12% of its CPU time per
/// connection in `perf`). Few enough to hold little memory (16 default
/// stacks: 1.1 MiB), given back when frames run out (a stack of another
/// size, or the heap growing). A fixed array and a count: no allocation
/// under its lock, and all zero bytes at start, so it lies in `.bss` (an
/// array of `Option<Stack>` would be 392 bytes of `.data` in every image:
/// its `None` is not zero).
const STACK_CACHE_MAX: usize = 16;
static STACK_CACHE: Mutex<StackCache> = Mutex::new(StackCache::EMPTY);

struct StackCache {
    /// `stacks[..len]` are cached.
    stacks: [Stack; STACK_CACHE_MAX],
    len: usize,
}

impl StackCache {
    const EMPTY: Self = Self { stacks: [Stack { base: 0, frames: 0, guarded: false }; STACK_CACHE_MAX], len: 0 };

    /// Keeps `s`; false when full.
    fn put(&mut self, s: Stack) -> bool {
        let Some(slot) = self.stacks.get_mut(self.len) else { return false };
        *slot = s;
        self.len += 1;
        true
    }

    /// Takes a cached stack of `frames` frames.
    fn take(&mut self, frames: usize) -> Option<Stack> {
        let i = self.stacks[..self.len].iter().position(|s| s.frames == frames)?;
        self.len -= 1;
        self.stacks.swap(i, self.len);
        Some(self.stacks[self.len])
    }
}

/// Why a thread operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No thread has this id.
    NoSuchThread,
    /// A thread tried to join itself.
    JoinSelf,
    /// The thread was already joined or detached.
    AlreadyJoined,
    /// No memory for the thread's stack or control block.
    OutOfMemory,
}

/// The scheduler lock, held with interrupts off: interrupt handlers wake
/// threads (`wake` takes this lock), so a holder with interrupts on could
/// be interrupted by one that then spins on it forever. Fields drop in
/// order: unlock first, then interrupts back as they were.
struct Guard {
    sched: MutexGuard<'static, Option<Sched>>,
    _irq: IrqGuard,
}

impl core::ops::Deref for Guard {
    type Target = Option<Sched>;
    fn deref(&self) -> &Option<Sched> {
        &self.sched
    }
}

impl core::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Option<Sched> {
        &mut self.sched
    }
}

impl Sched {
    fn thread(&mut self, tid: Tid) -> &mut Thread {
        self.threads.get_mut(&tid).expect("scheduler lost a thread")
    }

    fn make_ready(&mut self, tid: Tid) {
        let Some(t) = self.threads.get_mut(&tid) else { return };
        if t.state == State::Blocked {
            t.state = State::Ready;
            if let Some(d) = t.wake_at.take() {
                self.sleepers.remove(&(d, tid));
            }
            self.ready.push_back(tid);
        }
    }

    fn wake_sleepers(&mut self, now: u64) {
        while let Some(&(d, tid)) = self.sleepers.first() {
            if d > now {
                break;
            }
            self.make_ready(tid);
        }
    }
}

fn lock() -> Guard {
    let irq = IrqGuard::new();
    Guard { sched: SCHED.lock(), _irq: irq }
}

/// Adopts the running boot context as the main thread.
pub(crate) fn init(boot_stack: (u64, u64)) {
    let main = Box::new(Thread {
        name: "main".into(),
        state: State::Running,
        sp: 0,
        stack: None,
        stack_range: boot_stack,
        entry: None,
        joiner: None,
        detached: false,
        wake_at: None,
        #[cfg(feature = "user")]
        user: None,
    });
    let mut threads = BTreeMap::new();
    threads.insert(MAIN_TID, main);
    STACK_LO.store(boot_stack.0, Ordering::Relaxed);
    STACK_HI.store(boot_stack.1, Ordering::Relaxed);
    *lock() = Some(Sched {
        threads,
        current: MAIN_TID,
        ready: VecDeque::new(),
        sleepers: BTreeSet::new(),
        reap: Vec::new(),
        next_tid: MAIN_TID + 1,
    });
}

/// Picks the next thread and switches to it. The current thread's state
/// must already say why it stops (Ready and queued, Blocked, Exited).
/// Interrupts are off (the caller holds an `IrqGuard` of its own: `g`'s
/// goes with the lock, before the idle wait and the switch).
fn reschedule(mut g: Guard) {
    loop {
        let s = g.as_mut().expect("scheduler not initialised");
        s.wake_sleepers(hal().clock.monotonic_ns());
        if let Some(next) = s.ready.pop_front() {
            let cur = s.current;
            if next == cur {
                s.thread(cur).state = State::Running;
                return;
            }
            let (next_sp, range) = {
                let t = s.thread(next);
                t.state = State::Running;
                (t.sp, t.stack_range)
            };
            #[cfg(feature = "user")]
            if let (Some(u), Some(um)) = (s.thread(cur).user.as_deref_mut(), hal().user) {
                um.save(u);
            }
            #[cfg(feature = "user")]
            if let (Some(u), Some(um)) = (s.thread(next).user.as_deref(), hal().user) {
                um.load(u, range.1);
                // A program thread runs for a time slice at most.
                hal().clock.arm_timer(hal().clock.monotonic_ns().saturating_add(TIME_SLICE_NS));
            }
            let save: *mut u64 = &mut s.thread(cur).sp;
            s.current = next;
            STACK_LO.store(range.0, Ordering::Relaxed);
            STACK_HI.store(range.1, Ordering::Relaxed);
            drop(g);
            // SAFETY: `save` points into a boxed Thread that stays in the map
            // until it is reaped, which happens only after it has switched
            // away; `next_sp` was saved by a previous switch or init_stack.
            unsafe { hal().cpu.switch(save, next_sp) };
            reap();
            return;
        }
        if s.thread(s.current).state == State::Running {
            return; // a yield with nobody else ready
        }
        let deadline = s.sleepers.first().map(|&(d, _)| d);
        if deadline.is_none() && EVENT_SOURCES.load(Ordering::Relaxed) == 0 {
            drop(g);
            crate::exit::deadlock();
        }
        drop(g);
        hal().clock.wait_for_event(deadline);
        g = lock();
    }
}

/// Frees threads that exited detached. Runs on a different stack than theirs.
fn reap() {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    let dead: Vec<Tid> = s.reap.iter().copied().filter(|&t| t != cur).collect();
    s.reap.retain(|&t| t == cur);
    let freed: Vec<Box<Thread>> = dead.iter().filter_map(|t| s.threads.remove(t)).collect();
    drop(g);
    for t in freed {
        free_stack(&t);
    }
}

fn free_stack(t: &Thread) {
    if let Some(s) = &t.stack
        && !STACK_CACHE.lock().put(*s)
    {
        release_stack(s);
    }
}

fn release_stack(s: &Stack) {
    if s.guarded {
        hal().memory.set_guard_page(s.base, false);
    }
    mem::free_frames(s.base, s.frames);
}

/// Gives the cached stacks back to the frame allocator; returns whether
/// there were any. For callers that ran out of frames.
pub fn release_cached_stacks() -> bool {
    let all = core::mem::replace(&mut *STACK_CACHE.lock(), StackCache::EMPTY);
    for s in &all.stacks[..all.len] {
        release_stack(s);
    }
    all.len > 0
}

/// A stack of `frames` frames (guard page included): a cached one, else
/// new frames, giving the cache back first if they run out.
fn take_stack(frames: usize) -> Option<Stack> {
    let cached = STACK_CACHE.lock().take(frames);
    if cached.is_some() {
        return cached;
    }
    let base = match mem::alloc_frames(frames, 1) {
        Some(b) => b,
        None if release_cached_stacks() => mem::alloc_frames(frames, 1)?,
        None => return None,
    };
    let guarded = hal().memory.set_guard_page(base, true);
    Some(Stack { base, frames, guarded })
}

extern "C" fn thread_start(_: usize) -> ! {
    reap();
    let f = {
        let mut g = lock();
        let s = g.as_mut().unwrap();
        let cur = s.current;
        s.thread(cur).entry.take()
    };
    hal().irq.restore(true); // we arrive from `reschedule` with interrupts off
    if let Some(f) = f {
        f();
    }
    exit_current()
}

/// Starts a thread running `f` with a stack of `stack_size` bytes.
pub fn spawn(name: String, stack_size: usize, f: Box<dyn FnOnce() + Send>) -> Result<Tid, Error> {
    let frames = stack_size.max(16 * 1024).div_ceil(mem::frames::FRAME_SIZE as usize) + 1;
    let stack = take_stack(frames).ok_or(Error::OutOfMemory)?;
    let base = stack.base;
    let top = base + (frames as u64) * mem::frames::FRAME_SIZE;
    // SAFETY: the frames belong to this stack alone (new, or from the cache
    // of stacks whose threads have exited and been switched away from).
    let sp = unsafe { hal().cpu.init_stack(top, thread_start, 0) };
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let tid = s.next_tid;
    s.next_tid += 1;
    s.threads.insert(
        tid,
        Box::new(Thread {
            name,
            state: State::Ready,
            sp,
            stack: Some(stack),
            stack_range: (base + GUARD_SIZE, top),
            entry: Some(f),
            joiner: None,
            detached: false,
            wake_at: None,
            #[cfg(feature = "user")]
            user: None,
        }),
    );
    s.ready.push_back(tid);
    Ok(tid)
}

#[cfg(feature = "user")]
/// Makes the running thread a user thread with CPU state `state`, loaded
/// now; returns the top of its kernel stack. Used by [`crate::user`].
pub(crate) fn become_user(state: hal::UserCpuState) -> u64 {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    let t = s.thread(cur);
    let top = t.stack_range.1;
    let u = t.user.insert(Box::new(state));
    if let Some(um) = hal().user {
        um.load(u, top);
    }
    top
}

#[cfg(feature = "user")]
/// Runs `f` on the running thread's user CPU state, if it has one.
pub(crate) fn with_user_state<R>(f: impl FnOnce(&mut hal::UserCpuState) -> R) -> Option<R> {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    s.thread(cur).user.as_deref_mut().map(f)
}

/// Id of the running thread.
pub fn current() -> Tid {
    lock().as_ref().map(|s| s.current).unwrap_or(MAIN_TID)
}

/// Name of the running thread.
pub fn current_name() -> String {
    let g = lock();
    g.as_ref().and_then(|s| s.threads.get(&s.current)).map(|t| t.name.clone()).unwrap_or_else(|| "main".into())
}

/// Same as [`current_name`] but never blocks (for crash reports).
pub fn try_current_name(out: &mut dyn FnMut(&str)) {
    if let Some(g) = SCHED.try_lock()
        && let Some(t) = g.as_ref().and_then(|s| s.threads.get(&s.current))
    {
        out(&t.name);
        return;
    }
    out("?");
}

/// Stack bounds of the running thread.
pub fn current_stack() -> (u64, u64) {
    (STACK_LO.load(Ordering::Relaxed), STACK_HI.load(Ordering::Relaxed))
}

/// Lets other ready threads run before this one continues.
pub fn yield_now() {
    let _irq = IrqGuard::new();
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    s.thread(cur).state = State::Ready;
    s.ready.push_back(cur);
    reschedule(g);
}

#[cfg(feature = "user")]
/// A timer interrupt arrived while the kernel ran (a system call of a
/// user thread, or idle): a user thread keeps a slice timer armed, so that
/// it is interrupted again once back in user mode.
pub fn timer_tick() {
    let user = lock().as_mut().is_some_and(|s| {
        let cur = s.current;
        s.thread(cur).user.is_some()
    });
    if user {
        hal().clock.arm_timer(hal().clock.monotonic_ns().saturating_add(TIME_SLICE_NS));
    }
}

#[cfg(feature = "user")]
/// A time slice ended (a timer interrupt in a user program): wakes the
/// sleepers that are due, lets the ready threads run, and asks for the
/// next slice's interrupt.
pub fn preempt() {
    let _irq = IrqGuard::new();
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let now = hal().clock.monotonic_ns();
    s.wake_sleepers(now);
    if s.ready.is_empty() {
        drop(g);
        hal().clock.arm_timer(now.saturating_add(TIME_SLICE_NS));
        return;
    }
    let cur = s.current;
    s.thread(cur).state = State::Ready;
    s.ready.push_back(cur);
    reschedule(g);
}

/// Blocks the current thread until the monotonic clock reaches `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    let _irq = IrqGuard::new();
    if hal().clock.monotonic_ns() >= deadline_ns {
        drop(_irq);
        yield_now();
        return;
    }
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    block_locked(s, cur, Some(deadline_ns));
    reschedule(g);
}

fn block_locked(s: &mut Sched, tid: Tid, deadline: Option<u64>) {
    let t = s.thread(tid);
    t.state = State::Blocked;
    t.wake_at = deadline;
    if let Some(d) = deadline {
        s.sleepers.insert((d, tid));
    }
}

/// Marks the current thread exited, wakes its joiner and never returns.
pub fn exit_current() -> ! {
    core::mem::forget(IrqGuard::new()); // interrupts stay off until the switch
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    if cur == MAIN_TID {
        drop(g);
        crate::exit::exit(0);
    }
    let t = s.thread(cur);
    t.state = State::Exited;
    let joiner = t.joiner.take();
    if t.detached {
        s.reap.push(cur);
    }
    if let Some(j) = joiner {
        s.make_ready(j);
    }
    reschedule(g);
    unreachable!("an exited thread was scheduled again");
}

/// Waits for thread `tid` to exit and frees it.
pub fn join(tid: Tid) -> Result<(), Error> {
    loop {
        let _irq = IrqGuard::new();
        let mut g = lock();
        let s = g.as_mut().unwrap();
        let cur = s.current;
        if tid == cur {
            return Err(Error::JoinSelf);
        }
        let t = s.threads.get_mut(&tid).ok_or(Error::NoSuchThread)?;
        if t.state == State::Exited {
            let t = s.threads.remove(&tid).unwrap();
            drop(g);
            free_stack(&t);
            return Ok(());
        }
        match t.joiner {
            Some(j) if j != cur => return Err(Error::AlreadyJoined),
            _ => t.joiner = Some(cur),
        }
        block_locked(s, cur, None);
        reschedule(g);
    }
}

/// Lets thread `tid` be freed as soon as it exits, without a join.
pub fn detach(tid: Tid) {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let Some(t) = s.threads.get_mut(&tid) else { return };
    if t.state == State::Exited {
        let t = s.threads.remove(&tid).unwrap();
        drop(g);
        free_stack(&t);
    } else {
        t.detached = true;
    }
}

/// Whether thread `tid` exists and has not exited.
pub fn exists(tid: Tid) -> bool {
    lock().as_ref().and_then(|s| s.threads.get(&tid)).is_some_and(|t| t.state != State::Exited)
}

/// Number of threads that exist (running, ready, blocked or unjoined).
pub fn thread_count() -> usize {
    lock().as_ref().map(|s| s.threads.len()).unwrap_or(0)
}

/// Counts a source of wakeups besides timers (a device interrupt), so that
/// "every thread blocked, no timer" is not taken for a deadlock.
pub fn register_event_source() {
    EVENT_SOURCES.fetch_add(1, Ordering::Relaxed);
}

/// Withdraws a source counted by [`register_event_source`].
pub fn unregister_event_source() {
    EVENT_SOURCES.fetch_sub(1, Ordering::Relaxed);
}

// Blocking in three steps, so that a wait condition can be checked without
// any scheduler lock held (it may take other locks, or even notify):
// `prepare_block` marks the running thread blocked, the caller re-checks
// its condition, then either `cancel_block` or `commit_block`. A wake-up
// that lands in between makes the thread ready again, so it is not lost.

/// Marks the running thread blocked (until woken or `deadline_ns`) while it
/// keeps running.
pub fn prepare_block(deadline_ns: Option<u64>) {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    block_locked(s, cur, deadline_ns);
}

/// Undoes `prepare_block` (the condition turned out true).
pub fn cancel_block() {
    let mut g = lock();
    let s = g.as_mut().unwrap();
    let cur = s.current;
    let t = s.thread(cur);
    let was = t.state;
    t.state = State::Running;
    if let Some(d) = t.wake_at.take() {
        s.sleepers.remove(&(d, cur));
    }
    if was == State::Ready {
        s.ready.retain(|&t| t != cur);
    }
}

/// Sleeps unless a wake-up already arrived since `prepare_block`.
pub fn commit_block() {
    let _irq = IrqGuard::new();
    let g = lock();
    let s = g.as_ref().unwrap();
    if matches!(s.threads.get(&s.current).map(|t| t.state), Some(State::Blocked | State::Ready)) {
        reschedule(g);
    }
}

/// Makes a blocked thread runnable (no effect on others).
pub fn wake(tid: Tid) {
    if let Some(s) = lock().as_mut() {
        s.make_ready(tid);
    }
}
