//! The kernel's one binding to the hardware: the [`Hal`] a platform hands
//! to [`crate::boot::enter`], kept for the life of the machine.
use hal::{Clock, Console, Cpu, Hal, IrqControl, Memory, Platform, Shutdown};

static HAL: spin::Once<Hal> = spin::Once::new();

/// Stands in before the platform is bound (and in host tests): a console
/// that drops output, a clock at zero, no MMU. A guest binds its HAL
/// before running any kernel code, so this is never used there.
struct Unbound;

impl Platform for Unbound {
    fn name(&self) -> &'static str {
        "none"
    }
}
impl Console for Unbound {
    fn write(&self, _: &[u8]) {}
}
impl Clock for Unbound {
    fn monotonic_ns(&self) -> u64 {
        0
    }
    fn wall_clock_ns(&self) -> u64 {
        0
    }
    fn wait_for_event(&self, _: Option<u64>) {}
}
impl IrqControl for Unbound {
    fn save(&self) -> bool {
        false
    }
    fn restore(&self, _: bool) {}
}
impl Shutdown for Unbound {
    fn shutdown(&self, _: i32) -> ! {
        loop {
            core::hint::spin_loop();
        }
    }
}
impl Memory for Unbound {}
// `unsafe` only because the trait's methods are: nothing here touches memory.
#[allow(unsafe_code)]
// SAFETY: never switches: a scheduler cannot start without a bound HAL
// (`boot::enter` binds it first).
unsafe impl Cpu for Unbound {
    unsafe fn switch(&self, _: *mut u64, _: u64) {
        unreachable!("context switch before the platform was bound")
    }
    unsafe fn init_stack(&self, top: u64, _: extern "C" fn(usize) -> !, _: usize) -> u64 {
        top
    }
    fn caller_frame(&self) -> u64 {
        0
    }
    fn walk_stack(&self, _: u64, _: u64, _: u64, _: &mut [u64]) -> usize {
        0
    }
}

static UNBOUND: Unbound = Unbound;
static UNBOUND_HAL: Hal = Hal {
    platform: &UNBOUND,
    console: &UNBOUND,
    clock: &UNBOUND,
    irq: &UNBOUND,
    shutdown: &UNBOUND,
    memory: &UNBOUND,
    cpu: &UNBOUND,
    user: None,
};

/// Binds the platform's services. The first call wins; the kernel makes
/// it once, from `boot::enter`.
pub(crate) fn bind(hal: Hal) {
    HAL.call_once(|| hal);
}

/// The hardware services of this machine. Not inlined: it is called from
/// everywhere, and one call is smaller than the `Once` check at each site.
#[inline(never)]
pub fn hal() -> &'static Hal {
    HAL.get().unwrap_or(&UNBOUND_HAL)
}

/// Interrupts off for as long as the guard lives.
pub struct IrqGuard(bool);

impl IrqGuard {
    /// Disables interrupts until the guard is dropped.
    pub fn new() -> Self {
        Self(hal().irq.save())
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        hal().irq.restore(self.0);
    }
}
