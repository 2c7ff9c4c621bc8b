//! Frame-pointer backtraces (images are built with frame pointers forced on).

/// Frames a backtrace walks at most, so a corrupt frame chain cannot loop.
pub const MAX_FRAMES: usize = 32;

/// Walks the frame-pointer chain starting at `rbp`, calling `f` with each
/// return address. `readable(lo, hi)` must say whether `[lo, hi)` is memory
/// that can be read (normally: inside the current stack), so a corrupt chain
/// stops the walk instead of faulting.
pub fn walk(mut rbp: u64, readable: impl Fn(u64, u64) -> bool, mut f: impl FnMut(usize, u64)) {
    for i in 0..MAX_FRAMES {
        if rbp == 0 || !rbp.is_multiple_of(8) || !readable(rbp, rbp + 16) {
            return;
        }
        // SAFETY: `readable` vouched for the 16 bytes at `rbp`.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            return;
        }
        f(i, ret);
        if next <= rbp {
            return; // stacks grow down: a chain that does not go up is corrupt
        }
        rbp = next;
    }
}
