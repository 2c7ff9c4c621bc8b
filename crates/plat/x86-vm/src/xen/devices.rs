//! Device discovery on Xen: the xenstore ring and the grant table are set
//! up on first use (a program that never asks for devices never pays for
//! them), then netfront and blkfront find their devices on xenstore.
use super::MMU;
use super::mmu::{self, PAGE};
use drivers::xen::{gnttab, xenstore};
use spin::Once;

/// Grant table size: 4 frames of 512 v1 entries, room for a net device's
/// two 256-slot rings and a disk's requests.
const GRANT_FRAMES: usize = 4;

#[repr(C, align(4096))]
struct Pages([[u8; 4096]; GRANT_FRAMES]);
/// The virtual pages the grant table frames are mapped over.
static mut GRANT_PAGES: Pages = Pages([[0; 4096]; GRANT_FRAMES]);

/// The xenstore ring (virtual address) and its event channel, from boot.
pub(crate) static STORE: Once<(u64, u32)> = Once::new();

fn map_grant_table_pv() -> Result<(), &'static str> {
    let frames = gnttab::setup_table(GRANT_FRAMES as u32).map_err(|_| "GNTTABOP_setup_table failed")?;
    let base = &raw mut GRANT_PAGES as u64;
    for (i, mfn) in frames.iter().enumerate() {
        mmu::update_va_mapping(base + i as u64 * PAGE, (mfn << 12) | mmu::RAM)
            .map_err(|_| "mapping the grant table")?;
    }
    // SAFETY: the frames were just mapped over our own pages, which are
    // never used for anything else.
    unsafe { gnttab::init(base as *mut u8, frames.len() as u32) };
    Ok(())
}

fn map_grant_table_hvm() -> Result<(), &'static str> {
    let base = &raw mut GRANT_PAGES as u64;
    for i in 0..GRANT_FRAMES as u64 {
        super::hvm::add_to_physmap(drivers::xen::abi::XENMAPSPACE_GRANT_TABLE, i, base / PAGE + i)
            .map_err(|_| "XENMEM_add_to_physmap(grant_table) failed")?;
    }
    // SAFETY: the grant frames now back our own pages, used for nothing else.
    unsafe { gnttab::init(base as *mut u8, GRANT_FRAMES as u32) };
    Ok(())
}

/// Called through the image's `__unikit_probe_devices` on Xen.
pub fn probe() {
    let Some(&(ring, port)) = STORE.get() else { return };
    // SAFETY: the xenstore page is mapped for the life of the domain.
    let Some(ring) = (unsafe { drivers::io::DmaRegion::from_raw(ring as *mut u8, 4096) }) else { return };
    xenstore::init(ring, port);
    let grants = if MMU.get().is_some() { map_grant_table_pv() } else { map_grant_table_hvm() };
    if let Err(e) = grants {
        unikit_kernel::kprintln!("unikit: xen: no grant table ({e}); no devices");
        return;
    }
    drivers::xen::probe::probe_devices();
}
