//! Integration services over VMBus: shutdown (Hyper-V's "Shut Down" and
//! Azure's stop become a clean stop of the app) and heartbeat (the host's
//! "is the guest alive" probe).
//!
//! Each host request is an in-band packet: `vmbuspipe_hdr` (8 bytes), then
//! `icmsg_hdr` (20 bytes: framework version, message type, message
//! version, size, status, transaction id, flags), then the message. The
//! guest answers in the same buffer with the response flag set and the
//! same transaction ID. First comes a version negotiation (framework 3.0 or
//! 1.0; shutdown 3.2, 3.1, 3.0 or 1.0; heartbeat 3.0 or 1.0). Layouts and
//! constants from Linux `include/linux/hyperv.h`; the version lists are
//! those Linux's `hv_util` offers.
use super::abi::Le;
use super::{Channel, Error, Platform};

/// `icmsgtype` values.
const ICMSGTYPE_NEGOTIATE: u16 = 0;
const ICMSGTYPE_HEARTBEAT: u16 = 1;
const ICMSGTYPE_SHUTDOWN: u16 = 3;
/// `icflags`: a transaction, and this is the response.
const ICMSGHDRFLAG_TRANSACTION: u8 = 1;
const ICMSGHDRFLAG_RESPONSE: u8 = 4;
/// Status codes.
const HV_S_OK: u32 = 0;
const HV_E_FAIL: u32 = 0x8000_4005;

/// Offset of `icmsg_hdr` (after `vmbuspipe_hdr`) and of the message.
const ICMSG_HDR: usize = 8;
const ICMSG: usize = ICMSG_HDR + 20;

const FRAMEWORK_VERSIONS: [(u16, u16); 2] = [(3, 0), (1, 0)];
const SHUTDOWN_VERSIONS: [(u16, u16); 4] = [(3, 2), (3, 1), (3, 0), (1, 0)];
const HEARTBEAT_VERSIONS: [(u16, u16); 2] = [(3, 0), (1, 0)];

/// Which service a channel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// {0e0b6031-5213-4934-818b-38d90ced39db}.
    Shutdown,
    /// {57164f39-9115-4e78-ab55-382f3bd5422d}.
    Heartbeat,
}

/// What a request meant for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Versions agreed on (framework, message), each `(major, minor)`.
    Negotiated((u16, u16), (u16, u16)),
    /// No common version: answered with empty lists.
    NoCommonVersion,
    /// Heartbeat: the host's sequence number (answered with it plus one).
    Heartbeat(u64),
    /// Shut down (or restart, which a unikernel also treats as a stop).
    Shutdown {
        /// The host asked for a restart rather than a power-off.
        restart: bool,
    },
    /// A shutdown request of a kind unikit does not do (hibernate, or
    /// unknown flags): answered with a failure status.
    Declined,
}

impl Service {
    fn msg_type(self) -> u16 {
        match self {
            Self::Shutdown => ICMSGTYPE_SHUTDOWN,
            Self::Heartbeat => ICMSGTYPE_HEARTBEAT,
        }
    }

    fn versions(self) -> &'static [(u16, u16)] {
        match self {
            Self::Shutdown => &SHUTDOWN_VERSIONS,
            Self::Heartbeat => &HEARTBEAT_VERSIONS,
        }
    }
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Turns the request in `buf` into its response, in place, and says what
/// it meant. An error (short buffer, wrong message type, version counts
/// beyond the buffer) means: send no answer.
pub fn respond(service: Service, buf: &mut [u8]) -> Result<Event, Error> {
    const SHORT: Error = Error::Hostile("integration service message too short");
    let ty = buf.u16_at(ICMSG_HDR + 4).ok_or(SHORT)?;
    if buf.len() < ICMSG {
        return Err(SHORT);
    }
    let event = if ty == ICMSGTYPE_NEGOTIATE {
        let nfw = buf.u16_at(ICMSG).ok_or(SHORT)? as usize;
        let nmsg = buf.u16_at(ICMSG + 2).ok_or(SHORT)? as usize;
        let list = ICMSG + 8;
        // Both lists must lie inside the packet; the answer needs two slots.
        if list + 4 * (nfw + nmsg).max(2) > buf.len() {
            return Err(SHORT);
        }
        let at = |i: usize| (buf.u16_at(list + 4 * i).unwrap_or(0), buf.u16_at(list + 4 * i + 2).unwrap_or(0));
        let host_fw: alloc::vec::Vec<_> = (0..nfw).map(at).collect();
        let host_msg: alloc::vec::Vec<_> = (nfw..nfw + nmsg).map(at).collect();
        let fw = FRAMEWORK_VERSIONS.iter().find(|v| host_fw.contains(v));
        let mv = service.versions().iter().find(|v| host_msg.contains(v));
        // icmsgsize: the negotiate header (8) and the two chosen versions.
        put_u16(buf, ICMSG_HDR + 10, 16);
        match (fw, mv) {
            (Some(&fw), Some(&mv)) => {
                put_u16(buf, ICMSG, 1);
                put_u16(buf, ICMSG + 2, 1);
                for (i, v) in [fw, mv].into_iter().enumerate() {
                    put_u16(buf, list + 4 * i, v.0);
                    put_u16(buf, list + 4 * i + 2, v.1);
                }
                Event::Negotiated(fw, mv)
            }
            _ => {
                put_u16(buf, ICMSG, 0);
                put_u16(buf, ICMSG + 2, 0);
                Event::NoCommonVersion
            }
        }
    } else if ty != service.msg_type() {
        return Err(Error::Hostile("integration service message of another service"));
    } else {
        match service {
            Service::Heartbeat => {
                let seq = buf.u64_at(ICMSG).ok_or(SHORT)?;
                buf[ICMSG..ICMSG + 8].copy_from_slice(&seq.wrapping_add(1).to_le_bytes());
                put_u32(buf, ICMSG_HDR + 12, HV_S_OK);
                Event::Heartbeat(seq)
            }
            Service::Shutdown => {
                // shutdown_msg_data: reason, timeout, flags, message.
                let flags = buf.u32_at(ICMSG + 8).ok_or(SHORT)?;
                let (status, event) = match flags {
                    0 | 1 => (HV_S_OK, Event::Shutdown { restart: false }),
                    2 | 3 => (HV_S_OK, Event::Shutdown { restart: true }),
                    _ => (HV_E_FAIL, Event::Declined),
                };
                put_u32(buf, ICMSG_HDR + 12, status);
                event
            }
        }
    };
    buf[ICMSG_HDR + 17] = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
    Ok(event)
}

/// An integration service channel: answers every request waiting.
pub struct IcChannel<P: Platform> {
    service: Service,
    channel: Channel<P>,
}

impl<P: Platform> IcChannel<P> {
    /// Serves `service` on an open channel.
    pub fn new(service: Service, channel: Channel<P>) -> Self {
        Self { service, channel }
    }

    /// Answers the next waiting request; `None` when none waits. A request
    /// that is not one (not in-band, malformed) is dropped and reported.
    pub fn poll(&mut self) -> Result<Option<Event>, Error> {
        let Some(pkt) = self.channel.recv()? else { return Ok(None) };
        if pkt.desc.ty != super::abi::pkt::DATA_INBAND {
            return Err(Error::Hostile("integration service packet not in-band"));
        }
        let mut buf = pkt.payload().to_vec();
        let event = respond(self.service, &mut buf)?;
        self.channel.send_inband(pkt.desc.trans_id, &buf, false)?;
        Ok(Some(event))
    }

    /// The channel (for its relid and ring state).
    pub fn channel(&self) -> &Channel<P> {
        &self.channel
    }
}
