//! The hardware seam between a platform and the kernel core.
//!
//! A platform's boot entry builds one [`BootInfo`] and one [`Hal`] (a set
//! of small trait objects, bound once for the life of the machine) and
//! makes one call into the kernel (`unikit_kernel::boot::enter`). The
//! kernel never sees a register, a trap frame or a device: exceptions come
//! to it already decoded as a [`Fault`].
#![warn(missing_docs)]
#![no_std]

use core::fmt;

/// A physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Region {
    /// The range `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    /// Length in bytes (0 when `end <= start`).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// Whether the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the two ranges share a byte.
    pub fn overlaps(&self, o: &Region) -> bool {
        self.start < o.end && o.start < self.end
    }
}

/// One item of a process's start-up data (linuxu), as the platform found it.
pub enum ProcessItem<'a> {
    /// `argv[0]`.
    Program(&'a [u8]),
    /// One of `argv[1..]`.
    Arg(&'a [u8]),
    /// An environment variable meant for the app.
    Env(&'a [u8], &'a [u8]),
    /// Whitespace-separated kernel options (`UNIKIT_OPTS`).
    Options(&'a [u8]),
}

/// A process's arguments and environment, read in place (the heap does not
/// exist yet when the platform builds its [`BootInfo`]).
pub trait ProcessArgs: Sync {
    /// Calls `f` with every item, in order.
    fn visit(&self, f: &mut dyn FnMut(ProcessItem<'_>));
}

/// Where the app's arguments come from.
pub enum Args {
    /// A kernel command line (VM platforms); read once, before
    /// [`Platform::bring_up`], so it may live in memory the platform gives
    /// up afterwards.
    Kernel(&'static str),
    /// Already split by the host (linuxu: argv, envp).
    Process(&'static dyn ProcessArgs),
}

/// Everything a boot entry knows about the machine, handed to the kernel in
/// one value.
pub struct BootInfo<'a> {
    /// The command line or the process's arguments.
    pub args: Args,
    /// Usable RAM, identity mapped (or mapped at those addresses on linuxu).
    pub memory: &'a [Region],
    /// Ranges inside `memory` that are in use (image, boot data, initrd).
    pub reserved: &'a [Region],
    /// Those of `reserved` that only the boot needs (the loader's boot
    /// information, the command line): the kernel frees their whole pages
    /// once the platform is up and the command line is read.
    pub reclaimable: &'a [Region],
    /// The initial RAM disk, if the loader gave one. It must lie in a
    /// reserved range (it is never written).
    pub initrd: Option<&'static [u8]>,
    /// The stack the entry runs on (it becomes the main thread's stack).
    pub boot_stack: Region,
    /// Name of the hypervisor found at run time.
    pub hypervisor: &'static str,
    /// [`Clock::raw_timestamp`] at the first instruction of the entry: boot
    /// time is measured from here.
    pub boot_timestamp: u64,
}

/// The platform as a whole: its name, its bring-up after memory exists,
/// and its line in the boot log.
pub trait Platform: Sync {
    /// Short name shown to the app ("kvm", "xen", "linuxu", "solo5").
    fn name(&self) -> &'static str;
    /// Runs once, right after the kernel has set up its frame allocator and
    /// read the command line, before any thread or device exists: page
    /// tables, hypervisor interfaces. `boot` is what the entry handed over.
    fn bring_up(&self, _boot: &BootInfo<'_>) {}
    /// Kernel options this platform reads, taken wherever they appear on
    /// the command line (its hypervisor may add them after `--`). Exact
    /// names, or prefixes ending in `=` or `.`.
    fn options(&self) -> &'static [&'static str] {
        &[]
    }
    /// Extra facts for the boot log (clock source, interrupt controller).
    fn describe(&self, _out: &mut dyn fmt::Write) -> fmt::Result {
        Ok(())
    }
}

/// Console output.
pub trait Console: Sync {
    /// Writes raw bytes; must work from any context, crash reports included.
    fn write(&self, bytes: &[u8]);
}

/// Clocks and the idle timer.
pub trait Clock: Sync {
    /// Nanoseconds since the first instruction of the boot entry.
    fn monotonic_ns(&self) -> u64;
    /// Nanoseconds since the Unix epoch (0 when unknown).
    fn wall_clock_ns(&self) -> u64;
    /// A cheap raw timestamp (e.g. TSC ticks) for measuring boot time
    /// without forcing clock calibration during boot.
    fn raw_timestamp(&self) -> u64 {
        self.monotonic_ns()
    }
    /// Converts a difference of two [`Clock::raw_timestamp`]s to nanoseconds.
    fn raw_to_ns(&self, raw: u64) -> u64 {
        raw
    }
    /// Called with interrupts disabled when no thread can run: returns after
    /// an interrupt or once `deadline_ns` (monotonic) has passed.
    fn wait_for_event(&self, deadline_ns: Option<u64>);
    /// Asks for a timer interrupt at `deadline_ns` while threads run (the
    /// time slices of user programs). Platforms without one do nothing:
    /// their user threads are then switched only when they block.
    fn arm_timer(&self, _deadline_ns: u64) {}
}

/// Interrupt masking.
pub trait IrqControl: Sync {
    /// Disables interrupts (or their equivalent) and returns the old state.
    fn save(&self) -> bool;
    /// Restores the state [`IrqControl::save`] returned.
    fn restore(&self, was_enabled: bool);
}

/// Stopping the machine.
pub trait Shutdown: Sync {
    /// Stops the machine; `code` reaches the host where the platform can.
    fn shutdown(&self, code: i32) -> !;
    /// Whether the host learns the exit code only from the console (VMs
    /// do; a Linux process has `exit_group`).
    fn needs_exit_marker(&self) -> bool {
        true
    }
}

/// What a user program may do with one of its pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserProt {
    /// Loads allowed (a page with no right at all is not mapped).
    pub read: bool,
    /// Stores allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

/// Memory mapping for stacks and devices.
pub trait Memory: Sync {
    /// Makes the 4 KiB page at `addr` inaccessible (`guard`) or accessible
    /// again. False when the platform cannot (stacks then have no guard).
    fn set_guard_page(&self, _addr: u64, _guard: bool) -> bool {
        false
    }
    /// Makes the device registers at physical `[phys, phys + len)`
    /// accessible (identity-mapped, uncached). False if it cannot.
    fn map_device(&self, _phys: u64, _len: u64) -> bool {
        false
    }
    /// Physical (DMA) address behind a virtual one, if there is an MMU.
    fn virt_to_phys(&self, _vaddr: u64) -> Option<u64> {
        None
    }
    /// Maps the 4 KiB user page at `va` to the frame `pa` with `prot`,
    /// replacing what was there. `va` inside the kernel's identity map must
    /// come with `pa == va` (the frame the kernel reaches at that address).
    /// False when the platform has no user mode or no memory for tables.
    fn map_user(&self, _va: u64, _pa: u64, _prot: UserProt) -> bool {
        false
    }
    /// Unmaps the user page at `va` and returns its frame. A page of the
    /// kernel's identity map goes back to being the kernel's.
    fn unmap_user(&self, _va: u64) -> Option<u64> {
        None
    }
    /// The frame and rights of the user page at `va`, if it is one.
    fn user_page(&self, _va: u64) -> Option<(u64, UserProt)> {
        None
    }
}

/// The CPU's thread context and stack walking.
///
/// # Safety
/// Implementations must switch stacks exactly as documented: the kernel's
/// scheduler relies on it for memory safety.
pub unsafe trait Cpu: Sync {
    /// Saves the current context's stack pointer into `*save_sp` and
    /// resumes the context whose stack pointer is `next_sp`.
    ///
    /// # Safety
    /// `next_sp` comes from [`Cpu::init_stack`] or an earlier `switch`, and
    /// its stack is alive; `save_sp` is valid for a write.
    unsafe fn switch(&self, save_sp: *mut u64, next_sp: u64);
    /// Prepares a fresh stack so that switching to the returned stack
    /// pointer calls `entry(arg)`.
    ///
    /// # Safety
    /// `stack_top` is the end of a writable region of at least 64 bytes
    /// that nobody else uses.
    unsafe fn init_stack(&self, stack_top: u64, entry: extern "C" fn(usize) -> !, arg: usize) -> u64;
    /// The frame pointer of the function that calls this method.
    fn caller_frame(&self) -> u64;
    /// Walks the frame chain from `frame`, reading only inside the stack
    /// `[lo, hi)`, and stores the return addresses in `out`; returns how
    /// many it stored.
    fn walk_stack(&self, frame: u64, lo: u64, hi: u64, out: &mut [u64]) -> usize;
}

/// A user program's registers, as the system-call and trap entries save
/// them (x86_64's set: the Linux system-call layer is x86_64's ABI).
/// Field order is the entry stubs' stack layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Where the program continues.
    pub rip: u64,
    /// Its flags (only the arithmetic and direction flags are its own).
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
}

/// The CPU state a user thread owns besides its registers: the FPU/SSE
/// registers (x86_64 `fxsave` image) and the TLS base (FS).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct UserCpuState {
    /// The `fxsave` area.
    pub fpu: [u8; 512],
    /// FS base (`arch_prctl(ARCH_SET_FS)`).
    pub tls: u64,
}

impl UserCpuState {
    /// The state a new program starts with: x87 control word 0x37f, MXCSR
    /// 0x1f80 (all exceptions masked, round to nearest), no TLS.
    pub fn initial() -> Self {
        let mut fpu = [0u8; 512];
        fpu[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        fpu[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Self { fpu, tls: 0 }
    }
}

/// User mode: running a program in its own privilege level, with system
/// calls and its faults coming back to the kernel.
pub trait UserMode: Sync {
    /// Routes system calls to `syscall` (which reads the number and
    /// arguments from the registers and writes the result into them; it
    /// returns true when every register must be restored as it left them,
    /// as after `rt_sigreturn`) and
    /// a program's CPU exceptions to `fault`, which returns when the
    /// registers were changed to continue (e.g. into a signal handler);
    /// `on_return` runs before the program resumes after an interrupt
    /// (time slices, signals).
    fn bind(&self, syscall: fn(&mut UserRegs) -> bool, fault: fn(&mut UserRegs, &Fault), on_return: fn(&mut UserRegs));
    /// Runs the program from `regs` on the current thread; system calls
    /// and interrupts use the kernel stack ending at `kernel_stack_top`.
    fn enter(&self, regs: &UserRegs, kernel_stack_top: u64) -> !;
    /// Makes `state` the CPU's and `kernel_stack_top` the stack of traps
    /// from user mode: called before switching to a user thread.
    fn load(&self, state: &UserCpuState, kernel_stack_top: u64);
    /// Saves the CPU's user state into `state`: called when a user thread
    /// stops running.
    fn save(&self, state: &mut UserCpuState);
    /// Sets the TLS base of the running thread now.
    fn set_tls(&self, base: u64);
}

/// The hardware services, bound once at boot.
#[derive(Clone, Copy)]
pub struct Hal {
    /// Name, bring-up, boot-log line.
    pub platform: &'static dyn Platform,
    /// Console output.
    pub console: &'static dyn Console,
    /// Clocks and idle wait.
    pub clock: &'static dyn Clock,
    /// Interrupt masking.
    pub irq: &'static dyn IrqControl,
    /// Stopping the machine.
    pub shutdown: &'static dyn Shutdown,
    /// Guard pages, device mappings, DMA addresses.
    pub memory: &'static dyn Memory,
    /// Context switch and stack walking.
    pub cpu: &'static dyn Cpu,
    /// Running Linux programs, where the platform can.
    pub user: Option<&'static dyn UserMode>,
}

/// The faulting address of a memory fault, decoded by the architecture.
#[derive(Clone, Copy, Debug)]
pub struct FaultAddress {
    /// The address.
    pub addr: u64,
    /// Where the CPU reported it ("cr2").
    pub source: &'static str,
    /// "read", "write" or "instruction fetch".
    pub access: &'static str,
    /// "page not present" or "protection violation".
    pub cause: &'static str,
}

/// A fatal CPU exception, decoded by the architecture layer.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// Exception number.
    pub vector: u64,
    /// Human name ("page fault (#PF)").
    pub name: &'static str,
    /// Program counter, stack pointer and frame pointer.
    pub pc: u64,
    /// Stack pointer at the fault.
    pub sp: u64,
    /// Frame pointer at the fault (start of the backtrace).
    pub fp: u64,
    /// The architecture's names of pc, sp and fp ("rip", "rsp", "rbp").
    pub register_names: &'static [&'static str; 3],
    /// The CPU's error code (0 when it gives none).
    pub error_code: u64,
    /// For memory faults: the address and what went wrong.
    pub address: Option<FaultAddress>,
}
