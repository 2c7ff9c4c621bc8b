//! The kernel heap: `talc`, growing on demand with arenas taken from the
//! frame allocator, so a small VM only spends what it uses.
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};
use talc::{OomHandler, Span, Talc, Talck};

/// Smallest arena the heap asks for at once.
const MIN_GROWTH: usize = 64 * 1024;

static CLAIMED: AtomicU64 = AtomicU64::new(0);

pub struct GrowFromFrames;

impl OomHandler for GrowFromFrames {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        // Room for the request, its alignment and talc's per-arena metadata.
        let need = layout.size() + layout.align() + 256;
        let bytes = need.max(MIN_GROWTH).next_multiple_of(super::FRAME_SIZE as usize);
        let frames = bytes / super::FRAME_SIZE as usize;
        let base = super::alloc_frames(frames, 1).ok_or(())?;
        // SAFETY: the frames are ours from now on and mapped (mem::init contract).
        unsafe { talc.claim(Span::from_base_size(base as *mut u8, bytes)) }?;
        CLAIMED.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg_attr(not(test), global_allocator)]
static ALLOCATOR: Talck<spin::Mutex<()>, GrowFromFrames> = Talc::new(GrowFromFrames).lock();

pub fn claimed_bytes() -> u64 {
    CLAIMED.load(Ordering::Relaxed)
}
