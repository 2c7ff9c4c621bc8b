//! The application manifest (`.note.solo5.manifest`, `struct mft` in
//! include/mft_abi.h): validation as in tenders/common/mft.c
//! `mft_validate`, device lookup by name, and the copy the guest receives
//! with the attached devices filled in.

use unikit_abi::mft::{self as abi_mft, Mft, mft_type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    Block,
    Net,
}

impl DevType {
    pub fn name(self) -> &'static str {
        match self {
            DevType::Block => "block",
            DevType::Net => "net",
        }
    }
}

/// One declared device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Index in the manifest = the guest's `solo5_handle_t`.
    pub index: usize,
    pub name: String,
    pub kind: DevType,
}

/// A validated manifest: the raw bytes (copied to the guest) and the devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    raw: Vec<u8>,
    pub devices: Vec<Device>,
}

/// What the tender learned about an attached device (block: capacity and
/// block size; net: MAC and MTU).
pub type Attached = abi_mft::Device;

impl Manifest {
    /// Validate the note's content (`mft_validate`, in
    /// [`unikit_abi::mft::Mft::validate`]), then read the entries.
    pub fn parse(raw: &[u8]) -> Result<Manifest, String> {
        let m = Mft::validate(raw).map_err(|e| e.to_string())?;
        let devices = m
            .iter()
            .skip(1)
            .map(|e| {
                // validate() checked: names terminated and non-empty, types known.
                let name = String::from_utf8_lossy(e.name().unwrap_or_default()).into_owned();
                let kind = if e.kind() == mft_type::BLOCK_BASIC { DevType::Block } else { DevType::Net };
                Device { index: e.index, name, kind }
            })
            .collect();
        Ok(Manifest { raw: raw.to_vec(), devices })
    }

    pub fn find(&self, name: &str, kind: DevType) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name && d.kind == kind)
    }

    /// The manifest as the guest sees it: entries of `attached` filled in
    /// (`attached`, capacity/block size or MAC/MTU); the private `b` field
    /// is left zero (the host's descriptors are none of the guest's business).
    pub fn for_guest(&self, attached: &[(usize, Attached)]) -> Vec<u8> {
        let mut out = self.raw.clone();
        for &(index, a) in attached {
            // Indexes come from `devices`, which lie inside `raw`.
            let filled = abi_mft::fill(&mut out, index, a);
            debug_assert!(filled.is_ok());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testguest::mft;

    #[test]
    fn parses_devices() {
        let m = Manifest::parse(&mft(&[("service", 2), ("storage", 1)])).unwrap();
        assert_eq!(
            m.devices,
            [
                Device { index: 1, name: "service".into(), kind: DevType::Net },
                Device { index: 2, name: "storage".into(), kind: DevType::Block }
            ]
        );
        assert_eq!(m.find("storage", DevType::Block).unwrap().index, 2);
        assert!(m.find("storage", DevType::Net).is_none());
        // No devices at all is fine (hello).
        assert!(Manifest::parse(&mft(&[])).unwrap().devices.is_empty());
    }

    #[test]
    fn validation() {
        let good = mft(&[("service", 2)]);
        let check = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut m = good.clone();
            f(&mut m);
            Manifest::parse(&m).unwrap_err()
        };
        assert!(check(&|m| m[0] = 2).contains("version 2"));
        assert!(check(&|m| m[4] = 65).contains("65 entries"));
        assert!(check(&|m| m[4] = 3).contains("wrong structure layout"));
        assert!(check(&|m| m.truncate(4)).contains("too short"));
        assert!(
            check(&|m| {
                m[4] = 0;
                m.truncate(8)
            })
            .contains("no entries")
        );
        assert!(check(&|m| m[8 + 68] = 1).contains("reserved"));
        assert!(check(&|m| m[8] = b'x').contains("reserved"));
        assert!(check(&|m| m[8 + 104 + 67] = b'x').contains("unterminated"));
        assert!(check(&|m| m[8 + 104 + 96] = 1).contains("already marked attached"));
        assert!(check(&|m| m[8 + 104 + 68] = 7).contains("type 7"));
        assert!(check(&|m| m[8 + 104] = 0).contains("empty name"));
        let twice = mft(&[("a", 2), ("a", 2)]);
        assert!(Manifest::parse(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn guest_copy_fills_attached_entries() {
        let m = Manifest::parse(&mft(&[("service", 2), ("storage", 1)])).unwrap();
        let g = m.for_guest(&[
            (1, Attached::Net { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 }),
            (2, Attached::Block { capacity: 8 << 20, block_size: 512 }),
        ]);
        assert_eq!(g.len(), m.len());
        let e1 = &g[8 + 104..8 + 208];
        assert_eq!(&e1[72..78], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(u16::from_le_bytes([e1[78], e1[79]]), 1500);
        assert_eq!(e1[96], 1);
        let e2 = &g[8 + 208..];
        assert_eq!(u64::from_le_bytes(e2[72..80].try_into().unwrap()), 8 << 20);
        assert_eq!(u16::from_le_bytes([e2[80], e2[81]]), 512);
        assert_eq!(e2[96], 1);
        // The result validates as a manifest again except for `attached`.
        assert!(Manifest::parse(&g).unwrap_err().contains("attached"));
    }
}
