//! PVH entry: the hypervisor jumps to `pvh_start32` in 32-bit protected mode,
//! paging off, with `ebx` = physical address of `hvm_start_info`. The stub
//! records the TSC (boot time zero), identity-maps 1 GiB with 2 MiB pages,
//! enters long mode and calls [`pvh_main`]. The kernel replaces these tables
//! with its own as soon as it has a frame allocator, and frees them.
//!
//! On VMware the host may replace the disk's command line: see
//! [`command_line`].
use crate::rpci::{self, LineError};
use crate::{boot, pc, start_info};
use core::arch::global_asm;
use core::fmt::Write;
use hal::{Args, BootInfo, Region};

/// XEN_ELFNOTE_PHYS32_ENTRY: the note QEMU, Firecracker and Xen look for.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .p2align 2
    .long 4
    .long 4
    .long {note_type}
    .asciz "Xen"
    .p2align 2
    .long pvh_start32
    .p2align 2

    /* Boot page tables. The PD is prebuilt in the image: code that runs
       with paging off is emulated instruction by instruction on some
       hypervisors (e.g. page-table-based nested KVM), so a loop that fills
       512 entries at boot would cost far more than 4 KiB of image. */
    .section .bss.boot_pt, "aw", @nobits
    .p2align 12
    .global unikit_boot_pml4
unikit_boot_pml4: .skip 4096
    .global unikit_boot_pdpt
unikit_boot_pdpt: .skip 4096
    .section .data.boot_pt, "aw"
    .p2align 12
    .global unikit_boot_pd
unikit_boot_pd:
    .set i, 0
    .rept 512
    .quad (i << 21) | 0xe3  /* present, writable, accessed, dirty, 2 MiB */
    .set i, i + 1
    .endr

    .section .data.boot, "aw"
    .p2align 3
unikit_start_info: .quad 0
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_ptr:
    .word 23
    .long boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    rdtsc
    movl %eax, unikit_boot_tsc
    movl %edx, unikit_boot_tsc + 4
    movl %ebx, unikit_start_info
    cli
    cld
    /* Zero .bss (boot page tables included) before anything uses it: the
       PVH loader need not, and under SeaBIOS it holds POST leftovers. */
    movl $__bss_zero_start, %edi
    movl $__bss_zero_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl
    movl $unikit_boot_stack_top, %esp

    /* Identity-map the first 1 GiB (kernel, boot data, low RAM). */
    movl $unikit_boot_pd + 0x23, unikit_boot_pdpt
    movl $unikit_boot_pdpt + 0x23, unikit_boot_pml4

    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $unikit_boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $unikit_boot_stack_top, %rsp
    movl unikit_start_info(%rip), %edi
    xorl %ebp, %ebp
    call {main}
3:  hlt
    jmp 3b
    .text
    "#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    main = sym pvh_main,
    options(att_syntax)
);

unsafe extern "C" {
    static unikit_boot_pml4: u8;
    static unikit_boot_pdpt: u8;
    static unikit_boot_pd: u8;
}

/// The three 4 KiB pages of the boot stub's page tables.
pub fn boot_page_tables() -> [u64; 3] {
    [&raw const unikit_boot_pml4 as u64, &raw const unikit_boot_pdpt as u64, &raw const unikit_boot_pd as u64]
}

/// Rust entry, called by the PVH stub on the boot stack with paging on.
pub extern "C" fn pvh_main(start_info: u64) -> ! {
    // SAFETY: boot CPU, interrupts off, before anything else uses the tables.
    unsafe {
        arch::gdt::init();
        arch::idt::init(pc::trap);
    }
    drivers::pc::i8259::mask_all();
    // SAFETY: the PVH contract: ebx (passed through) points at start_info.
    let params = match unsafe { start_info::parse(start_info) } {
        Ok(p) => p,
        Err(e) => pc::early_fail(format_args!("bad PVH start_info: {e:?}")),
    };
    pc::set_rsdp_hint(params.rsdp);
    let (img_lo, img_hi) = boot::kernel_image();
    let mut reserved = [Region::new(0, 0); 5];
    reserved[0] = Region::new(img_lo, img_hi);
    reserved[1..4].copy_from_slice(&params.boot_data);
    if let Some(rd) = params.initrd {
        reserved[4] = rd;
    }
    // SAFETY: the module is reserved RAM, mapped, never written.
    let initrd =
        params.initrd.map(|rd| unsafe { core::slice::from_raw_parts(rd.start as *const u8, rd.len() as usize) });
    let (lo, hi) = boot::boot_stack();
    // SAFETY: RAM from the memory map, identity mapped by the boot tables
    // (first 4 GiB) minus what holds the kernel and the boot data.
    unsafe {
        unikit_kernel::boot::enter(
            pc::HAL,
            BootInfo {
                args: Args::Kernel(command_line(params.cmdline)),
                memory: &params.ram[..params.nr_ram],
                reserved: &reserved,
                // start_info, the command line and the memory map: read by
                // now. On Xen they sit right after the modules, in low RAM
                // that a Linux program linked at 0x400000 needs.
                reclaimable: &params.boot_data,
                initrd,
                boot_stack: Region::new(lo, hi),
                hypervisor: pc::hypervisor().0.name(),
                boot_timestamp: boot::boot_tsc(),
            },
        )
    }
}

/// The guestinfo variable that replaces the disk's command line.
const GUESTINFO_CMDLINE: &str = "unikit.cmdline";
/// Longest command line taken from the host, and longest reply read: as
/// long as the PVH command lines `start_info` takes.
const CMDLINE_MAX: usize = 4096;

/// The command line built from guestinfo (no heap exists yet); taken
/// once, for good.
static CMDLINE: spin::Mutex<[u8; CMDLINE_MAX]> = spin::Mutex::new([0; CMDLINE_MAX]);

/// What became of `guestinfo.unikit.cmdline`, for the boot log.
#[derive(Clone, Copy)]
enum Guestinfo {
    Used,
    NotSet,
    Refused(&'static str),
    Failed(rpci::Error),
}

static GUESTINFO: spin::Once<Guestinfo> = spin::Once::new();

/// The command line to boot with. On VMware (the backdoor answers), the
/// host's `guestinfo.unikit.cmdline` (the `.vmx`, `vmware-rpctool`,
/// vSphere's advanced settings) replaces the disk's line, all but the
/// disk's own `unikit.bootdisk=` option, so that arguments, environment and
/// `netdev.ip=` change without rebuilding the disk. Elsewhere, or when the
/// host has no such variable or no RPCI channel (QEMU's vmport), the
/// disk's line stays. Not inlined: the 4 KiB reply buffer leaves the boot
/// stack when it returns.
#[inline(never)]
fn command_line(disk: &'static str) -> &'static str {
    if pc::vmware().is_none() {
        return disk;
    }
    let mut reply = [0u8; CMDLINE_MAX];
    let (outcome, line) = match rpci::guestinfo(&arch::hypervisor::PortBackdoor, GUESTINFO_CMDLINE, &mut reply) {
        Ok(None) => (Guestinfo::NotSet, disk),
        Err(e) => (Guestinfo::Failed(e), disk),
        Ok(Some(value)) => {
            // pvh_main runs once: the lock is free, and the line it holds
            // is the kernel's from now on.
            let Some(out) = CMDLINE.try_lock().map(spin::MutexGuard::leak) else { return disk };
            match rpci::merge_cmdline(disk, value, out) {
                Ok(Some(l)) => (Guestinfo::Used, l),
                Ok(None) => (Guestinfo::Refused("blank"), disk),
                Err(LineError::Text) => (Guestinfo::Refused("not plain text"), disk),
                Err(LineError::TooLong) => (Guestinfo::Refused("too long"), disk),
            }
        }
    };
    GUESTINFO.call_once(|| outcome);
    line
}

/// The boot log's word on guestinfo (VMware only; nothing elsewhere).
pub(crate) fn describe_guestinfo(out: &mut dyn Write) -> core::fmt::Result {
    match GUESTINFO.get() {
        None => Ok(()),
        Some(Guestinfo::Used) => out.write_str(", the command line came from guestinfo"),
        Some(Guestinfo::NotSet) => out.write_str(", no guestinfo.unikit.cmdline"),
        Some(Guestinfo::Failed(rpci::Error::NoChannel)) => out.write_str(", no RPCI channel (guestinfo not read)"),
        Some(Guestinfo::Failed(e)) => write!(out, ", guestinfo.unikit.cmdline not read: {e}"),
        Some(Guestinfo::Refused(why)) => write!(out, ", guestinfo.unikit.cmdline not used: {why}"),
    }
}
