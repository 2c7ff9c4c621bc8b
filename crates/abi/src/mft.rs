//! The Solo5 application manifest (include/mft_abi.h, `MFT_VERSION` 1).
//!
//! The image declares its devices in the `.note.solo5.manifest` ELF note
//! ([`write_note`], used by the guest's build script); the tender validates
//! it as Solo5's `mft_validate` does ([`Mft::validate`], from
//! tenders/common/mft.c), copies it into the guest's low memory with the
//! attached devices filled in ([`fill`]), and the guest reads that copy
//! back against what it declared ([`Mft::check_for_guest`]). Both reads
//! treat the bytes as hostile: every field is checked, nothing panics.
//!
//! Layout (x86_64 C layout of `struct mft` and `struct mft_entry`):
//!
//! ```text
//! struct mft { u32 version; u32 entries; struct mft_entry e[]; }   // 8 + 104 * n
//! struct mft_entry {
//!     char name[68];                               //  0 (MFT_NAME_SIZE)
//!     mft_type_t type;                             // 68 (enum: 4 bytes)
//!     union { struct { u64 capacity; u16 block_size; } block_basic;
//!             struct { u8 mac[6]; u16 mtu; } net_basic; } u;   // 72, 16 bytes
//!     union { int hostfd; void *data; } b;         // 88, private to the tender
//!     bool attached;                               // 96; size padded to 104
//! };
//! ```
//!
//! The note (`struct mft1_note`): a 20-byte Solo5 note header, 4 bytes of
//! padding (`MFT1_NOTE_ALIGN` = 8), then `struct mft`.

use core::fmt;

use crate::bytes::{put, u16_at, u32_at, u64_at};
use crate::hvt::{MFT1_NOTE_ALIGN, MFT1_NOTE_TYPE, NOTE_HDR_SIZE, NOTE_NAME};

/// `MFT_VERSION`.
pub const MFT_VERSION: u32 = 1;
/// `MFT_MAX_ENTRIES`, the reserved first entry included.
pub const MFT_MAX_ENTRIES: usize = 64;
/// `sizeof(struct mft)` without entries (version, entries).
pub const MFT_HDR_SIZE: usize = 8;
/// `sizeof(struct mft_entry)`.
pub const MFT_ENTRY_SIZE: usize = 104;
/// `MFT_NAME_SIZE`, including the terminator.
pub const MFT_NAME_SIZE: usize = 68;
/// `MFT_NAME_MAX`: longest name.
pub const MFT_NAME_MAX: usize = 67;
/// Offset of `struct mft` in the note: the header padded to
/// `MFT1_NOTE_ALIGN`.
pub const NOTE_MFT_OFFSET: usize = NOTE_HDR_SIZE.next_multiple_of(MFT1_NOTE_ALIGN);

/// `mft_type_t`.
pub mod mft_type {
    /// `MFT_DEV_BLOCK_BASIC`.
    pub const BLOCK_BASIC: u32 = 1;
    /// `MFT_DEV_NET_BASIC`.
    pub const NET_BASIC: u32 = 2;
    /// `MFT_RESERVED_FIRST`: the type of entry 0.
    pub const RESERVED_FIRST: u32 = 1 << 30;
}

/// `struct mft_entry` field offsets.
pub mod mft_entry {
    /// `name`.
    pub const NAME: usize = 0;
    /// `type`.
    pub const TYPE: usize = 68;
    /// `u.block_basic.capacity` (u64).
    pub const BLOCK_CAPACITY: usize = 72;
    /// `u.block_basic.block_size` (u16).
    pub const BLOCK_SIZE: usize = 80;
    /// `u.net_basic.mac` ([u8; 6]).
    pub const NET_MAC: usize = 72;
    /// `u.net_basic.mtu` (u16).
    pub const NET_MTU: usize = 78;
    /// `b.hostfd` (int) / `b.data` (pointer): private to the tender.
    pub const HOSTFD: usize = 88;
    /// `attached` (bool).
    pub const ATTACHED: usize = 96;
}

/// Bytes a manifest with `entries` entries (the reserved one included)
/// occupies.
pub const fn size(entries: usize) -> usize {
    MFT_HDR_SIZE + entries * MFT_ENTRY_SIZE
}

/// Bytes of the MFT1 note for `devices` declared devices.
pub const fn note_size(devices: usize) -> usize {
    NOTE_MFT_OFFSET + size(devices + 1)
}

/// What an attached device is, as the tender describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// `MFT_DEV_NET_BASIC`.
    Net {
        /// Interface MAC address.
        mac: [u8; 6],
        /// MTU.
        mtu: u16,
    },
    /// `MFT_DEV_BLOCK_BASIC`.
    Block {
        /// Device size in bytes.
        capacity: u64,
        /// Block size in bytes.
        block_size: u16,
    },
}

/// Why a manifest (or a request to write one) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MftError {
    /// Shorter than the header.
    TooShort(usize),
    /// `version` is not [`MFT_VERSION`].
    Version(u32),
    /// More than [`MFT_MAX_ENTRIES`] entries.
    TooManyEntries(usize),
    /// The note's size does not match its entry count (tender check).
    WrongSize {
        /// Bytes found.
        len: usize,
        /// Entries declared.
        entries: usize,
    },
    /// The bytes end before the last entry (guest check).
    Truncated {
        /// Bytes found.
        len: usize,
        /// Entries declared.
        entries: usize,
    },
    /// No entries at all.
    NoEntries,
    /// Entry 0 is not the unnamed `MFT_RESERVED_FIRST` entry.
    FirstNotReserved,
    /// Entry's name has no NUL within [`MFT_NAME_SIZE`] bytes.
    UnterminatedName(usize),
    /// Entry's name is empty.
    EmptyName(usize),
    /// Entry is marked attached in the image's own note.
    AlreadyAttached(usize),
    /// Entry's `attached` byte is neither 0 nor 1.
    AttachedNotBool(usize),
    /// Entry has a type that is not a device type.
    UnknownType {
        /// Entry index.
        index: usize,
        /// The type found.
        ty: u32,
    },
    /// A device (name and type) is declared twice.
    Duplicate(usize),
    /// The tender's copy has another number of entries than the image.
    EntryCount {
        /// Entries in the copy.
        found: usize,
        /// Entries the image declared (the reserved one included).
        declared: usize,
    },
    /// The tender's copy changed an entry's name or type.
    Differs(usize),
    /// An attached network device has an unusable MAC or MTU.
    BadNet(usize),
    /// An attached block device has an unusable capacity or block size.
    BadBlock(usize),
    /// Writing: a device name is empty, too long or not [A-Za-z0-9].
    BadName(usize),
    /// Writing: the output buffer has the wrong size.
    BufferSize {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
}

impl MftError {
    /// The entry the error is about, for the errors about one entry.
    fn entry(&self) -> Option<usize> {
        use MftError::*;
        match *self {
            UnterminatedName(i) | EmptyName(i) | AlreadyAttached(i) | AttachedNotBool(i) | Duplicate(i) => Some(i),
            Differs(i) | BadNet(i) | BadBlock(i) | UnknownType { index: i, .. } => Some(i),
            _ => None,
        }
    }
}

// The subject ("the Solo5 manifest", "'s entry N") is written once rather
// than in every arm: each formatted arm costs code and a table of string
// pieces, and the guest links this for its fatal boot message.
impl fmt::Display for MftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MftError::*;
        match *self {
            BadName(i) => return write!(f, "device {i}: a name is 1 to {MFT_NAME_MAX} bytes of A-Z, a-z and 0-9"),
            BufferSize { len, need } => return write!(f, "manifest buffer is {len} bytes, {need} needed"),
            _ => {}
        }
        f.write_str("the Solo5 manifest")?;
        if let Some(i) = self.entry() {
            write!(f, "'s entry {i}")?;
        }
        match *self {
            TooShort(n) => write!(f, " is too short ({n} bytes)"),
            Version(v) => write!(f, " has version {v}; this reader knows version {MFT_VERSION}"),
            TooManyEntries(n) => write!(f, " declares {n} entries (at most {MFT_MAX_ENTRIES})"),
            WrongSize { len, entries } => {
                write!(f, " is {len} bytes, but {entries} entries take {} (wrong structure layout?)", size(entries))
            }
            Truncated { len, entries } => {
                write!(f, " is truncated ({len} bytes, {entries} entries take {})", size(entries))
            }
            NoEntries => f.write_str(" has no entries (the first must be the reserved one)"),
            FirstNotReserved => f.write_str("'s first entry is not the reserved (unnamed, RESERVED_FIRST) one"),
            UnterminatedName(_) => f.write_str(" has an unterminated name"),
            EmptyName(_) => f.write_str(" has an empty name"),
            AlreadyAttached(_) => f.write_str(" is already marked attached"),
            AttachedNotBool(_) => f.write_str(" has an 'attached' flag that is not a bool"),
            UnknownType { ty, .. } => write!(f, " has type {ty}, which is not a Solo5 device type"),
            Duplicate(_) => f.write_str(" declares a device twice (same name and type as an earlier entry)"),
            EntryCount { found, declared } => write!(f, " has {found} entries, but the image declared {declared}"),
            Differs(_) => f.write_str(" differs from the image's"),
            BadNet(_) => f.write_str(": network device MTU or MAC invalid"),
            BadBlock(_) => f.write_str(": block device capacity or block size invalid"),
            BadName(_) | BufferSize { .. } => Ok(()),
        }
    }
}

/// One `struct mft_entry`.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Index in the manifest = the guest's `solo5_handle_t`.
    pub index: usize,
    raw: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The name without its NUL; `None` if it is not terminated.
    pub fn name(&self) -> Option<&'a [u8]> {
        let n = self.raw.get(..MFT_NAME_SIZE)?;
        let len = n.iter().position(|&c| c == 0)?;
        Some(&n[..len])
    }

    /// `type`.
    pub fn kind(&self) -> u32 {
        u32_at(self.raw, mft_entry::TYPE).unwrap_or(0)
    }

    /// The raw `attached` byte.
    pub fn attached(&self) -> u8 {
        self.raw.get(mft_entry::ATTACHED).copied().unwrap_or(0)
    }

    /// The `u` union read as the entry's type says; `None` for other types.
    pub fn device(&self) -> Option<Device> {
        match self.kind() {
            mft_type::NET_BASIC => Some(Device::Net {
                mac: self.raw.get(mft_entry::NET_MAC..mft_entry::NET_MAC + 6)?.try_into().ok()?,
                mtu: u16_at(self.raw, mft_entry::NET_MTU)?,
            }),
            mft_type::BLOCK_BASIC => Some(Device::Block {
                capacity: u64_at(self.raw, mft_entry::BLOCK_CAPACITY)?,
                block_size: u16_at(self.raw, mft_entry::BLOCK_SIZE)?,
            }),
            _ => None,
        }
    }
}

/// A manifest whose header has been checked: `entries` entries lie in the
/// bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mft<'a> {
    bytes: &'a [u8],
    entries: usize,
}

impl<'a> Mft<'a> {
    fn header(bytes: &'a [u8]) -> Result<(u32, usize), MftError> {
        match (u32_at(bytes, 0), u32_at(bytes, 4)) {
            (Some(v), Some(n)) => Ok((v, n as usize)),
            _ => Err(MftError::TooShort(bytes.len())),
        }
    }

    /// Validates the image's own manifest as the tender must
    /// (tenders/common/mft.c `mft_validate`): version 1, at most 64
    /// entries filling the note exactly, entry 0 reserved, every name
    /// terminated, non-empty and unique per type, known types, nothing
    /// attached yet.
    pub fn validate(bytes: &'a [u8]) -> Result<Mft<'a>, MftError> {
        let (version, entries) = Self::header(bytes)?;
        if version != MFT_VERSION {
            return Err(MftError::Version(version));
        }
        if entries > MFT_MAX_ENTRIES {
            return Err(MftError::TooManyEntries(entries));
        }
        if bytes.len() != size(entries) {
            return Err(MftError::WrongSize { len: bytes.len(), entries });
        }
        if entries < 1 {
            return Err(MftError::NoEntries);
        }
        let m = Mft { bytes, entries };
        let first = m.entry(0).ok_or(MftError::NoEntries)?;
        if first.kind() != mft_type::RESERVED_FIRST || first.raw[mft_entry::NAME] != 0 {
            return Err(MftError::FirstNotReserved);
        }
        for e in m.iter() {
            let i = e.index;
            // mft_validate checks the last byte: name[MFT_NAME_MAX] == 0.
            if e.raw[mft_entry::NAME + MFT_NAME_MAX] != 0 {
                return Err(MftError::UnterminatedName(i));
            }
            let name = e.name().ok_or(MftError::UnterminatedName(i))?;
            if e.attached() != 0 {
                return Err(MftError::AlreadyAttached(i));
            }
            if i == 0 {
                continue;
            }
            let ty = e.kind();
            if ty != mft_type::BLOCK_BASIC && ty != mft_type::NET_BASIC {
                return Err(MftError::UnknownType { index: i, ty });
            }
            if name.is_empty() {
                return Err(MftError::EmptyName(i));
            }
            if m.iter().take(i).any(|o| o.kind() == ty && o.name() == Some(name)) {
                return Err(MftError::Duplicate(i));
            }
        }
        Ok(m)
    }

    /// Checks the tender's copy (in the guest's low memory) against what
    /// the image declared (`declared`: type and name of each device, in
    /// order, after the reserved entry). Entries must match the image's;
    /// attached ones must describe a usable device.
    pub fn check_for_guest(bytes: &'a [u8], declared: &[(u32, &str)]) -> Result<Mft<'a>, MftError> {
        let (version, entries) = Self::header(bytes)?;
        if version != MFT_VERSION {
            return Err(MftError::Version(version));
        }
        if entries > MFT_MAX_ENTRIES || entries != declared.len() + 1 {
            return Err(MftError::EntryCount { found: entries, declared: declared.len() + 1 });
        }
        if bytes.len() < size(entries) {
            return Err(MftError::Truncated { len: bytes.len(), entries });
        }
        let m = Mft { bytes, entries };
        for e in m.iter() {
            let i = e.index;
            let name = e.name().ok_or(MftError::UnterminatedName(i))?;
            let attached = match e.attached() {
                0 => false,
                1 => true,
                _ => return Err(MftError::AttachedNotBool(i)),
            };
            if i == 0 {
                if e.kind() != mft_type::RESERVED_FIRST || !name.is_empty() {
                    return Err(MftError::FirstNotReserved);
                }
                continue;
            }
            let (ty, dname) = declared[i - 1];
            if e.kind() != ty || name != dname.as_bytes() {
                return Err(MftError::Differs(i));
            }
            if !attached {
                continue;
            }
            match e.device() {
                // Ethernet needs at least 68 (IPv4's minimum); multicast or
                // all-zero MACs are not a unicast interface address.
                Some(Device::Net { mac, mtu }) => {
                    if mtu < 68 || mac[0] & 1 != 0 || mac == [0; 6] {
                        return Err(MftError::BadNet(i));
                    }
                }
                Some(Device::Block { capacity, block_size }) => {
                    if block_size < 512
                        || !block_size.is_power_of_two()
                        || capacity == 0
                        || !capacity.is_multiple_of(block_size as u64)
                    {
                        return Err(MftError::BadBlock(i));
                    }
                }
                None => return Err(MftError::UnknownType { index: i, ty: e.kind() }),
            }
        }
        Ok(m)
    }

    /// Number of entries, the reserved one included.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Entry `i`, if there is one.
    pub fn entry(&self, i: usize) -> Option<Entry<'a>> {
        if i >= self.entries {
            return None;
        }
        let raw = self.bytes.get(MFT_HDR_SIZE + i * MFT_ENTRY_SIZE..)?.get(..MFT_ENTRY_SIZE)?;
        Some(Entry { index: i, raw })
    }

    /// Every entry, the reserved one first.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + use<'a> {
        let m = *self;
        (0..m.entries).filter_map(move |i| m.entry(i))
    }

    /// The attached devices: (handle, device).
    pub fn attached(&self) -> impl Iterator<Item = (usize, Device)> + use<'a> {
        self.iter().skip(1).filter(|e| e.attached() == 1).filter_map(|e| Some((e.index, e.device()?)))
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MFT_NAME_MAX && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Writes `struct mft` for `devices` (type, name) into `out`, which must be
/// exactly [`size`]`(devices.len() + 1)` bytes. Names are what solo5-hvt's
/// `--net:NAME=` / `--block:NAME=` accept: 1 to 67 bytes of [A-Za-z0-9].
pub fn write(out: &mut [u8], devices: &[(u32, &str)]) -> Result<(), MftError> {
    let entries = devices.len() + 1;
    if entries > MFT_MAX_ENTRIES {
        return Err(MftError::TooManyEntries(entries));
    }
    if out.len() != size(entries) {
        return Err(MftError::BufferSize { len: out.len(), need: size(entries) });
    }
    out.fill(0);
    put(out, 0, &MFT_VERSION.to_le_bytes());
    put(out, 4, &(entries as u32).to_le_bytes());
    put(out, MFT_HDR_SIZE + mft_entry::TYPE, &mft_type::RESERVED_FIRST.to_le_bytes());
    for (i, &(ty, name)) in devices.iter().enumerate() {
        if !name_ok(name) {
            return Err(MftError::BadName(i + 1));
        }
        if ty != mft_type::BLOCK_BASIC && ty != mft_type::NET_BASIC {
            return Err(MftError::UnknownType { index: i + 1, ty });
        }
        if devices[..i].iter().any(|&(t, n)| t == ty && n == name) {
            return Err(MftError::Duplicate(i + 1));
        }
        let e = MFT_HDR_SIZE + (i + 1) * MFT_ENTRY_SIZE;
        put(out, e + mft_entry::NAME, name.as_bytes());
        put(out, e + mft_entry::TYPE, &ty.to_le_bytes());
    }
    Ok(())
}

/// Writes the whole MFT1 note (header, padding, `struct mft`) for
/// `devices` into `out`, which must be exactly [`note_size`] bytes.
pub fn write_note(out: &mut [u8], devices: &[(u32, &str)]) -> Result<(), MftError> {
    let need = note_size(devices.len());
    if out.len() != need {
        return Err(MftError::BufferSize { len: out.len(), need });
    }
    let (hdr, body) = out.split_at_mut(NOTE_MFT_OFFSET);
    write(body, devices)?;
    hdr.fill(0);
    put(hdr, 0, &(NOTE_NAME.len() as u32).to_le_bytes());
    put(hdr, 4, &((need - NOTE_HDR_SIZE) as u32).to_le_bytes());
    put(hdr, 8, &MFT1_NOTE_TYPE.to_le_bytes());
    put(hdr, 12, NOTE_NAME);
    Ok(())
}

/// Fills in entry `index` of a validated manifest copy as attached to
/// `dev` (the tender's side). The private `b` field is zeroed: the host's
/// descriptors are none of the guest's business.
pub fn fill(mft: &mut [u8], index: usize, dev: Device) -> Result<(), MftError> {
    let start = MFT_HDR_SIZE + index * MFT_ENTRY_SIZE;
    let len = mft.len();
    let Some(e) = mft.get_mut(start..).and_then(|r| r.get_mut(..MFT_ENTRY_SIZE)) else {
        return Err(MftError::Truncated { len, entries: index + 1 });
    };
    e[mft_entry::HOSTFD..mft_entry::ATTACHED].fill(0);
    match dev {
        Device::Block { capacity, block_size } => {
            put(e, mft_entry::BLOCK_CAPACITY, &capacity.to_le_bytes());
            put(e, mft_entry::BLOCK_SIZE, &block_size.to_le_bytes());
        }
        Device::Net { mac, mtu } => {
            put(e, mft_entry::NET_MAC, &mac);
            put(e, mft_entry::NET_MTU, &mtu.to_le_bytes());
        }
    }
    e[mft_entry::ATTACHED] = 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[(u32, &str)] = &[(mft_type::NET_BASIC, "service"), (mft_type::BLOCK_BASIC, "storage")];
    const NET: Device = Device::Net { mac: [2, 1, 2, 3, 4, 5], mtu: 1500 };
    const BLK: Device = Device::Block { capacity: 8 << 20, block_size: 512 };

    #[test]
    fn error_messages() {
        extern crate std;
        use MftError::*;
        use std::{format, string::ToString};
        let m = "the Solo5 manifest";
        let cases = [
            (TooShort(3), format!("{m} is too short (3 bytes)")),
            (Version(2), format!("{m} has version 2; this reader knows version 1")),
            (TooManyEntries(65), format!("{m} declares 65 entries (at most 64)")),
            (
                WrongSize { len: 9, entries: 2 },
                format!("{m} is 9 bytes, but 2 entries take 216 (wrong structure layout?)"),
            ),
            (Truncated { len: 9, entries: 2 }, format!("{m} is truncated (9 bytes, 2 entries take 216)")),
            (NoEntries, format!("{m} has no entries (the first must be the reserved one)")),
            (FirstNotReserved, format!("{m}'s first entry is not the reserved (unnamed, RESERVED_FIRST) one")),
            (UnterminatedName(1), format!("{m}'s entry 1 has an unterminated name")),
            (EmptyName(2), format!("{m}'s entry 2 has an empty name")),
            (AlreadyAttached(3), format!("{m}'s entry 3 is already marked attached")),
            (AttachedNotBool(4), format!("{m}'s entry 4 has an 'attached' flag that is not a bool")),
            (UnknownType { index: 5, ty: 9 }, format!("{m}'s entry 5 has type 9, which is not a Solo5 device type")),
            (Duplicate(6), format!("{m}'s entry 6 declares a device twice (same name and type as an earlier entry)")),
            (EntryCount { found: 2, declared: 3 }, format!("{m} has 2 entries, but the image declared 3")),
            (Differs(7), format!("{m}'s entry 7 differs from the image's")),
            (BadNet(8), format!("{m}'s entry 8: network device MTU or MAC invalid")),
            (BadBlock(9), format!("{m}'s entry 9: block device capacity or block size invalid")),
            (BadName(1), "device 1: a name is 1 to 67 bytes of A-Z, a-z and 0-9".into()),
            (BufferSize { len: 8, need: 112 }, "manifest buffer is 8 bytes, 112 needed".into()),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    fn image() -> [u8; size(3)] {
        let mut m = [0u8; size(3)];
        write(&mut m, DECLARED).unwrap();
        m
    }

    fn tenders_copy() -> [u8; size(3)] {
        let mut m = image();
        fill(&mut m, 1, NET).unwrap();
        fill(&mut m, 2, BLK).unwrap();
        m
    }

    #[test]
    fn written_manifest_validates_and_round_trips() {
        let m = image();
        let v = Mft::validate(&m).unwrap();
        assert_eq!(v.entries(), 3);
        let e = v.entry(2).unwrap();
        assert_eq!((e.kind(), e.name()), (mft_type::BLOCK_BASIC, Some(&b"storage"[..])));
        assert_eq!(v.attached().count(), 0);
        let c = tenders_copy();
        let g = Mft::check_for_guest(&c, DECLARED).unwrap();
        let got: [(usize, Device); 2] = [(1, NET), (2, BLK)];
        assert!(g.attached().eq(got));
        // The filled copy is no longer an unattached image manifest.
        assert_eq!(Mft::validate(&c).unwrap_err(), MftError::AlreadyAttached(1));
    }

    #[test]
    fn note_layout() {
        let mut n = [0u8; note_size(2)];
        write_note(&mut n, DECLARED).unwrap();
        assert_eq!(&n[0..4], &6u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(n[4..8].try_into().unwrap()) as usize, n.len() - 20);
        assert_eq!(&n[8..12], b"MFT1");
        assert_eq!(&n[12..18], b"Solo5\0");
        assert_eq!(NOTE_MFT_OFFSET, 24);
        assert_eq!(n[24..], image()[..]);
    }

    #[test]
    fn writing_refuses_bad_requests() {
        let mut m = [0u8; size(2)];
        assert_eq!(write(&mut m, &[(2, "")]), Err(MftError::BadName(1)));
        assert_eq!(write(&mut m, &[(2, "a-b")]), Err(MftError::BadName(1)));
        assert_eq!(write(&mut m, &[(9, "a")]), Err(MftError::UnknownType { index: 1, ty: 9 }));
        assert_eq!(write(&mut m, &[(2, "a"), (1, "b")]), Err(MftError::BufferSize { len: size(2), need: size(3) }));
        let mut m = [0u8; size(3)];
        assert_eq!(write(&mut m, &[(2, "a"), (2, "a")]), Err(MftError::Duplicate(2)));
    }

    #[test]
    fn tender_validation() {
        let good = image();
        let check = |f: &dyn Fn(&mut [u8])| {
            let mut m = good;
            f(&mut m);
            Mft::validate(&m).map(|_| ()).unwrap_err()
        };
        assert_eq!(check(&|m| m[0] = 2), MftError::Version(2));
        assert_eq!(check(&|m| m[4] = 65), MftError::TooManyEntries(65));
        assert_eq!(check(&|m| m[4] = 2), MftError::WrongSize { len: size(3), entries: 2 });
        assert_eq!(check(&|m| m[8 + 68] = 1), MftError::FirstNotReserved);
        assert_eq!(check(&|m| m[8 + 104..8 + 104 + 68].fill(b'a')), MftError::UnterminatedName(1));
        assert_eq!(check(&|m| m[8 + 104 + 68] = 7), MftError::UnknownType { index: 1, ty: 7 });
        assert_eq!(check(&|m| m[8 + 104] = 0), MftError::EmptyName(1));
        assert_eq!(Mft::validate(&good[..4]).unwrap_err(), MftError::TooShort(4));
        let mut none = [0u8; 8];
        none[0] = 1;
        assert_eq!(Mft::validate(&none).unwrap_err(), MftError::NoEntries);
    }

    #[test]
    fn guest_checks() {
        let good = tenders_copy();
        for cut in 0..good.len() {
            assert!(Mft::check_for_guest(&good[..cut], DECLARED).is_err(), "truncated at {cut}");
        }
        let check = |f: &dyn Fn(&mut [u8])| {
            let mut m = good;
            f(&mut m);
            Mft::check_for_guest(&m, DECLARED).map(|_| ()).unwrap_err()
        };
        assert_eq!(check(&|m| m[8 + 208 + 68] = 2), MftError::Differs(2));
        assert_eq!(check(&|m| m[8 + 104 + 96] = 7), MftError::AttachedNotBool(1));
        assert_eq!(check(&|m| m[8 + 208 + 80] = 100), MftError::BadBlock(2));
        assert_eq!(check(&|m| m[8 + 104 + 72] = 1), MftError::BadNet(1));
        assert_eq!(check(&|m| m[4] = 9), MftError::EntryCount { found: 9, declared: 3 });
        // Unattached entries are skipped.
        let mut m = good;
        m[8 + 104 + 96] = 0;
        assert_eq!(Mft::check_for_guest(&m, DECLARED).unwrap().attached().count(), 1);
    }
}
