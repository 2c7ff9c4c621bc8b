//! The kernel heap: `talc`, growing on demand with arenas taken from the
//! frame allocator, so a small VM only spends what it uses.
use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use talc::{OomHandler, Span, Talc, Talck};

/// Smallest arena the heap asks for at once.
const MIN_GROWTH: usize = 64 * 1024;

static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// The heap's OOM handler: claims more frames and adds them to the heap.
pub struct GrowFromFrames;

impl OomHandler for GrowFromFrames {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // Room for the request, its alignment and talc's per-arena metadata.
        let need = layout.size() + layout.align() + 256;
        let bytes = need.max(MIN_GROWTH).next_multiple_of(super::FRAME_SIZE as usize);
        let frames = bytes / super::FRAME_SIZE as usize;
        // Out of frames: the scheduler's spare thread stacks go back first.
        let base = super::alloc_frames(frames, 1)
            .or_else(|| crate::sched::release_cached_stacks().then(|| super::alloc_frames(frames, 1)).flatten())
            .ok_or(())?;
        // SAFETY: the frames are ours from now on and mapped (mem::init contract).
        unsafe { talc.claim(Span::from_base_size(base as *mut u8, bytes)) }?;
        CLAIMED.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The heap lock keeps interrupts off while held: an interrupt handler
/// that allocates (waking a thread can grow the run queue) must not find
/// the lock taken by the code it interrupted.
pub struct IrqSpinLock {
    locked: AtomicBool,
    irqs_were_on: AtomicBool,
}

// SAFETY: mutual exclusion by the `locked` flag (acquire on lock, release on
// unlock); the saved interrupt state belongs to the holder.
unsafe impl lock_api::RawMutex for IrqSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self { locked: AtomicBool::new(false), irqs_were_on: AtomicBool::new(false) };
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        let was = crate::hal().irq.save();
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        self.irqs_were_on.store(was, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        let was = crate::hal().irq.save();
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.irqs_were_on.store(was, Ordering::Relaxed);
            true
        } else {
            crate::hal().irq.restore(was);
            false
        }
    }

    unsafe fn unlock(&self) {
        let was = self.irqs_were_on.load(Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
        crate::hal().irq.restore(was);
    }
}

// Only the guest gets this allocator: a host test binary that links the
// kernel keeps the host's.
#[cfg_attr(target_os = "none", global_allocator)]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static ALLOCATOR: Talck<IrqSpinLock, GrowFromFrames> = Talc::new(GrowFromFrames).lock();

/// Bytes the heap has claimed from the frame allocator so far.
pub fn claimed_bytes() -> u64 {
    CLAIMED.load(Ordering::Relaxed)
}
