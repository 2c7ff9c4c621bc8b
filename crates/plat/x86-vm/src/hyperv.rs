//! Hyper-V enlightenments, each used only when CPUID offers it: the guest
//! OS identity and the hypercall page, the reference TSC page, and the TSC
//! frequency MSR.
//!
//! ABI facts from Linux `include/hyperv/hvgdk_mini.h` (CPUID leaves,
//! synthetic MSR numbers, the privilege bits of leaf 0x40000003 EAX, the
//! layout of `ms_hyperv_tsc_page`) and Microsoft's Hypervisor Top-Level
//! Functional Specification (guest OS ID encoding; reference time =
//! `((tsc * scale) >> 64) + offset` in 100 ns units; a sequence of 0 means
//! "page not valid, use the reference counter MSR").
//!
//! The decoding and the arithmetic are host-tested; the MSR and page glue
//! exists only in the guest.
// Without the `hyperv` feature only the clock part is used.
#![cfg_attr(not(feature = "hyperv"), allow(dead_code))]

/// CPUID leaf with the hypervisor interface signature (`Hv#1` in EAX).
pub const CPUID_INTERFACE: u32 = 0x4000_0001;
/// CPUID leaf with the partition privileges (EAX, EBX) and features (EDX).
pub const CPUID_FEATURES: u32 = 0x4000_0003;
/// `Hv#1`, little-endian: the interface every enlightenment below belongs to.
pub const INTERFACE_HV1: u32 = 0x3123_7648;

/// Guest OS identity (must be non-zero before the hypercall page is enabled).
pub const MSR_GUEST_OS_ID: u32 = 0x4000_0000;
/// Hypercall page: bit 0 enable, bits 63:12 the page's guest frame.
pub const MSR_HYPERCALL: u32 = 0x4000_0001;
/// Reference TSC page: bit 0 enable, bits 63:12 the page's guest frame.
pub const MSR_REFERENCE_TSC: u32 = 0x4000_0021;
/// TSC frequency in Hz.
pub const MSR_TSC_FREQUENCY: u32 = 0x4000_0022;

// Leaf 0x40000003 EAX ("group A" privileges), hvgdk_mini.h.
const PRIV_SYNIC: u32 = 1 << 2;
const PRIV_HYPERCALL: u32 = 1 << 5;
const PRIV_REFERENCE_TSC: u32 = 1 << 9;
const PRIV_FREQUENCY_MSRS: u32 = 1 << 11;
// Leaf 0x40000003 EBX ("group B").
const PRIV_POST_MESSAGES: u32 = 1 << 4;
const PRIV_SIGNAL_EVENTS: u32 = 1 << 5;

/// What the partition may use, decoded from CPUID leaf 0x40000003.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// The guest OS ID and hypercall MSRs.
    pub hypercall: bool,
    /// The reference TSC page MSR.
    pub reference_tsc: bool,
    /// The TSC (and APIC) frequency MSRs.
    pub frequency_msrs: bool,
    /// The synthetic interrupt controller (VMBus needs it).
    pub synic: bool,
    /// HvPostMessage and HvSignalEvent (VMBus needs both).
    pub post_and_signal: bool,
}

impl Features {
    /// Decodes the leaves: `interface` is 0x40000001 EAX, `eax`/`ebx` are
    /// 0x40000003's. Nothing is offered unless the interface is `Hv#1`
    /// and the hypervisor's highest leaf reaches 0x40000003 (`max_leaf`).
    pub fn decode(max_leaf: u32, interface: u32, eax: u32, ebx: u32) -> Self {
        if max_leaf < CPUID_FEATURES || interface != INTERFACE_HV1 {
            return Self::default();
        }
        Self {
            hypercall: eax & PRIV_HYPERCALL != 0,
            reference_tsc: eax & PRIV_REFERENCE_TSC != 0,
            frequency_msrs: eax & PRIV_FREQUENCY_MSRS != 0,
            synic: eax & PRIV_SYNIC != 0,
            post_and_signal: ebx & PRIV_POST_MESSAGES != 0 && ebx & PRIV_SIGNAL_EVENTS != 0,
        }
    }

    /// Whether VMBus can work: SynIC, hypercalls, post and signal.
    pub fn vmbus(&self) -> bool {
        self.synic && self.hypercall && self.post_and_signal
    }
}

/// The guest OS ID unikit announces. TLFS encoding for open-source
/// systems: bit 63 set, OS type in 62:56 (0: none of the listed ones),
/// OS ID 55:48, version 47:16, build 15:0. `version` is
/// `major << 16 | minor << 8 | patch`.
pub fn guest_os_id(version: u32) -> u64 {
    (1 << 63) | ((version as u64) << 16)
}

/// `major.minor.patch` of this crate, packed for [`guest_os_id`].
pub fn crate_version() -> u32 {
    let p = |s: &str| s.parse::<u32>().unwrap_or(0) & 0xff;
    p(env!("CARGO_PKG_VERSION_MAJOR")) << 16
        | p(env!("CARGO_PKG_VERSION_MINOR")) << 8
        | p(env!("CARGO_PKG_VERSION_PATCH"))
}

/// One consistent reading of the reference TSC page
/// (`ms_hyperv_tsc_page`: u32 sequence, u32 reserved, u64 scale, i64 offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscPage {
    /// 0: the page is not valid now (e.g. after a migration to a host with
    /// another TSC rate); the reference counter MSR must be used instead.
    pub sequence: u32,
    /// 64.64 fixed-point multiplier from TSC ticks to 100 ns units.
    pub scale: u64,
    /// Added after scaling, in 100 ns units.
    pub offset: i64,
}

impl TscPage {
    /// Reference time in 100 ns units at TSC value `tsc`, or `None` when
    /// the page is invalid (sequence 0) and the caller must fall back. The
    /// guest keeps time with the TSC at [`TscPage::tsc_hz`]; this is the
    /// TLFS formula, which the tests hold that frequency against.
    #[cfg(test)]
    pub fn time_100ns(&self, tsc: u64) -> Option<u64> {
        if self.sequence == 0 {
            return None;
        }
        let scaled = ((tsc as u128 * self.scale as u128) >> 64) as u64;
        Some(scaled.wrapping_add(self.offset as u64))
    }

    /// The TSC frequency the page's scale implies:
    /// `scale = 10^7 * 2^64 / hz`, so `hz = 10^7 * 2^64 / scale`. `None`
    /// when the page is invalid or the scale is absurd (below 1 MHz or
    /// above 100 GHz: a hostile or broken value, not a clock).
    pub fn tsc_hz(&self) -> Option<u64> {
        if self.sequence == 0 || self.scale == 0 {
            return None;
        }
        // In 128 bits: a tiny (hostile) scale gives more than 64 bits.
        let hz = (10_000_000u128 << 64) / self.scale as u128;
        sane_tsc_hz(u64::try_from(hz).ok()?)
    }
}

/// A TSC frequency from the frequency MSR, checked for sanity (1 MHz to
/// 100 GHz); anything else is not a clock and the caller measures instead.
pub fn sane_tsc_hz(hz: u64) -> Option<u64> {
    (1_000_000..=100_000_000_000).contains(&hz).then_some(hz)
}

#[cfg(all(not(test), target_os = "none"))]
pub use guest::*;

#[cfg(all(not(test), target_os = "none", feature = "hyperv"))]
pub use bus::probe;

#[cfg(all(not(test), target_os = "none"))]
mod guest {
    use super::*;
    use arch::cpu::{cpuid, rdmsr, wrmsr};
    use arch::hypervisor::Hypervisor;
    use spin::Once;

    use core::sync::atomic::{AtomicBool, Ordering};

    /// The decoded features; all false off Hyper-V. Not cached: the clock
    /// asks once, and CPUID is cheap next to what is done with the answer.
    pub fn features() -> Features {
        let (hv, max_leaf) = crate::pc::hypervisor();
        if hv != Hypervisor::HyperV {
            return Features::default();
        }
        let f = cpuid(CPUID_FEATURES, 0);
        Features::decode(max_leaf, cpuid(CPUID_INTERFACE, 0).eax, f.eax, f.ebx)
    }

    /// The reference TSC page Hyper-V keeps up to date (4 KiB, page-aligned).
    #[repr(C, align(4096))]
    struct TscPageMem([u8; 4096]);
    static mut TSC_PAGE: TscPageMem = TscPageMem([0; 4096]);
    static TSC_PAGE_ON: AtomicBool = AtomicBool::new(false);

    /// Enables the reference TSC page (once) and takes one consistent
    /// reading; `None` if CPUID does not offer it.
    fn tsc_page(f: Features) -> Option<TscPage> {
        if !f.reference_tsc {
            return None;
        }
        if !TSC_PAGE_ON.swap(true, Ordering::AcqRel) {
            let gpa = drivers::io::dma_addr_of(&raw const TSC_PAGE as usize);
            // SAFETY: the MSR exists (CPUID says so); the page is a static of
            // our own, page-aligned, which Hyper-V overlays with the TSC page.
            unsafe { wrmsr(MSR_REFERENCE_TSC, gpa | 1) };
        }
        let base = &raw const TSC_PAGE as *const u8;
        loop {
            // SAFETY: the static is 4 KiB and aligned; Hyper-V rewrites it at
            // any time, so every field is one volatile read, and the sequence
            // read before and after guards against a torn reading.
            let (s0, scale, offset, s1) = unsafe {
                let s0 = core::ptr::read_volatile(base as *const u32);
                core::sync::atomic::fence(Ordering::Acquire);
                let scale = core::ptr::read_volatile(base.add(8) as *const u64);
                let offset = core::ptr::read_volatile(base.add(16) as *const i64);
                core::sync::atomic::fence(Ordering::Acquire);
                (s0, scale, offset, core::ptr::read_volatile(base as *const u32))
            };
            if s0 == s1 {
                return Some(TscPage { sequence: s0, scale, offset });
            }
        }
    }

    /// The TSC frequency from Hyper-V: the frequency MSR where offered,
    /// else the reference TSC page's scale. `None` off Hyper-V (no MSR is
    /// touched there) or when neither is offered or valid.
    pub fn tsc_hz() -> Option<u64> {
        let f = features();
        if f.frequency_msrs {
            // SAFETY: CPUID says the frequency MSRs exist.
            if let Some(hz) = sane_tsc_hz(unsafe { rdmsr(MSR_TSC_FREQUENCY) }) {
                return Some(hz);
            }
        }
        tsc_page(f)?.tsc_hz()
    }

    /// The hypercall page: Hyper-V overlays it with its calling stub. It
    /// lives in `.text` so the page is mapped executable.
    #[repr(C, align(4096))]
    struct HypercallPageMem([u8; 4096]);
    #[unsafe(link_section = ".text.hyperv_hypercall")]
    static HYPERCALL_PAGE: HypercallPageMem = HypercallPageMem([0xc3; 4096]);

    /// Sets the guest OS ID and enables the hypercall page, once. False if
    /// CPUID does not offer hypercalls.
    pub fn hypercalls() -> bool {
        static ON: Once<bool> = Once::new();
        *ON.call_once(|| {
            if !features().hypercall {
                return false;
            }
            let gpa = drivers::io::dma_addr_of(&raw const HYPERCALL_PAGE as usize);
            // SAFETY: CPUID offers both MSRs; the ID is non-zero as the TLFS
            // requires before the hypercall page is enabled; the page is ours,
            // aligned, executable, and never read or written by Rust code.
            unsafe {
                wrmsr(MSR_GUEST_OS_ID, guest_os_id(crate_version()));
                wrmsr(MSR_HYPERCALL, (gpa & !0xfff) | 1);
            }
            true
        })
    }

    /// One hypercall through the page: `control` (call code, fast bit, rep
    /// count), input and output (guest physical addresses, or the values
    /// themselves for a fast call). Returns the 64-bit result (status in
    /// bits 15:0). Call [`hypercalls`] first.
    ///
    /// # Safety
    /// For a slow call, `input`/`output` must be the guest physical
    /// addresses of 8-byte aligned buffers that do not cross a page and
    /// hold what the call code requires.
    pub unsafe fn hypercall(control: u64, input: u64, output: u64) -> u64 {
        let status: u64;
        let page = &raw const HYPERCALL_PAGE as usize;
        // SAFETY: the page holds Hyper-V's stub (the caller enabled it);
        // the x64 hypercall convention takes RCX, RDX, R8, returns RAX and
        // may clobber the volatile registers, which clobber_abi declares.
        unsafe {
            core::arch::asm!(
                "call {page}",
                page = in(reg) page,
                inout("rcx") control => _,
                inout("rdx") input => _,
                inout("r8") output => _,
                lateout("rax") status,
                clobber_abi("C"),
            );
        }
        status
    }
}

/// VMBus in the guest: the hypervisor behind `drivers::vmbus::Platform`,
/// the SynIC interrupt, storvsc and netvsc as kernel devices, and the
/// integration services (shutdown, heartbeat) served by a kernel thread. Reached only when CPUID says Hyper-V and
/// offers SynIC, hypercalls, post and signal.
#[cfg(all(not(test), target_os = "none", feature = "hyperv"))]
mod bus {
    use super::guest::{features, hypercall, hypercalls};
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use drivers::irq::{InterruptController, IrqHandler};
    use drivers::vmbus::ic::{Event as IcEvent, IcChannel, Service};
    use drivers::vmbus::netvsc::{NetVsc, NetVscNic};
    use drivers::vmbus::storvsc::{StorVsc, StorVscDisk};
    use drivers::vmbus::{Error, Platform, Synic, Vmbus, abi};
    use unikit_kernel::event::Event;

    /// A MAC address as `aa:bb:cc:dd:ee:ff`.
    struct Mac([u8; 6]);
    impl core::fmt::Display for Mac {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let m = self.0;
            write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
        }
    }

    /// `hv_input_post_message` (connection ID, reserved, message type,
    /// payload size, 240 bytes of payload) in a page of its own, so the
    /// hypercall's input never crosses a page.
    #[repr(C, align(4096))]
    struct PostInput([u8; 4096]);
    static POST: spin::Mutex<PostInput> = spin::Mutex::new(PostInput([0; 4096]));

    #[derive(Clone, Copy)]
    struct Hv;

    impl Platform for Hv {
        fn rdmsr(&self, msr: u32) -> u64 {
            // SAFETY: only the SynIC MSRs are asked for, and `probe` checked
            // that CPUID offers the SynIC.
            unsafe { arch::cpu::rdmsr(msr) }
        }

        fn wrmsr(&self, msr: u32, value: u64) {
            // SAFETY: as for `rdmsr`; the values are pages of ours and the
            // vector `probe` allocated.
            unsafe { arch::cpu::wrmsr(msr, value) }
        }

        fn post_message(&self, connection_id: u32, payload: &[u8]) -> u16 {
            let Some(n) = (payload.len() <= abi::MESSAGE_PAYLOAD).then_some(payload.len()) else { return 5 };
            let mut input = POST.lock();
            let b = &mut input.0;
            b[0..4].copy_from_slice(&connection_id.to_le_bytes());
            b[4..8].fill(0);
            b[8..12].copy_from_slice(&abi::HVMSG_CHANNEL.to_le_bytes());
            b[12..16].copy_from_slice(&(n as u32).to_le_bytes());
            b[16..16 + n].copy_from_slice(payload);
            let gpa = drivers::io::dma_addr_of(b.as_ptr() as usize);
            // SAFETY: the input is a page-aligned page of ours, held by the
            // lock for the call; the hypercall page is enabled (`probe`).
            unsafe { hypercall(abi::HVCALL_POST_MESSAGE as u64, gpa, 0) as u16 }
        }

        fn signal_event(&self, connection_id: u32) -> u16 {
            // Fast call (bit 16): connection ID and flag number 0 in RDX.
            // SAFETY: no memory is passed; the hypercall page is enabled.
            unsafe { hypercall(abi::HVCALL_SIGNAL_EVENT as u64 | 1 << 16, connection_id as u64, 0) as u16 }
        }

        fn wait(&self, waited: u32) -> bool {
            // Answers come within microseconds to milliseconds: look again
            // every 10 us; give up after 5 s.
            if waited >= 500_000 {
                return false;
            }
            let until = unikit_kernel::time::monotonic_ns() + 10_000;
            while unikit_kernel::time::monotonic_ns() < until {
                core::hint::spin_loop();
            }
            true
        }
    }

    /// Signalled by the VMBus SINT's interrupt.
    static SINT_EVENT: Event = Event::new();

    struct SintHandler;
    impl IrqHandler for SintHandler {
        fn handle(&self) {
            SINT_EVENT.signal();
        }
    }
    static SINT_HANDLER: SintHandler = SintHandler;

    /// On Hyper-V with what VMBus needs: connects, registers the storvsc
    /// disks and netvsc adapters, and serves the shutdown and heartbeat
    /// services from a thread. A failure is one line on the console and no
    /// VMBus devices. Runs at device discovery, so an app that never asks
    /// for a device does not answer Hyper-V's "Shut Down".
    pub fn probe() {
        if !features().vmbus() || !hypercalls() {
            return;
        }
        if let Err(e) = start() {
            unikit_kernel::kprintln!("unikit: VMBus: {e}");
        }
    }

    fn start() -> Result<(), Error> {
        let msi = crate::pc::irq::CONTROLLER.alloc_msi(&SINT_HANDLER).ok_or(Error::NoMemory)?;
        // The local APIC EOI comes from the interrupt dispatch: no auto-EOI.
        let synic = Synic::enable(&Hv, msi.data as u8, false)?;
        let mut bus = Vmbus::connect(Hv, synic)?;
        let offers = bus.request_offers()?;
        let v = bus.version();
        if !unikit_kernel::boot::is_quiet() {
            unikit_kernel::kprintln!("vmbus: protocol {}.{}, {} channel offers", v >> 16, v & 0xffff, offers.len());
        }
        let mut services = Vec::new();
        let mut disks = 0;
        let mut nics = 0;
        for o in offers.iter().filter(|o| o.sub_channel == 0) {
            let service = match o.class {
                abi::GUID_SHUTDOWN => Service::Shutdown,
                abi::GUID_HEARTBEAT => Service::Heartbeat,
                abi::GUID_STORVSC => {
                    // A disk that does not come up is said, and skipped.
                    match bus.open(o, 16, 16).and_then(StorVsc::new) {
                        Ok(d) => {
                            let name = alloc::format!("storvsc{disks}");
                            if !unikit_kernel::boot::is_quiet() {
                                unikit_kernel::kprintln!(
                                    "{name}: {} blocks of {} bytes (VSTOR {}.{})",
                                    d.num_blocks(),
                                    d.block_size(),
                                    d.version() >> 8,
                                    d.version() & 0xff
                                );
                            }
                            unikit_kernel::dev::register_block(Arc::new(StorVscDisk::new(name, d)));
                            disks += 1;
                        }
                        Err(e) => unikit_kernel::kprintln!("unikit: storvsc: {e}"),
                    }
                    continue;
                }
                abi::GUID_NETVSC => {
                    match NetVsc::new(&mut bus, o) {
                        Ok(n) => {
                            let name = alloc::format!("netvsc{nics}");
                            if !unikit_kernel::boot::is_quiet() {
                                unikit_kernel::kprintln!("{name}: {} (NVSP {:#x})", Mac(n.mac()), n.nvsp_version());
                            }
                            unikit_kernel::dev::register_net(Arc::new(NetVscNic::new(name, n)));
                            nics += 1;
                        }
                        Err(e) => unikit_kernel::kprintln!("unikit: netvsc: {e}"),
                    }
                    continue;
                }
                _ => continue,
            };
            // 4 pages each way: as much as Linux gives these services.
            services.push(IcChannel::new(service, bus.open(o, 4, 4)?));
        }
        if services.is_empty() {
            // The channels' rings and the SynIC pages are the host's for good.
            core::mem::forget(bus);
            return Ok(());
        }
        unikit_kernel::sched::register_event_source();
        let serve = move || {
            // The bus stays alive (its pages are the host's) as long as the services.
            let bus = bus;
            loop {
                SINT_EVENT.wait(None);
                // Messages on the bus (a rescind, say) are taken so the slot stays free.
                while bus.synic().take_message(&Hv).is_some() {}
                for ic in services.iter_mut() {
                    loop {
                        match ic.poll() {
                            Ok(Some(IcEvent::Shutdown { .. })) => {
                                unikit_kernel::kprintln!("unikit: Hyper-V asked for a shutdown");
                                unikit_kernel::exit::exit(0);
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(e) => {
                                unikit_kernel::kprintln!("unikit: VMBus integration service: {e}");
                                break;
                            }
                        }
                    }
                }
            }
        };
        unikit_kernel::sched::spawn(
            String::from("hyperv-ic"),
            unikit_kernel::sched::DEFAULT_STACK_SIZE,
            Box::new(serve),
        )
        .map_err(|_| Error::NoMemory)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_need_the_hv1_interface_and_the_leaf() {
        let all = u32::MAX;
        assert_eq!(Features::decode(0x4000_0002, INTERFACE_HV1, all, all), Features::default());
        assert_eq!(Features::decode(0x4000_000a, 0x1234, all, all), Features::default());
        let f = Features::decode(0x4000_000a, INTERFACE_HV1, all, all);
        assert!(f.hypercall && f.reference_tsc && f.frequency_msrs && f.vmbus());
    }

    #[test]
    fn features_follow_the_bits() {
        // Hypercall (5) and reference TSC (9) only; no SynIC, no post/signal.
        let f = Features::decode(0x4000_000a, INTERFACE_HV1, (1 << 5) | (1 << 9), 0);
        assert!(f.hypercall && f.reference_tsc);
        assert!(!f.frequency_msrs && !f.synic && !f.vmbus());
        // SynIC (2) + hypercall but only post (4), no signal (5): no VMBus.
        let f = Features::decode(0x4000_000a, INTERFACE_HV1, (1 << 2) | (1 << 5), 1 << 4);
        assert!(f.synic && !f.post_and_signal && !f.vmbus());
        let f = Features::decode(0x4000_000a, INTERFACE_HV1, (1 << 2) | (1 << 5) | (1 << 11), 0x30);
        assert!(f.vmbus() && f.frequency_msrs);
    }

    #[test]
    fn guest_os_id_is_open_source_and_nonzero() {
        let id = guest_os_id(0x000102);
        assert_eq!(id >> 63, 1);
        assert_eq!((id >> 56) & 0x7f, 0, "OS type");
        assert_eq!((id >> 16) & 0xffff_ffff, 0x102);
        assert_ne!(guest_os_id(crate_version()), 0);
    }

    fn page_for(hz: u64, offset: i64) -> TscPage {
        TscPage { sequence: 7, scale: ((10_000_000u128 << 64) / hz as u128) as u64, offset }
    }

    #[test]
    fn tsc_page_time_and_frequency() {
        let p = page_for(2_500_000_000, 0);
        // One second of 2.5 GHz ticks is 10^7 units of 100 ns (rounding of
        // the scale loses at most one unit).
        let t = p.time_100ns(2_500_000_000).unwrap();
        assert!((9_999_999..=10_000_000).contains(&t), "{t}");
        let hz = p.tsc_hz().unwrap();
        assert!(hz.abs_diff(2_500_000_000) <= 1, "{hz}");
        // The offset is added after scaling, and may be negative.
        let q = page_for(1_000_000_000, -500);
        assert!(q.time_100ns(1_000_000_000).unwrap().abs_diff(10_000_000 - 500) <= 1);
    }

    #[test]
    fn tsc_page_sequence_zero_means_fall_back() {
        let mut p = page_for(3_000_000_000, 0);
        p.sequence = 0;
        assert_eq!(p.time_100ns(123), None);
        assert_eq!(p.tsc_hz(), None);
    }

    #[test]
    fn absurd_scales_are_not_clocks() {
        let z = TscPage { sequence: 1, scale: 0, offset: 0 };
        assert_eq!(z.tsc_hz(), None);
        // A scale of 1 would mean a 10^7 * 2^64 Hz TSC; 2^20 still 176 THz.
        assert_eq!(TscPage { sequence: 1, scale: 1, offset: 0 }.tsc_hz(), None);
        assert_eq!(TscPage { sequence: 1, scale: 1 << 20, offset: 0 }.tsc_hz(), None);
        // Huge TSC values do not overflow: the product is 128-bit.
        let p = page_for(2_000_000_000, 0);
        assert!(p.time_100ns(u64::MAX).is_some());
        assert_eq!(sane_tsc_hz(0), None);
        assert_eq!(sane_tsc_hz(2_000_000_000), Some(2_000_000_000));
    }
}
