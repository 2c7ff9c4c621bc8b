//! VMBus wire formats: SynIC constants, channel messages, packet
//! descriptors, class GUIDs. Everything is encoded and decoded byte by byte
//! (little-endian, packed, as the host sends it), so a short or hostile
//! message is a length check, never an out-of-bounds read.
//!
//! Sources: Linux `include/linux/hyperv.h` (channel message types and
//! layouts, `vmpacket_descriptor`, `hv_ring_buffer`, versions, GUIDs),
//! `drivers/hv/hyperv_vmbus.h` (connection IDs, SINT), and
//! `include/hyperv/hvgdk_mini.h` (SynIC MSRs, `hv_message`).

/// Synthetic interrupt controller MSRs (hvgdk_mini.h).
pub const MSR_SCONTROL: u32 = 0x4000_0080;
/// Event flags page: bit 0 enable, bits 63:12 the frame.
pub const MSR_SIEFP: u32 = 0x4000_0082;
/// Message page: bit 0 enable, bits 63:12 the frame.
pub const MSR_SIMP: u32 = 0x4000_0083;
/// End of message: written after freeing a slot whose "pending" flag was set.
pub const MSR_EOM: u32 = 0x4000_0084;
/// SINT0; SINTn is `MSR_SINT0 + n`.
pub const MSR_SINT0: u32 = 0x4000_0090;
/// SINT register bit: masked.
pub const SINT_MASKED: u64 = 1 << 16;
/// SINT register bit: auto-EOI.
pub const SINT_AUTO_EOI: u64 = 1 << 17;

/// The SINT VMBus messages arrive on.
pub const VMBUS_MESSAGE_SINT: usize = 2;
/// Message connection ID before protocol 5.0 (and for INITIATE_CONTACT below it).
pub const MESSAGE_CONNECTION_ID: u32 = 1;
/// Message connection ID for INITIATE_CONTACT from protocol 5.0 on.
pub const MESSAGE_CONNECTION_ID_4: u32 = 4;
/// Hyper-V message type of a VMBus channel message (HvPostMessage's type).
pub const HVMSG_CHANNEL: u32 = 1;
/// Hypercall: HvPostMessage (slow; input page).
pub const HVCALL_POST_MESSAGE: u16 = 0x005c;
/// Hypercall: HvSignalEvent (fast: connection ID and flag in RDX).
pub const HVCALL_SIGNAL_EVENT: u16 = 0x005d;

/// One SynIC message slot: 16-byte header + 240-byte payload.
pub const MESSAGE_SIZE: usize = 256;
/// Largest message payload.
pub const MESSAGE_PAYLOAD: usize = 240;
/// Bytes of event flags per SINT in the event flags page (2048 bits).
pub const EVENT_FLAGS_BYTES: usize = 256;
/// Hyper-V page size (GPADL frames, ring header).
pub const PAGE: usize = 4096;

/// Protocol versions, `major << 16 | minor`, newest first: what unikit
/// offers in INITIATE_CONTACT until the host accepts one. 5.0 and later
/// use the message SINT field and a host-chosen connection ID; 2.4 (Win8)
/// to 4.0 carry the interrupt page. Older hosts (WS2008, Win7) need the
/// monitor protocol for every channel and are not supported.
pub const VERSIONS: [u32; 4] = [5 << 16, 4 << 16, 3 << 16, 2 << 16 | 4];

/// Channel message types (`enum vmbus_channel_message_type`).
#[allow(missing_docs)]
pub mod msg {
    pub const OFFERCHANNEL: u32 = 1;
    pub const RESCIND_CHANNELOFFER: u32 = 2;
    pub const REQUESTOFFERS: u32 = 3;
    pub const ALLOFFERS_DELIVERED: u32 = 4;
    pub const OPENCHANNEL: u32 = 5;
    pub const OPENCHANNEL_RESULT: u32 = 6;
    pub const CLOSECHANNEL: u32 = 7;
    pub const GPADL_HEADER: u32 = 8;
    pub const GPADL_BODY: u32 = 9;
    pub const GPADL_CREATED: u32 = 10;
    pub const INITIATE_CONTACT: u32 = 14;
    pub const VERSION_RESPONSE: u32 = 15;
}

/// Packet types (`enum vmbus_packet_type`).
#[allow(missing_docs)]
pub mod pkt {
    pub const DATA_INBAND: u16 = 6;
    pub const DATA_USING_XFER_PAGES: u16 = 7;
    pub const DATA_USING_GPA_DIRECT: u16 = 9;
    pub const COMP: u16 = 11;
    /// `VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED`.
    pub const FLAG_COMPLETION_REQUESTED: u16 = 1;
}

/// A GUID in its wire form (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual fields `{a-b-c-d[0..2]-d[2..8]}`.
    pub const fn new(a: u32, b: u16, c: u16, d: [u8; 8]) -> Self {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Self([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}

impl core::fmt::Debug for Guid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9]
        )?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Synthetic network adapter {f8615163-df3e-46c5-913f-f2d2f965ed0e}.
pub const GUID_NETVSC: Guid = Guid::new(0xf8615163, 0xdf3e, 0x46c5, [0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e]);
/// Synthetic SCSI controller {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}.
pub const GUID_STORVSC: Guid = Guid::new(0xba6163d9, 0x04a1, 0x4d29, [0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f]);
/// Shutdown integration service {0e0b6031-5213-4934-818b-38d90ced39db}.
pub const GUID_SHUTDOWN: Guid = Guid::new(0x0e0b6031, 0x5213, 0x4934, [0x81, 0x8b, 0x38, 0xd9, 0x0c, 0xed, 0x39, 0xdb]);
/// Heartbeat integration service {57164f39-9115-4e78-ab55-382f3bd5422d}.
pub const GUID_HEARTBEAT: Guid =
    Guid::new(0x57164f39, 0x9115, 0x4e78, [0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d]);

/// Little-endian reads from a byte slice that say `None` when short.
pub(crate) trait Le {
    fn u8_at(&self, off: usize) -> Option<u8>;
    fn u16_at(&self, off: usize) -> Option<u16>;
    fn u32_at(&self, off: usize) -> Option<u32>;
    fn u64_at(&self, off: usize) -> Option<u64>;
}

impl Le for [u8] {
    fn u8_at(&self, off: usize) -> Option<u8> {
        self.get(off).copied()
    }
    fn u16_at(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.get(off..off.checked_add(2)?)?.try_into().ok()?))
    }
    fn u32_at(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.get(off..off.checked_add(4)?)?.try_into().ok()?))
    }
    fn u64_at(&self, off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.get(off..off.checked_add(8)?)?.try_into().ok()?))
    }
}

/// A growing little-endian message (channel messages, packets).
#[derive(Default)]
pub(crate) struct Out(pub alloc::vec::Vec<u8>);

impl Out {
    /// A channel message: the 8-byte header (type, padding).
    pub fn message(ty: u32) -> Self {
        let mut o = Self::default();
        o.u32(ty).u32(0);
        o
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// A channel offer (`vmbus_channel_offer_channel`), as far as unikit uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Device class (netvsc, storvsc, shutdown, ...).
    pub class: Guid,
    /// This device's instance.
    pub instance: Guid,
    /// Sub-channel index (0 for a primary channel).
    pub sub_channel: u16,
    /// Relative ID: names the channel in OPENCHANNEL, GPADLs, event flags.
    pub relid: u32,
    /// Whether the host signals this channel with a dedicated interrupt.
    pub dedicated_interrupt: bool,
    /// Connection ID to signal the host with (HvSignalEvent).
    pub connection_id: u32,
}

/// Size of `vmbus_channel_offer_channel`: header 8 + offer 176 + relid 4 +
/// monitor id 1 + monitor flags 1 + interrupt flags 2 + connection id 4.
pub const OFFER_SIZE: usize = 196;

/// Highest relid unikit accepts: the event flags page has 2048 bits per
/// SINT, and a relid names one of them.
pub const MAX_RELID: u32 = (EVENT_FLAGS_BYTES * 8) as u32 - 1;

impl Offer {
    /// Decodes an OFFERCHANNEL message (with its header). `None` if short,
    /// of another type, or naming a relid outside the event flags.
    pub fn parse(m: &[u8]) -> Option<Self> {
        if m.len() < OFFER_SIZE || m.u32_at(0)? != msg::OFFERCHANNEL {
            return None;
        }
        let relid = m.u32_at(184)?;
        if relid > MAX_RELID {
            return None;
        }
        Some(Self {
            class: Guid(m[8..24].try_into().ok()?),
            instance: Guid(m[24..40].try_into().ok()?),
            sub_channel: m.u16_at(180)?,
            relid,
            dedicated_interrupt: m.u16_at(190)? & 1 != 0,
            connection_id: m.u32_at(192)?,
        })
    }

    /// Encodes it the way the host sends it (for simulated hosts).
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut o = Out::message(msg::OFFERCHANNEL);
        o.bytes(&self.class.0).bytes(&self.instance.0).u64(0).u64(0).u16(0).u16(0).bytes(&[0; 120]);
        o.u16(self.sub_channel).u16(0).u32(self.relid).u8(0).u8(0);
        o.u16(self.dedicated_interrupt as u16).u32(self.connection_id);
        o.0
    }
}

/// PFNs that fit in a GPADL_HEADER message: (240 - 20 header - 8 range) / 8.
pub const GPADL_HEADER_PFNS: usize = 26;
/// PFNs that fit in a GPADL_BODY message: (240 - 16 header) / 8.
pub const GPADL_BODY_PFNS: usize = 28;

/// Packet descriptor (`vmpacket_descriptor`): 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Packet type ([`pkt`]).
    pub ty: u16,
    /// Offset of the payload from the packet start, in 8-byte units.
    pub offset8: u16,
    /// Packet length (descriptor included, trailer excluded), 8-byte units.
    pub len8: u16,
    /// Flags ([`pkt::FLAG_COMPLETION_REQUESTED`]).
    pub flags: u16,
    /// Transaction ID, echoed in completions.
    pub trans_id: u64,
}

/// Bytes of a packet descriptor.
pub const DESCRIPTOR_SIZE: usize = 16;

impl Descriptor {
    /// Decodes the 16 bytes.
    pub fn parse(b: &[u8; 16]) -> Self {
        let b = &b[..];
        Self {
            ty: b.u16_at(0).unwrap_or(0),
            offset8: b.u16_at(2).unwrap_or(0),
            len8: b.u16_at(4).unwrap_or(0),
            flags: b.u16_at(6).unwrap_or(0),
            trans_id: b.u64_at(8).unwrap_or(0),
        }
    }

    /// Encodes the 16 bytes.
    pub fn encode(&self) -> [u8; 16] {
        let mut o = Out::default();
        o.u16(self.ty).u16(self.offset8).u16(self.len8).u16(self.flags).u64(self.trans_id);
        o.0.try_into().unwrap_or([0; 16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_as_written() {
        assert_eq!(format!("{:?}", GUID_NETVSC), "f8615163-df3e-46c5-913f-f2d2f965ed0e");
        assert_eq!(format!("{:?}", GUID_SHUTDOWN), "0e0b6031-5213-4934-818b-38d90ced39db");
        assert_eq!(GUID_STORVSC.0[..4], [0xd9, 0x63, 0x61, 0xba]);
    }

    #[test]
    fn offer_round_trips_and_has_the_wire_size() {
        let o = Offer {
            class: GUID_HEARTBEAT,
            instance: GUID_NETVSC,
            sub_channel: 0,
            relid: 14,
            dedicated_interrupt: true,
            connection_id: 0x2001,
        };
        let b = o.encode();
        assert_eq!(b.len(), OFFER_SIZE);
        assert_eq!(Offer::parse(&b), Some(o));
    }

    #[test]
    fn offer_rejects_short_wrong_type_and_wild_relid() {
        let o = Offer {
            class: GUID_HEARTBEAT,
            instance: GUID_NETVSC,
            sub_channel: 0,
            relid: 3,
            dedicated_interrupt: false,
            connection_id: 1,
        };
        let b = o.encode();
        for n in 0..OFFER_SIZE {
            assert_eq!(Offer::parse(&b[..n]), None, "{n} bytes");
        }
        let mut t = b.clone();
        t[0] = msg::RESCIND_CHANNELOFFER as u8;
        assert_eq!(Offer::parse(&t), None);
        let mut w = b.clone();
        w[184..188].copy_from_slice(&(MAX_RELID + 1).to_le_bytes());
        assert_eq!(Offer::parse(&w), None);
    }

    #[test]
    fn descriptor_round_trips() {
        let d = Descriptor { ty: pkt::DATA_INBAND, offset8: 2, len8: 9, flags: 1, trans_id: 0x1122_3344_5566_7788 };
        assert_eq!(Descriptor::parse(&d.encode()), d);
    }
}
