//! The PVSCSI function: registers, set-up, the command path and the disks.
use super::reply_of;
use super::ring::{self, Request, Rings};
use crate::irq::{InterruptController, IrqHandler};
use crate::pci::{self, ConfigAccess, Window};
use crate::scsi::{self, Data, READ_10, READ_16, Reply, SENSE_LEN, ScsiError, Transport, WRITE_10, WRITE_16};
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use unikit_io::{Broken, DmaRegion, IoMem};
use unikit_kernel::dev::{BlockDevice, DevError, check_block_request};
use unikit_kernel::event::Event;
use unikit_kernel::sync::Mutex;

/// Register offsets (`enum PVSCSIRegOffset`).
const REG_COMMAND: usize = 0x0;
const REG_COMMAND_DATA: usize = 0x4;
const REG_COMMAND_STATUS: usize = 0x8;
const REG_INTR_STATUS: usize = 0x100c;
const REG_INTR_MASK: usize = 0x2010;
const REG_KICK_NON_RW_IO: usize = 0x3014;
const REG_KICK_RW_IO: usize = 0x4018;
/// The registers used lie below this (KICK_RW_IO + 4).
const REGS_LEN: u64 = 0x401c;

/// Commands (`enum PVSCSICommands`).
const CMD_ADAPTER_RESET: u32 = 1;
const CMD_SETUP_RINGS: u32 = 3;

/// `PVSCSI_INTR_CMPL_MASK`: the completion interrupt sources.
const INTR_CMPL_MASK: u32 = 0b11;

/// PCI MSI capability (PCI Local Bus 3.0, 6.8.1): ID, and the control
/// register's bits.
const CAP_MSI: u8 = 0x05;
const MSI_ENABLE: u16 = 1 << 0;
const MSI_MULTIPLE_ENABLE: u16 = 0b111 << 4;
const MSI_64BIT: u16 = 1 << 7;

/// Targets scanned (QEMU's and ESXi's PVSCSI carry up to 64).
const MAX_TARGETS: u8 = 64;
/// Bounce buffer: the largest transfer per command.
const CHUNK: usize = 64 * 1024;
/// A command the device has not completed after this long breaks it.
const TIMEOUT_NS: u64 = 30_000_000_000;

static DISKS: AtomicUsize = AtomicUsize::new(0);

struct Inner {
    rings: Rings,
    data: DmaRegion,
    sense: DmaRegion,
    context: u32,
}

/// One adapter: shared by its disks, one command at a time.
struct Controller {
    regs: IoMem,
    inner: Mutex<Inner>,
    broken: Broken,
    /// Signalled by the completion interrupt (when `irq`).
    event: &'static Event,
    irq: bool,
}

/// The MSI handler: acknowledges the completion interrupt and wakes the
/// waiting command.
struct Handler {
    regs: IoMem,
    event: &'static Event,
}

impl IrqHandler for Handler {
    fn handle(&self) {
        // INTR_STATUS is write-1-to-clear.
        let s = self.regs.read::<u32>(REG_INTR_STATUS).unwrap_or(0);
        if s != 0 {
            self.regs.write::<u32>(REG_INTR_STATUS, s);
        }
        self.event.signal();
    }
}

/// Programs and enables the function's MSI capability with `irq`'s message
/// for `handler`; `false` when there is no capability or no vector.
fn enable_msi(
    cfg: &'static dyn ConfigAccess,
    addr: pci::PciAddress,
    irq: &'static dyn InterruptController,
    handler: &'static dyn IrqHandler,
) -> bool {
    let caps = pci::capabilities(cfg, addr);
    let Some(&(_, cap)) = caps.iter().find(|c| c.0 == CAP_MSI) else { return false };
    let ctrl = cfg.read16(addr, cap + 2);
    let Some(msg) = irq.alloc_msi(handler) else { return false };
    cfg.write32(addr, cap + 4, msg.address as u32);
    if ctrl & MSI_64BIT != 0 {
        cfg.write32(addr, cap + 8, (msg.address >> 32) as u32);
        cfg.write16(addr, cap + 12, msg.data as u16);
    } else if msg.address >> 32 != 0 {
        return false;
    } else {
        cfg.write16(addr, cap + 8, msg.data as u16);
    }
    // One vector, enabled; INTx off.
    cfg.write16(addr, cap + 2, (ctrl & !MSI_MULTIPLE_ENABLE) | MSI_ENABLE);
    pci::enable(cfg, addr, pci::CMD_INTX_DISABLE);
    true
}

impl Controller {
    fn write(&self, off: usize, v: u32) {
        self.regs.write::<u32>(off, v);
    }

    fn read(&self, off: usize) -> u32 {
        self.regs.read::<u32>(off).unwrap_or(u32::MAX)
    }

    /// The first protocol violation: remembered, the adapter reset (so it
    /// stops using our memory), said once; every later command fails.
    fn fail(&self, why: &'static str) -> ScsiError {
        let (why, first) = self.broken.set_first(why);
        if first {
            self.write(REG_COMMAND, CMD_ADAPTER_RESET);
            dwarn!("pvscsi: adapter broken ({why}); it is no longer used");
        }
        ScsiError::Broken(why)
    }

    fn setup(&self) -> Result<(), &'static str> {
        self.write(REG_COMMAND, CMD_ADAPTER_RESET);
        // Polled: no interrupt sources (until the rings are set up).
        self.write(REG_INTR_MASK, 0);
        let mut g = self.inner.lock();
        let words = g.rings.setup_words();
        self.write(REG_COMMAND, CMD_SETUP_RINGS);
        for w in words {
            self.write(REG_COMMAND_DATA, w);
        }
        match self.read(REG_COMMAND_STATUS) {
            0 => {
                g.rings.reset_indexes();
                if self.irq {
                    self.write(REG_INTR_MASK, INTR_CMPL_MASK);
                }
                Ok(())
            }
            _ => Err("the adapter refused PVSCSI_CMD_SETUP_RINGS"),
        }
    }
}

impl Transport for Controller {
    fn pause(&self) {
        unikit_kernel::time::sleep_ns(100_000_000);
    }

    fn execute(&self, target: u8, cdb: &[u8], data: Data<'_>) -> Result<Reply, ScsiError> {
        self.broken.check().map_err(ScsiError::Broken)?;
        let len = data.len();
        if len > CHUNK {
            return Err(ScsiError::Adapter("transfer larger than the bounce buffer"));
        }
        let mut g = self.inner.lock();
        let st = &mut *g;
        let flags = match &data {
            Data::None => ring::FLAG_DIR_NONE,
            Data::In(_) => ring::FLAG_DIR_TOHOST,
            Data::Out(b) => {
                st.data.write_bytes(0, b);
                ring::FLAG_DIR_TODEVICE
            }
        };
        // Context ids are never 0 and fit in 32 bits (the header's rule).
        st.context = st.context.wrapping_add(1).max(1);
        let context = st.context as u64;
        st.sense.fill(0, SENSE_LEN, 0);
        let req = Request {
            context,
            target,
            cdb,
            flags,
            data_addr: if len == 0 { 0 } else { st.data.dma_addr(0) },
            data_len: len as u64,
            sense_addr: st.sense.dma_addr(0),
            sense_len: SENSE_LEN as u32,
        };
        st.rings.push(&req).map_err(|e| self.fail(e.0))?;
        let rw = matches!(cdb[0], READ_10 | WRITE_10 | READ_16 | WRITE_16);
        self.write(if rw { REG_KICK_RW_IO } else { REG_KICK_NON_RW_IO }, 0);

        let deadline = unikit_kernel::time::monotonic_ns().saturating_add(TIMEOUT_NS);
        let mut spins = 0u32;
        let c = loop {
            match st.rings.pop(context, len as u64, SENSE_LEN as u32) {
                Ok(Some(c)) => break c,
                Ok(None) => {}
                Err(e) => return Err(self.fail(e.0)),
            }
            let now = unikit_kernel::time::monotonic_ns();
            if now > deadline {
                return Err(self.fail("command timed out"));
            }
            if self.irq {
                // The ring is checked again after every wake-up (and every
                // 10 ms, should an interrupt go missing).
                self.event.wait(Some(now + 10_000_000));
            } else {
                spins += 1;
                if spins.is_multiple_of(64) {
                    unikit_kernel::sched::yield_now();
                } else {
                    core::hint::spin_loop();
                }
            }
        };
        let mut sense = [0u8; SENSE_LEN];
        st.sense.read_bytes(0, &mut sense);
        let r = reply_of(&c, len, &sense).map_err(|e| match e {
            ScsiError::Broken(why) => self.fail(why),
            e => e,
        })?;
        if let Data::In(b) = data {
            let n = r.transferred.min(b.len());
            st.data.read_bytes(0, &mut b[..n]);
            b[n..].fill(0);
        }
        Ok(r)
    }
}

/// One disk: a target on an adapter.
struct Disk {
    name: String,
    ctl: &'static Controller,
    target: u8,
    info: scsi::DiskInfo,
    /// Bytes per command: the bounce buffer, in whole blocks.
    chunk: usize,
}

impl Disk {
    /// The SCSI error as a `DevError`, said on the console with the
    /// decoded sense data (the `DevError` alone cannot carry it).
    fn err(&self, what: &str, at: u64, e: ScsiError) -> DevError {
        if !matches!(e, ScsiError::Broken(_)) {
            dwarn!("{}: {what} at block {at}: {e}", self.name);
        }
        match e {
            ScsiError::Broken(why) => DevError::Broken(why),
            ScsiError::Sense(s) if s.key == scsi::KEY_DATA_PROTECT => DevError::ReadOnly,
            ScsiError::Sense(s) if s.key == scsi::KEY_ILLEGAL_REQUEST && s.asc == 0x21 => DevError::OutOfRange,
            _ => DevError::Io,
        }
    }
}

impl BlockDevice for Disk {
    fn name(&self) -> &str {
        &self.name
    }
    fn block_size(&self) -> usize {
        self.info.block_size as usize
    }
    fn num_blocks(&self) -> u64 {
        self.info.blocks
    }
    fn read_only(&self) -> bool {
        self.info.read_only
    }

    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.ctl.broken.check().map_err(DevError::Broken)?;
        check_block_request(self, block, buf.len())?;
        scsi::read(self.ctl, self.target, self.block_size(), self.chunk, block, buf)
            .map_err(|e| self.err("read", block, e))
    }

    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        self.ctl.broken.check().map_err(DevError::Broken)?;
        if self.info.read_only {
            return Err(DevError::ReadOnly);
        }
        check_block_request(self, block, buf.len())?;
        scsi::write(self.ctl, self.target, self.block_size(), self.chunk, block, buf)
            .map_err(|e| self.err("write", block, e))
    }

    fn flush(&self) -> Result<(), DevError> {
        self.ctl.broken.check().map_err(DevError::Broken)?;
        if self.info.read_only {
            return Ok(());
        }
        scsi::sync_cache(self.ctl, self.target).map_err(|e| self.err("flush", 0, e))
    }
}

/// Makes `[base, base + len)` accessible: the platform maps it, or it is
/// already identity mapped.
fn map_mmio(base: u64, len: u64) -> bool {
    let p = unikit_kernel::hal().memory;
    if len == 0 || base.checked_add(len).is_none() {
        return false;
    }
    if p.map_device(base, len) {
        return true;
    }
    let start = base & !0xfff;
    let end = (base + len).next_multiple_of(0x1000);
    (start..end).step_by(0x1000).all(|a| p.virt_to_phys(a) == Some(a))
}

/// Brings up one PVSCSI function and registers every disk on it.
pub fn probe_function(
    cfg: &'static dyn ConfigAccess,
    f: &pci::Function,
    mem: &mut Window,
    _io: &mut Window,
    irq: Option<&'static dyn InterruptController>,
) -> Result<(), &'static str> {
    let addr = f.addr;
    if f.header_type & 0x7f != 0 {
        return Err("not a type 0 PCI function");
    }
    let mut bars = pci::read_bars(cfg, addr);
    let cmd = cfg.read16(addr, pci::COMMAND);
    cfg.write16(addr, pci::COMMAND, cmd & !(pci::CMD_IO | pci::CMD_MEMORY));
    let bar = bars[0].as_mut().filter(|b| !b.is_io()).ok_or("BAR 0 is not a memory BAR")?;
    if bar.size < REGS_LEN {
        return Err("BAR 0 is too small for the PVSCSI registers");
    }
    if bar.base == 0 {
        // Assign what the firmware left at 0 (only on bus 0: behind a
        // bridge the address would also need the bridge's window).
        if addr.bus != 0 {
            return Err("unassigned BAR behind a bridge");
        }
        let base = mem.alloc(bar.size.max(4096)).ok_or("no room to assign BAR 0")?;
        pci::set_bar(cfg, addr, bar, base);
    }
    let (base, size) = (bar.base, bar.size.min(0x8000));
    // INTx off (MSI or polling); memory decoding and DMA on.
    cfg.write16(addr, pci::COMMAND, cmd & !pci::CMD_IO | pci::CMD_MEMORY | pci::CMD_BUS_MASTER | pci::CMD_INTX_DISABLE);
    if !map_mmio(base, size) {
        return Err("cannot map BAR 0 (Platform::map_device unsupported and not identity mapped)");
    }
    // SAFETY: `map_mmio` just made `[base, base + size)` accessible
    // (uncached); it is this function's memory BAR 0 (size checked above).
    let regs = unsafe { IoMem::new(base as usize, size as usize) };
    let inner = Inner {
        rings: Rings::new().ok_or("out of memory for the rings")?,
        data: DmaRegion::alloc(CHUNK, 4096).ok_or("out of memory for the bounce buffer")?,
        sense: DmaRegion::alloc(SENSE_LEN, 64).ok_or("out of memory for the sense buffer")?,
        context: 0,
    };
    let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
    let irq = match irq {
        Some(ctrl) => {
            let handler: &'static Handler = alloc::boxed::Box::leak(alloc::boxed::Box::new(Handler { regs, event }));
            enable_msi(cfg, addr, ctrl, handler)
        }
        None => false,
    };
    let ctl: &'static Controller = alloc::boxed::Box::leak(alloc::boxed::Box::new(Controller {
        regs,
        inner: Mutex::new(inner),
        broken: Broken::new(),
        event,
        irq,
    }));
    ctl.setup()?;
    let mut found = 0;
    for target in 0..MAX_TARGETS {
        let info = match scsi::identify(ctl, target) {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(e @ ScsiError::Broken(_)) => {
                dwarn!("pvscsi: pci {addr}: {e}; adapter skipped");
                break;
            }
            Err(e) => {
                dwarn!("pvscsi: pci {addr} target {target}: {e}; skipped");
                continue;
            }
        };
        let n = DISKS.fetch_add(1, Ordering::Relaxed);
        let bs = info.block_size as usize;
        dlog!(
            "pvscsi{n}: pci {addr} target {target}, {}, {} blocks of {bs} bytes{}{}, {}",
            info.model,
            info.blocks,
            if info.long_lba { " (16-byte LBAs)" } else { "" },
            if info.read_only { " (read-only)" } else { "" },
            if ctl.irq { "interrupts (MSI)" } else { "polled" },
        );
        let disk = Disk { name: format!("pvscsi{n}"), ctl, target, chunk: CHUNK / bs * bs, info };
        unikit_kernel::dev::register_block(Arc::new(disk));
        found += 1;
    }
    if found == 0 {
        dlog!("pvscsi: pci {addr}: no disks");
    }
    Ok(())
}
