//! Finding the domain's paravirtual devices on xenstore and registering
//! them with the kernel. The platform calls [`probe_devices`] (through its
//! `__unikit_probe_devices`) once xenstore and the grant table are up.
use super::blkfront::BlkFront;
use super::netfront::NetFront;
use super::xenstore;
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use unikit_kernel::dev::{self, BlockDevice, NetDevice};

/// The device ids under `device/<kind>`, in numeric order; none if the
/// directory does not exist.
fn devices(kind: &str) -> Vec<String> {
    match xenstore::directory(&format!("device/{kind}")) {
        Ok(mut ids) => {
            ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
            ids
        }
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            dwarn!("xen: cannot list device/{kind}: {e}");
            Vec::new()
        }
    }
}

/// Brings up every vif and vbd of the domain; returns how many were
/// registered. A device that fails is reported and skipped.
pub fn probe_devices() -> usize {
    let (mut nets, mut disks) = (0, 0);
    for id in devices("vif") {
        let n = nets;
        let node = format!("device/vif/{id}");
        match NetFront::new(format!("xen-net{n}"), node.clone()) {
            Ok(dev) => {
                dlog!("xen-net{n}: {node}, backend {}, mac {}, interrupts", dev.backend(), crate::Mac(dev.mac()));
                dev::register_net(Arc::new(dev));
                nets += 1;
            }
            Err(e) => dwarn!("xen: {node}: {e}; skipped"),
        }
    }
    for id in devices("vbd") {
        let n = disks;
        let node = format!("device/vbd/{id}");
        match BlkFront::new(format!("xen-blk{n}"), node.clone()) {
            Ok(dev) => {
                dlog!(
                    "xen-blk{n}: {node}, backend {}, {} sectors of {} bytes{}, interrupts",
                    dev.backend(),
                    dev.num_blocks(),
                    dev.block_size(),
                    if dev.read_only() { " (read-only)" } else { "" }
                );
                dev::register_block(Arc::new(dev));
                disks += 1;
            }
            Err(e) => dwarn!("xen: {node}: {e}; skipped"),
        }
    }
    nets + disks
}

/// This domain's id, from xenstore ("domid").
pub fn domid() -> Result<u16, xenstore::Error> {
    xenstore::read_int("domid")
}
