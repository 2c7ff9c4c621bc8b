//! DEC 21140/21143 "tulip" Ethernet (Hyper-V Generation 1's legacy network
//! adapter is a 21140; QEMU's `-device tulip` is a 21143), polled.
//!
//! # Entry point
//!
//! `probe_function(cfg, f, io, irq)` (guest only): if `f` is a DEC 21140
//! (1011:0009) or 21143 (1011:0019), brings it up through its I/O BAR
//! (assigned from `io` if unassigned) and registers it as a `NetDevice`
//! named `tulip0`, `tulip1`, ...
//!
//! The device: 16 CSRs, 8 bytes apart; descriptor rings in ring mode (the
//! last descriptor wraps), one 1536-byte buffer per descriptor, receive and
//! transmit buffers in one [`DmaRegion`]; the MAC address comes from the
//! serial ROM (a 93C46 behind CSR9, SROM format: address at byte 20) and is
//! programmed into the perfect filter with a setup frame. Interrupts (PCI
//! INTx through the I/O APIC) on receive, and on transmit only once half
//! the transmit ring is in flight (the stack then waits for room). The
//! line (PIIX3's PIRQ routing, else the firmware's interrupt line) is
//! checked at probe with one frame in internal loopback; where no
//! interrupt arrives, or none can be routed, the device is polled.
//!
//! Nothing the device writes is trusted: a received frame's length is
//! checked against its buffer and the Ethernet minimum, frames spread over
//! several descriptors or flagged with errors are dropped, and the driver
//! never reads back buffer addresses from the rings.
#![deny(unsafe_code)]
use core::sync::atomic::{Ordering, fence};
use unikit_io::DmaRegion;

/// PCI vendor DEC; the 21140 and the 21143.
pub const VENDOR_DEC: u16 = 0x1011;
pub const DEVICES: [u16; 2] = [0x0009, 0x0019];

pub const CSR0_SWR: u32 = 1 << 0;
pub const CSR5_W1C: u32 = 0x0001_ffff;
pub const CSR5_TI: u32 = 1 << 0;
pub const CSR5_RI: u32 = 1 << 6;
pub const CSR5_NIS: u32 = 1 << 16;
/// CSR7: interrupt on normal summary, receive, transmit (with IC).
pub const CSR7_ENABLE: u32 = CSR5_NIS | CSR5_RI | CSR5_TI;
pub const CSR6_SR: u32 = 1 << 1;
pub const CSR6_PR: u32 = 1 << 6;
pub const CSR6_PM: u32 = 1 << 7;
pub const CSR6_FD: u32 = 1 << 9;
pub const CSR6_OM: u32 = 3 << 10;
pub const CSR6_ST: u32 = 1 << 13;
pub const CSR6_RA: u32 = 1 << 30;

pub const CSR9_CS: u32 = 1 << 0;
pub const CSR9_SCLK: u32 = 1 << 1;
pub const CSR9_DI: u32 = 1 << 2;
pub const CSR9_DO: u32 = 1 << 3;
pub const CSR9_SR: u32 = 1 << 11;
pub const CSR9_RD: u32 = 1 << 14;

pub const DES0_OWN: u32 = 1 << 31;
pub const RDES0_ES: u32 = 1 << 15;
pub const RDES0_FS: u32 = 1 << 9;
pub const RDES0_LS: u32 = 1 << 8;
pub const RDES1_RER: u32 = 1 << 25;
pub const TDES1_IC: u32 = 1 << 31;
pub const TDES1_LS: u32 = 1 << 30;
pub const TDES1_FS: u32 = 1 << 29;
pub const TDES1_SET: u32 = 1 << 27;
pub const TDES1_TER: u32 = 1 << 25;

pub const RX_COUNT: usize = 32;
pub const TX_COUNT: usize = 32;
/// Each buffer: a full Ethernet frame and the 4-byte CRC the device counts
/// in a received frame's length (a multiple of 4, below the 2047 limit of
/// the descriptors' size fields).
pub const BUF: usize = 1536;
const DESC: usize = 16;
const SETUP_LEN: usize = 192;
const ETH_HEADER: usize = 14;
const CRC: usize = 4;

// Layout of the one DMA region.
pub const RX_RING: usize = 0;
pub const TX_RING: usize = RX_RING + RX_COUNT * DESC;
pub const SETUP: usize = TX_RING + TX_COUNT * DESC;
pub const RX_BUFS: usize = SETUP + 256;
pub const TX_BUFS: usize = RX_BUFS + RX_COUNT * BUF;
pub const REGION_LEN: usize = TX_BUFS + TX_COUNT * BUF;

/// Reset, setup-frame and SROM waits.
const TIMEOUT_NS: u64 = 100_000_000;

/// The control/status registers (CSR0..CSR15), and a clock.
pub trait Csr {
    fn read(&self, n: u16) -> u32;
    fn write(&self, n: u16, v: u32);
    /// Nanoseconds from some fixed point.
    fn now_ns(&self) -> u64;
}

/// Why the tulip failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TulipError {
    /// No room to send now.
    WouldBlock,
    /// Bad frame length (to send), or a received frame that was dropped
    /// (bad length, error flags, spread over several descriptors).
    BadLength,
    /// Set-up failed or the device broke the protocol.
    Broken(&'static str),
}

/// Reads word `word` of a 93Cx6 serial ROM with `addr_bits` address bits
/// through CSR9 (read opcode 110, address, then 16 data bits, MSB first;
/// data out is valid after each rising clock edge).
pub fn srom_read_word(csr: &impl Csr, addr_bits: u32, word: u16) -> u16 {
    let base = CSR9_SR | CSR9_RD;
    csr.write(9, base);
    csr.write(9, base | CSR9_CS);
    let cmd = (0b110u32 << addr_bits) | (word as u32 & ((1 << addr_bits) - 1));
    for i in (0..addr_bits + 3).rev() {
        let d = if cmd >> i & 1 != 0 { CSR9_DI } else { 0 };
        csr.write(9, base | CSR9_CS | d);
        csr.write(9, base | CSR9_CS | d | CSR9_SCLK);
        csr.write(9, base | CSR9_CS | d);
    }
    let mut v = 0u16;
    for _ in 0..16 {
        csr.write(9, base | CSR9_CS | CSR9_SCLK);
        v = v << 1 | (csr.read(9) & CSR9_DO != 0) as u16;
        csr.write(9, base | CSR9_CS);
    }
    csr.write(9, base);
    v
}

/// Whether `m` is a usable station address (not zero, not broadcast, not
/// multicast).
pub fn valid_mac(m: &[u8; 6]) -> bool {
    m != &[0; 6] && m[0] & 1 == 0
}

/// The MAC address from the SROM (bytes 20..26), trying the 93C46's 6
/// address bits, then the 93C66's 8.
pub fn read_mac(csr: &impl Csr) -> Result<[u8; 6], TulipError> {
    for bits in [6, 8] {
        let mut mac = [0u8; 6];
        for i in 0..3 {
            let w = srom_read_word(csr, bits, 10 + i as u16);
            mac[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        }
        if valid_mac(&mac) {
            return Ok(mac);
        }
    }
    Err(TulipError::Broken("tulip: the serial ROM holds no valid MAC address"))
}

/// Length of the frame a receive descriptor's status describes (CRC
/// stripped), or why it is dropped.
pub fn rx_frame_len(status: u32) -> Result<usize, TulipError> {
    if status & RDES0_ES != 0 {
        return Err(TulipError::BadLength);
    }
    if status & (RDES0_FS | RDES0_LS) != RDES0_FS | RDES0_LS {
        return Err(TulipError::BadLength);
    }
    let fl = (status >> 16 & 0x3fff) as usize;
    if !(ETH_HEADER + CRC..=BUF).contains(&fl) {
        return Err(TulipError::BadLength);
    }
    Ok(fl - CRC)
}

/// The 192-byte perfect-filter setup frame: 16 entries of three
/// little-endian longwords, each holding two address bytes in its low
/// half. Entry 0 is our address, entry 1 broadcast, the rest repeat ours.
pub fn setup_frame(mac: &[u8; 6]) -> [u8; SETUP_LEN] {
    let mut f = [0u8; SETUP_LEN];
    for (i, e) in f.chunks_exact_mut(12).enumerate() {
        let a = if i == 1 { [0xff; 6] } else { *mac };
        for j in 0..3 {
            e[4 * j..4 * j + 2].copy_from_slice(&a[2 * j..2 * j + 2]);
        }
    }
    f
}

/// Interrupt handler's part: clears the pending status bits; whether
/// there were any (the line may be shared).
pub fn ack(csr: &impl Csr) -> bool {
    let st = csr.read(5) & CSR5_W1C;
    if st != 0 {
        csr.write(5, st);
    }
    st != 0
}

/// Turns the device's interrupts on (after [`start`]).
pub fn enable_interrupts(csr: &impl Csr) {
    csr.write(5, CSR5_W1C);
    csr.write(7, CSR7_ENABLE);
}

/// Device address of region byte `off` as the 32-bit value the rings and
/// CSR3/CSR4 hold.
pub type Dma32 = fn(u64) -> Option<u32>;

fn dma32(region: &DmaRegion, to32: Dma32, off: usize) -> Result<u32, TulipError> {
    to32(region.dma_addr(off)).ok_or(TulipError::Broken("tulip: DMA memory above 4 GiB"))
}

/// Receive ring state.
pub struct Rx {
    next: usize,
}

/// Transmit ring state.
pub struct Tx {
    next: usize,
    done: usize,
    in_flight: usize,
}

/// Resets the chip, reads the MAC, lays out the rings, loads the address
/// filter and starts receive and transmit. Returns the MAC and the ring
/// states.
pub fn start(csr: &impl Csr, region: &DmaRegion, to32: Dma32) -> Result<([u8; 6], Rx, Tx), TulipError> {
    if region.len() < REGION_LEN {
        return Err(TulipError::Broken("tulip: DMA region too small"));
    }
    csr.write(0, CSR0_SWR);
    let t0 = csr.now_ns();
    // The chip needs 50 PCI clocks after a software reset.
    while csr.now_ns().wrapping_sub(t0) < 10_000 {
        core::hint::spin_loop();
    }
    // Little-endian descriptors, no skip between them (ring mode).
    csr.write(0, 0);
    csr.write(7, 0);
    csr.write(5, CSR5_W1C);
    let mac = read_mac(csr)?;
    for i in 0..RX_COUNT {
        let d = RX_RING + i * DESC;
        region.write::<u32>(d + 4, BUF as u32 | if i == RX_COUNT - 1 { RDES1_RER } else { 0 });
        region.write::<u32>(d + 8, dma32(region, to32, RX_BUFS + i * BUF)?);
        region.write::<u32>(d + 12, 0);
        region.write::<u32>(d, DES0_OWN);
    }
    for i in 0..TX_COUNT {
        let d = TX_RING + i * DESC;
        region.write::<u32>(d, 0);
        region.write::<u32>(d + 4, if i == TX_COUNT - 1 { TDES1_TER } else { 0 });
        region.write::<u32>(d + 8, dma32(region, to32, TX_BUFS + i * BUF)?);
        region.write::<u32>(d + 12, 0);
    }
    csr.write(3, dma32(region, to32, RX_RING)?);
    csr.write(4, dma32(region, to32, TX_RING)?);
    // Start transmit only, load the filter, then start receive.
    let mode = csr.read(6) & !(CSR6_SR | CSR6_ST | CSR6_PR | CSR6_PM | CSR6_RA | CSR6_OM) | CSR6_FD;
    csr.write(6, mode | CSR6_ST);
    let mut tx = Tx { next: 0, done: 0, in_flight: 0 };
    region.write_bytes(SETUP, &setup_frame(&mac));
    let d = TX_RING;
    region.write::<u32>(d + 4, TDES1_SET | SETUP_LEN as u32);
    region.write::<u32>(d + 8, dma32(region, to32, SETUP)?);
    fence(Ordering::SeqCst);
    region.write::<u32>(d, DES0_OWN);
    csr.write(1, 1);
    let t0 = csr.now_ns();
    while region.read::<u32>(d) & DES0_OWN != 0 {
        if csr.now_ns().wrapping_sub(t0) > TIMEOUT_NS {
            return Err(TulipError::Broken("tulip: the setup frame was not taken (transmit stalled)"));
        }
        core::hint::spin_loop();
    }
    region.write::<u32>(d + 8, dma32(region, to32, TX_BUFS)?);
    tx.next = 1;
    tx.done = 1;
    csr.write(6, mode | CSR6_ST | CSR6_SR);
    csr.write(2, 1);
    Ok((mac, Rx { next: 0 }, tx))
}

impl Rx {
    /// Whether the next receive descriptor holds a frame.
    pub fn pending(&self, region: &DmaRegion) -> bool {
        region.read::<u32>(RX_RING + self.next * DESC) & DES0_OWN == 0
    }

    /// Lends the next received frame to `f` (in place), then gives the
    /// descriptor back. `Ok(false)` when none is waiting; `BadLength` when
    /// one was dropped.
    pub fn receive_with(
        &mut self,
        csr: &impl Csr,
        region: &DmaRegion,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, TulipError> {
        let d = RX_RING + self.next * DESC;
        let status = region.read::<u32>(d);
        if status & DES0_OWN != 0 {
            return Ok(false);
        }
        fence(Ordering::SeqCst);
        let r = rx_frame_len(status);
        if let Ok(len) = r {
            // OWN is clear: the device is done with this buffer until the
            // descriptor is given back below.
            lend_rx(region, RX_BUFS + self.next * BUF, len, f);
        }
        // Give it back: our size and wrap bit (whatever the device wrote
        // there), then ownership.
        region.write::<u32>(d + 4, BUF as u32 | if self.next == RX_COUNT - 1 { RDES1_RER } else { 0 });
        fence(Ordering::SeqCst);
        region.write::<u32>(d, DES0_OWN);
        self.next = (self.next + 1) % RX_COUNT;
        // Receive poll demand: the device may have queued frames while the
        // ring was full.
        csr.write(2, 1);
        r.map(|_| true)
    }
}

impl Tx {
    fn reclaim(&mut self, region: &DmaRegion) {
        while self.in_flight > 0 && region.read::<u32>(TX_RING + self.done * DESC) & DES0_OWN == 0 {
            self.done = (self.done + 1) % TX_COUNT;
            self.in_flight -= 1;
        }
    }

    /// Lends transmit buffer space of `len` bytes to `f`, then sends it.
    pub fn transmit_with(
        &mut self,
        csr: &impl Csr,
        region: &DmaRegion,
        len: usize,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), TulipError> {
        if !(ETH_HEADER..=BUF).contains(&len) {
            return Err(TulipError::BadLength);
        }
        self.reclaim(region);
        if self.in_flight == TX_COUNT {
            return Err(TulipError::WouldBlock);
        }
        let i = self.next;
        lend_tx(region, TX_BUFS + i * BUF, len, f);
        let d = TX_RING + i * DESC;
        let wrap = if i == TX_COUNT - 1 { TDES1_TER } else { 0 };
        // An interrupt when this one is sent only once the ring fills up:
        // then the stack may be waiting for room.
        let ic = if self.in_flight + 1 >= TX_COUNT / 2 { TDES1_IC } else { 0 };
        region.write::<u32>(d + 4, TDES1_FS | TDES1_LS | wrap | ic | len as u32);
        fence(Ordering::SeqCst);
        region.write::<u32>(d, DES0_OWN);
        self.next = (i + 1) % TX_COUNT;
        self.in_flight += 1;
        // Transmit poll demand.
        csr.write(1, 1);
        Ok(())
    }
}

#[cfg(target_os = "none")]
use guest::{lend_rx, lend_tx};

/// Host builds: the frame goes through a copy (the zero-copy lend is the
/// guest's, which carries the `unsafe`).
#[cfg(not(target_os = "none"))]
fn lend_rx(region: &DmaRegion, off: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
    let mut v = alloc::vec![0u8; len];
    region.read_bytes(off, &mut v);
    f(&v);
}

#[cfg(not(target_os = "none"))]
fn lend_tx(region: &DmaRegion, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8])) {
    let mut v = alloc::vec![0u8; len];
    f(&mut v);
    region.write_bytes(off, &v);
}

#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
pub use guest::probe_function;

#[cfg(test)]
mod tests;
