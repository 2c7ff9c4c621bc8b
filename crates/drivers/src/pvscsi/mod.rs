//! VMware PVSCSI (paravirtual SCSI host adapter, PCI 15ad:07c0): every
//! disk it carries (targets 0..64, LUN 0) becomes a `BlockDevice` named
//! `pvscsi0`, `pvscsi1`, ... in target order.
//!
//! # Entry point
//!
//! [`probe_function`]`(cfg, f, mem, io, irq)` brings up one PVSCSI function
//! found by PCI enumeration (today called from `virtio::probe_pci`'s loop).
//!
//! # How it works (facts from Linux's drivers/scsi/vmw_pvscsi.h)
//!
//! BAR 0 is a 32 KiB memory window of registers. The driver resets the
//! adapter (`PVSCSI_CMD_ADAPTER_RESET`), masks its interrupts, and hands it
//! three pages with `PVSCSI_CMD_SETUP_RINGS` (the command to
//! `PVSCSI_REG_OFFSET_COMMAND`, then the descriptor a word at a time to
//! `..._COMMAND_DATA`, then `..._COMMAND_STATUS` must read 0): the rings
//! state page, one request ring page (32 descriptors) and one completion
//! ring page (128). A request is published by bumping `reqProdIdx` and a
//! write to `KICK_RW_IO` (READ/WRITE) or `KICK_NON_RW_IO` (the rest); the
//! device publishes its completion through `cmpProdIdx`.
//!
//! One command is outstanding at a time, through a 64 KiB bounce buffer
//! owned by the driver (as virtio-blk does). Completions interrupt through
//! the function's MSI capability (QEMU's pvscsi has MSI, not MSI-X) when
//! the platform gives an interrupt controller, with the completion sources
//! unmasked in `PVSCSI_REG_OFFSET_INTR_MASK` and acknowledged in
//! `..._INTR_STATUS`; otherwise they are polled. The boot line says which.
//! Everything the device writes is checked (see [`ring`]), and the SCSI
//! layer ([`crate::scsi`]) checks what the targets answer.
pub mod ring;

#[cfg(target_os = "none")]
mod dev;
#[cfg(target_os = "none")]
pub use dev::probe_function;

pub const VENDOR_VMWARE: u16 = 0x15ad;
pub const DEVICE_PVSCSI: u16 = 0x07c0;

/// Host adapter status codes (`enum HostBusAdapterStatus`).
pub mod btstat {
    pub const SUCCESS: u16 = 0x00;
    pub const LINKED_COMMAND_COMPLETED: u16 = 0x0a;
    pub const LINKED_COMMAND_COMPLETED_WITH_FLAG: u16 = 0x0b;
    pub const DATA_UNDERRUN: u16 = 0x0c;
    pub const SELTIMEO: u16 = 0x11;
    pub const DATARUN: u16 = 0x12;

    /// What a failing status means, for the error line.
    pub fn describe(s: u16) -> &'static str {
        match s {
            0x13 => "unexpected bus free",
            0x14 => "invalid bus phase",
            0x17 => "LUN mismatch",
            0x1a => "invalid parameter in the request",
            0x1b => "auto request sense failed",
            0x1c => "tagged queueing message rejected",
            0x1d => "unsupported message",
            0x20 => "host adapter hardware failed",
            0x21 => "target did not respond",
            0x22 | 0x23 | 0x25 => "bus reset",
            0x24 => "target reconnected improperly",
            0x26 => "command aborted",
            0x27 => "host adapter software error",
            0x30 => "host adapter timeout",
            0x34 => "SCSI parity error",
            _ => "unknown host adapter status",
        }
    }
}

use crate::scsi::{Reply, SENSE_LEN, STATUS_GOOD, ScsiError};

/// Turns a checked completion into the SCSI layer's answer: `len` bytes
/// were asked for; `sense` holds the autosense bytes.
pub fn reply_of(c: &ring::Completion, len: usize, sense: &[u8; SENSE_LEN]) -> Result<Reply, ScsiError> {
    let transferred = match c.host_status {
        btstat::SUCCESS | btstat::LINKED_COMMAND_COMPLETED | btstat::LINKED_COMMAND_COMPLETED_WITH_FLAG => len,
        // A short transfer: the device may say how much moved (QEMU
        // leaves dataLen 0), never more than asked (the ring checked).
        btstat::DATA_UNDERRUN | btstat::DATARUN => c.data_len as usize,
        btstat::SELTIMEO => return Err(ScsiError::NoTarget),
        s => return Err(ScsiError::Adapter(btstat::describe(s))),
    };
    let status = u8::try_from(c.scsi_status).map_err(|_| ScsiError::Broken("SCSI status out of range"))?;
    let sense_len = if status == STATUS_GOOD { 0 } else { c.sense_len as usize };
    Ok(Reply { status, transferred, sense: *sense, sense_len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::Completion;

    fn c(host: u16, scsi: u16, data_len: u64, sense_len: u32) -> Completion {
        Completion { data_len, sense_len, host_status: host, scsi_status: scsi }
    }

    #[test]
    fn completions_to_replies() {
        let s = [7u8; SENSE_LEN];
        assert_eq!(reply_of(&c(0, 0, 0, 0), 512, &s).unwrap().transferred, 512);
        assert_eq!(reply_of(&c(0x12, 0, 0, 0), 512, &s).unwrap().transferred, 0);
        assert_eq!(reply_of(&c(0x0c, 0, 36, 0), 96, &s).unwrap().transferred, 36);
        assert_eq!(reply_of(&c(0x11, 0, 0, 0), 512, &s), Err(ScsiError::NoTarget));
        assert_eq!(reply_of(&c(0x26, 0, 0, 0), 512, &s), Err(ScsiError::Adapter("command aborted")));
        assert_eq!(reply_of(&c(0x99, 0, 0, 0), 512, &s), Err(ScsiError::Adapter("unknown host adapter status")));
        assert!(matches!(reply_of(&c(0, 0x100, 0, 0), 512, &s), Err(ScsiError::Broken(_))));
        let r = reply_of(&c(0, 2, 0, 18), 512, &s).unwrap();
        assert_eq!((r.status, r.sense_len), (2, 18));
        // Sense bytes only count with a non-GOOD status.
        assert_eq!(reply_of(&c(0, 0, 0, 18), 512, &s).unwrap().sense_len, 0);
    }
}
