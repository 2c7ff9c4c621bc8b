//! The application manifest (Solo5 include/mft_abi.h, MFT_VERSION 1; the
//! layout and checks live in [`unikit_abi::mft`]): the image declares its
//! devices in the `.note.solo5.manifest` ELF note (written by build.rs with
//! `unikit_abi::mft::write_note` from `UNIKIT_SOLO5_DEVICES`); the tender
//! copies the manifest into low memory with the attached devices filled in
//! (block: capacity and block size; net: MAC and MTU) and passes its
//! address in the boot info. The copy is the tender's word, so every field
//! is checked against what the image declared.
use alloc::string::String;
use alloc::vec::Vec;

pub use unikit_abi::mft::Device;
use unikit_abi::mft::{Mft, MftError};

/// The note bytes, 8-aligned like `struct mft1_note` (it holds u64 fields).
#[repr(C, align(8))]
pub struct Note<const N: usize>(pub [u8; N]);

include!(concat!(env!("OUT_DIR"), "/solo5_manifest.rs"));

/// One device the tender attached: its handle (manifest index) and facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub handle: u64,
    pub name: String,
    pub dev: Device,
}

/// Parses the tender's copy of the manifest (`bytes` starts at `struct
/// mft`) against what the image declared (`declared`: type and name per
/// entry after the reserved first one). Returns the attached devices.
pub fn parse(bytes: &[u8], declared: &[(u32, &str)]) -> Result<Vec<Attached>, MftError> {
    let m = Mft::check_for_guest(bytes, declared)?;
    // check_for_guest() matched every entry against `declared`.
    Ok(m.attached()
        .filter_map(|(i, dev)| {
            let (_, name) = declared.get(i.checked_sub(1)?)?;
            Some(Attached { handle: i as u64, name: String::from(*name), dev })
        })
        .collect())
}

/// Bytes the manifest with `entries` entries occupies.
pub fn size(entries: usize) -> usize {
    unikit_abi::mft::size(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unikit_abi::mft::{self, mft_type};

    const DECLARED: &[(u32, &str)] = &[(mft_type::NET_BASIC, "service"), (mft_type::BLOCK_BASIC, "storage")];

    #[test]
    fn parses_attached_devices() {
        let mut m = vec![0u8; size(3)];
        mft::write(&mut m, DECLARED).unwrap();
        assert_eq!(parse(&m, DECLARED).unwrap(), vec![]);
        mft::fill(&mut m, 2, Device::Block { capacity: 8 << 20, block_size: 512 }).unwrap();
        assert_eq!(
            parse(&m, DECLARED).unwrap(),
            vec![Attached {
                handle: 2,
                name: "storage".into(),
                dev: Device::Block { capacity: 8 << 20, block_size: 512 }
            }]
        );
        assert!(parse(&m[..m.len() - 1], DECLARED).is_err());
    }

    #[test]
    fn note_matches_the_abi() {
        // The generated note: header, 4 bytes of alignment, then a manifest
        // that mft_validate accepts.
        let n = &SOLO5_MANIFEST_NOTE.0;
        let u32_at = |i: usize| u32::from_le_bytes(n[i..i + 4].try_into().unwrap());
        assert_eq!(u32_at(0), 6);
        assert_eq!(&n[12..18], b"Solo5\0");
        assert_eq!(u32_at(8), 0x3154_464d);
        assert_eq!(u32_at(4) as usize, n.len() - 20);
        let entries = u32_at(28) as usize;
        assert_eq!(entries, DEVICES.len() + 1);
        assert_eq!(n.len() - 24, size(entries));
        assert!(Mft::validate(&n[24..]).is_ok());
        assert_eq!(parse(&n[24..], DEVICES).unwrap(), vec![]);
    }
}
