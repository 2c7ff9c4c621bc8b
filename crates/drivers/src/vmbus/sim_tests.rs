//! VMBus against the simulated host: the handshake, offers, GPADLs, rings
//! (wrap-around, full, hostile indices and descriptors), the integration
//! services, and a host that misbehaves at every step.
use super::abi::{self, GUID_HEARTBEAT, GUID_NETVSC, GUID_SHUTDOWN, Le, Offer, Out, msg, pkt};
use super::ic::{Event, IcChannel, Service};
use super::sim::{HostRing, Sim};
use super::*;

const V5: u32 = 5 << 16;
const V4: u32 = 4 << 16;

fn offer(class: abi::Guid, relid: u32, dedicated: bool) -> Offer {
    Offer {
        class,
        instance: abi::Guid::new(relid, 0, 0, [0; 8]),
        sub_channel: 0,
        relid,
        dedicated_interrupt: dedicated,
        connection_id: 0x100 + relid,
    }
}

fn standard_offers() -> Vec<Offer> {
    vec![offer(GUID_SHUTDOWN, 1, true), offer(GUID_HEARTBEAT, 2, false), offer(GUID_NETVSC, 9, true)]
}

fn connect(sim: &Sim) -> Result<Vmbus<Sim>, Error> {
    let synic = Synic::enable(sim, 0x31, true)?;
    Vmbus::connect(sim.clone(), synic)
}

#[test]
fn synic_enable_programs_the_msrs() {
    let sim = Sim::new(V5, vec![]);
    let _s = Synic::enable(&sim, 0x31, true).unwrap();
    sim.with(|s| {
        for m in [abi::MSR_SIMP, abi::MSR_SIEFP] {
            let v = s.msrs[&m];
            assert_eq!(v & 1, 1, "enabled");
            assert_eq!(v & 0xffe, 0, "page-aligned");
        }
        assert_ne!(s.msrs[&abi::MSR_SIMP] & !0xfff, s.msrs[&abi::MSR_SIEFP] & !0xfff);
        let sint = s.msrs[&(abi::MSR_SINT0 + 2)];
        assert_eq!(sint & 0xff, 0x31);
        assert_eq!(sint & abi::SINT_MASKED, 0, "unmasked");
        assert_ne!(sint & abi::SINT_AUTO_EOI, 0);
        assert_eq!(s.msrs[&abi::MSR_SCONTROL] & 1, 1);
    });
}

#[test]
fn connect_takes_the_newest_version_and_the_hosts_connection_id() {
    let sim = Sim::new(V5, vec![]);
    let bus = connect(&sim).unwrap();
    assert_eq!(bus.version(), V5);
    assert_eq!(bus.conn_id, 0x7);
    sim.with(|s| {
        let (conn, m) = &s.posted[0];
        assert_eq!(*conn, abi::MESSAGE_CONNECTION_ID_4);
        assert_eq!(m.len(), 40);
        assert_eq!(m.u32_at(0), Some(msg::INITIATE_CONTACT));
        assert_eq!(m.u8_at(16), Some(abi::VMBUS_MESSAGE_SINT as u8));
    });
}

#[test]
fn a_busy_message_queue_is_retried_and_other_failures_reported() {
    let sim = Sim::new(V5, vec![]);
    sim.with(|s| s.refuse_posts = (3, 0x13));
    assert_eq!(connect(&sim).unwrap().version(), V5);
    let sim = Sim::new(V5, vec![]);
    sim.with(|s| s.refuse_posts = (1, 0x12));
    assert_eq!(connect(&sim).err(), Some(Error::Hypercall(0x12)));
}

#[test]
fn connect_falls_back_to_older_hosts() {
    let sim = Sim::new(V4, vec![]);
    let bus = connect(&sim).unwrap();
    assert_eq!(bus.version(), V4);
    assert_eq!(bus.conn_id, abi::MESSAGE_CONNECTION_ID);
    sim.with(|s| {
        assert_eq!(s.posted.len(), 2);
        let (conn, m) = &s.posted[1];
        assert_eq!(*conn, abi::MESSAGE_CONNECTION_ID);
        // Before 5.0 the union carries the interrupt page's address.
        assert_eq!(m.u64_at(16), Some(bus.int_page.dma_addr(0)));
    });
}

#[test]
fn connect_without_a_common_version_fails() {
    let sim = Sim::new(1 << 16 | 1, vec![]);
    assert_eq!(connect(&sim).err(), Some(Error::NoVersion));
    sim.with(|s| assert_eq!(s.posted.len(), abi::VERSIONS.len()));
}

#[test]
fn offers_are_collected_until_all_delivered() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let offers = bus.request_offers().unwrap();
    assert_eq!(offers, standard_offers());
    // Four messages queued back to back: the host said "more pending"
    // each time and the guest wrote EOM for each.
    sim.with(|s| assert_eq!(s.eoms, 3));
}

#[test]
fn gpadl_spreads_frames_over_header_and_bodies() {
    let sim = Sim::new(V5, vec![]);
    let mut bus = connect(&sim).unwrap();
    for pages in [1, 26, 27, 54, 55, 100] {
        let mem = DmaRegion::alloc(pages * abi::PAGE, abi::PAGE).unwrap();
        let h = bus.create_gpadl(5, &mem).unwrap();
        sim.with(|s| {
            let g = &s.gpadls[&h];
            assert_eq!(g.relid, 5);
            assert_eq!(g.bytes, pages * abi::PAGE);
            let want: Vec<u64> = (0..pages).map(|i| mem.dma_addr(i * abi::PAGE) >> 12).collect();
            assert_eq!(g.pfns, want, "{pages} pages");
            assert!(s.posted.iter().all(|(_, m)| m.len() <= abi::MESSAGE_PAYLOAD));
        });
    }
    // A region that is not whole pages is refused before anything is posted.
    let odd = DmaRegion::alloc(100, 8).unwrap();
    assert!(matches!(bus.create_gpadl(5, &odd), Err(Error::Invalid(_))));
}

fn open(sim: &Sim, bus: &mut Vmbus<Sim>, o: &Offer, pages: usize) -> (Channel<Sim>, DmaRegion, HostRing, HostRing) {
    let ch = bus.open(o, pages, pages).unwrap();
    let (mem, from_guest, to_guest) = sim.rings(o.relid);
    (ch, mem, from_guest, to_guest)
}

#[test]
fn open_channel_and_exchange_packets_across_the_wrap() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let offers = bus.request_offers().unwrap();
    let (mut ch, mem, from_guest, to_guest) = open(&sim, &mut bus, &offers[2], 2);
    sim.with(|s| assert_eq!(s.open[&9].1, 2, "downstream ring after 2 pages"));
    // 4 KiB of data per ring; packets of 16 + 200 (padded 208) + 8 = 232
    // bytes wrap around after 17 of them. Send 100 each way, one at a time.
    for i in 0..100u64 {
        let body: Vec<u8> = (0..200).map(|j| (i as u8).wrapping_add(j as u8)).collect();
        ch.send_inband(i, &body, true).unwrap();
        let (d, p) = from_guest.recv(&mem).unwrap();
        assert_eq!((d.ty, d.trans_id, d.flags), (pkt::DATA_INBAND, i, pkt::FLAG_COMPLETION_REQUESTED));
        assert_eq!(&p[..200], &body[..]);
        assert!(to_guest.send(&mem, pkt::COMP, 1000 + i, &body[..(i as usize % 50)]));
        let got = ch.recv().unwrap().unwrap();
        assert_eq!((got.desc.ty, got.desc.trans_id), (pkt::COMP, 1000 + i));
        assert_eq!(&got.payload()[..i as usize % 50], &body[..(i as usize % 50)]);
        assert_eq!(ch.recv().unwrap(), None);
    }
    // Every send found the ring empty: each signalled the offer's connection.
    sim.with(|s| assert!(s.signals.len() >= 100 && s.signals.iter().all(|&c| c == 0x109)));
}

#[test]
fn a_full_ring_refuses_and_recovers() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let (mut ch, mem, from_guest, _) = open(&sim, &mut bus, &offer(GUID_NETVSC, 9, true), 2);
    let mut sent = 0;
    while ch.send_inband(sent, &[7; 100], false).is_ok() {
        sent += 1;
    }
    assert_eq!(ch.send_inband(sent, &[7; 100], false), Err(Error::Full));
    // 4096 bytes, 128 per packet (16 + 100 padded to 120, + 8): 31 fit,
    // since the ring is never filled completely (equal indices = empty).
    assert_eq!(sent, 31);
    // Only the first send (into an empty ring) signalled.
    sim.with(|s| assert_eq!(s.signals.len(), 1));
    for i in 0..sent {
        assert_eq!(from_guest.recv(&mem).unwrap().0.trans_id, i);
    }
    ch.send_inband(99, &[1; 100], false).unwrap();
    assert_eq!(from_guest.recv(&mem).unwrap().0.trans_id, 99);
}

#[test]
fn interrupt_mask_suppresses_signals() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let (mut ch, mem, from_guest, _) = open(&sim, &mut bus, &offer(GUID_HEARTBEAT, 2, false), 2);
    mem.write::<u32>(from_guest.base + 8, 1); // the host masks its interrupts
    ch.send_inband(1, &[0; 8], false).unwrap();
    sim.with(|s| assert!(s.signals.is_empty()));
    mem.write::<u32>(from_guest.base + 8, 0);
    from_guest.recv(&mem).unwrap();
    ch.send_inband(2, &[0; 8], false).unwrap();
    sim.with(|s| assert_eq!(s.signals, vec![0x102]));
    // Not dedicated: relid 2's bit is set in the interrupt page's send half.
    assert_eq!(bus.int_page.read::<u8>(abi::PAGE / 2) & (1 << 2), 1 << 2);
}

#[test]
fn hostile_ring_indices_are_errors() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let (mut ch, mem, from_guest, to_guest) = open(&sim, &mut bus, &offer(GUID_NETVSC, 9, true), 2);
    let canary = mem.read::<u64>(to_guest.base + abi::PAGE);
    // Inbound write index beyond the ring, then not 8-aligned.
    for bad in [4096u32, 0xffff_fff8, 12] {
        mem.write::<u32>(to_guest.base, bad);
        assert!(matches!(ch.recv(), Err(Error::Hostile(_))), "write index {bad:#x}");
    }
    mem.write::<u32>(to_guest.base, 0);
    // Outbound read index beyond the ring.
    mem.write::<u32>(from_guest.base + 4, 8192);
    assert!(matches!(ch.send_inband(1, &[1; 8], false), Err(Error::Hostile(_))));
    mem.write::<u32>(from_guest.base + 4, 0);
    assert_eq!(mem.read::<u64>(to_guest.base + abi::PAGE), canary);
    ch.send_inband(2, &[1; 8], false).unwrap();
    assert_eq!(from_guest.recv(&mem).unwrap().0.trans_id, 2);
}

/// Writes a raw descriptor into the guest's inbound ring and advances the
/// write index by `claimed` bytes.
fn plant(mem: &DmaRegion, to_guest: &HostRing, d: abi::Descriptor, claimed: u32) {
    mem.write_bytes(to_guest.base + abi::PAGE, &d.encode());
    mem.write::<u32>(to_guest.base, claimed);
}

#[test]
fn hostile_descriptors_are_errors_and_consume_nothing() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let (mut ch, mem, _, to_guest) = open(&sim, &mut bus, &offer(GUID_NETVSC, 9, true), 2);
    let d = |offset8, len8| abi::Descriptor { ty: pkt::DATA_INBAND, offset8, len8, flags: 0, trans_id: 5 };
    for (desc, claimed, why) in [
        (d(2, 4), 16, "less than descriptor + trailer written"),
        (d(2, 4), 32, "len8 beyond what was written"),
        (d(2, 1), 64, "len8 shorter than the descriptor"),
        (d(1, 4), 64, "payload offset inside the descriptor"),
        (d(5, 4), 64, "payload offset after the end"),
        (d(2, 0xffff), 64, "len8 far beyond the ring"),
    ] {
        plant(&mem, &to_guest, desc, claimed);
        assert!(matches!(ch.recv(), Err(Error::Hostile(_))), "{why}");
        assert_eq!(mem.read::<u32>(to_guest.base + 4), 0, "{why}: nothing consumed");
    }
    // A sane one at the same place is then read normally.
    plant(&mem, &to_guest, d(2, 4), 40);
    let p = ch.recv().unwrap().unwrap();
    assert_eq!((p.desc.trans_id, p.payload().len()), (5, 16));
}

#[test]
fn ring_survives_random_host_writes() {
    use proptest::prelude::*;
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let (ch, mem, from_guest, to_guest) = open(&sim, &mut bus, &offer(GUID_NETVSC, 9, true), 2);
    let ch = std::cell::RefCell::new(ch);
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&(any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any::<u32>()), |(desc, w, r, pending)| {
            mem.write_bytes(to_guest.base + abi::PAGE + (w as usize % 4096) / 8 * 8 % 4080, &desc);
            mem.write::<u32>(to_guest.base, w);
            mem.write::<u32>(to_guest.base + 12, pending);
            mem.write::<u32>(from_guest.base + 4, r);
            // Whatever the host wrote: an answer or an error, never a panic.
            let mut ch = ch.borrow_mut();
            let _ = ch.recv();
            let _ = ch.send_inband(1, &[3; 40], false);
            if let Ok(Some(p)) = ch.recv() {
                prop_assert!(p.desc.offset8 as usize * 8 <= p.raw.len());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn hostile_messages_are_errors() {
    // A VERSION_RESPONSE that accepts 5.0 without a connection ID.
    let sim = Sim::new(V5, vec![]);
    sim.with(|s| s.msg_conn_id = 0);
    assert!(matches!(connect(&sim), Err(Error::Hostile(_))));

    // A slot claiming a 241-byte payload; then one of another type.
    for raw in [(abi::HVMSG_CHANNEL, 241, 0), (0x8000_0010, 16, 0)] {
        let sim = Sim::new(V5, vec![]);
        sim.with(|s| s.raw_slot = Some(raw));
        assert!(matches!(connect(&sim), Err(Error::Hostile(_))), "{raw:?}");
    }

    // A short VERSION_RESPONSE.
    let sim = Sim::new(V5, vec![]);
    sim.with(|s| s.rewrite = Some(Box::new(|_, _| vec![Out::message(msg::VERSION_RESPONSE).0])));
    assert!(matches!(connect(&sim), Err(Error::Hostile(_))));

    // No answer at all.
    let sim = Sim::new(V5, vec![]);
    sim.with(|s| s.rewrite = Some(Box::new(|_, _| vec![])));
    assert_eq!(connect(&sim).err(), Some(Error::Timeout));

    // Offers: truncated, two with one relid, a relid past the event flags.
    let truncate = |_: u32, r: Vec<Vec<u8>>| {
        r.into_iter().map(|mut m| {
            if m.u32_at(0) == Some(msg::OFFERCHANNEL) {
                m.truncate(100);
            }
            m
        })
    };
    for (offers, rewrite) in [
        (standard_offers(), Some(Box::new(move |t, r| truncate(t, r).collect()) as sim::Rewrite)),
        (vec![offer(GUID_NETVSC, 3, true), offer(GUID_SHUTDOWN, 3, true)], None),
        (vec![offer(GUID_NETVSC, 2048, true)], None),
    ] {
        let sim = Sim::new(V5, offers);
        let mut bus = connect(&sim).unwrap();
        sim.with(|s| s.rewrite = rewrite);
        assert!(matches!(bus.request_offers(), Err(Error::Hostile(_))));
    }

    // A flood of unrelated messages while waiting for GPADL_CREATED.
    let sim = Sim::new(V5, vec![]);
    let mut bus = connect(&sim).unwrap();
    sim.with(|s| s.rewrite = Some(Box::new(|_, _| vec![Out::message(msg::ALLOFFERS_DELIVERED).0; 200])));
    let mem = DmaRegion::alloc(abi::PAGE, abi::PAGE).unwrap();
    assert!(matches!(bus.create_gpadl(1, &mem), Err(Error::Hostile(_))));
}

#[test]
fn refusals_are_reported() {
    let sim = Sim::new(V5, standard_offers());
    let mut bus = connect(&sim).unwrap();
    let status = |ty: u32, at: usize| {
        Box::new(move |t: u32, mut r: Vec<Vec<u8>>| {
            if t == ty {
                r.iter_mut().for_each(|m| m[at..at + 4].copy_from_slice(&0xc000_0017u32.to_le_bytes()));
            }
            r
        }) as sim::Rewrite
    };
    sim.with(|s| s.rewrite = Some(status(msg::GPADL_HEADER, 16)));
    let mem = DmaRegion::alloc(abi::PAGE, abi::PAGE).unwrap();
    assert_eq!(bus.create_gpadl(1, &mem), Err(Error::Refused(0xc000_0017)));
    sim.with(|s| s.rewrite = Some(status(msg::OPENCHANNEL, 16)));
    assert_eq!(bus.open(&offer(GUID_NETVSC, 9, true), 2, 2).err(), Some(Error::Refused(0xc000_0017)));
}

// ---- integration services ----

/// An IC request: pipe header, icmsg_hdr with `ty` and `transaction`, `body`.
fn ic_request(ty: u16, body: &[u8]) -> Vec<u8> {
    let mut o = Out::default();
    o.u32(0).u32(0); // vmbuspipe_hdr
    o.u16(1).u16(0).u16(ty).u16(1).u16(0).u16(body.len() as u16).u32(0).u8(3).u8(2).u16(0);
    o.bytes(body);
    o.0
}

fn negotiate(fw: &[(u16, u16)], msgv: &[(u16, u16)]) -> Vec<u8> {
    let mut o = Out::default();
    o.u16(fw.len() as u16).u16(msgv.len() as u16).u32(0);
    for v in fw.iter().chain(msgv) {
        o.u16(v.0).u16(v.1);
    }
    ic_request(0, &o.0)
}

fn open_ic(service: Service, o: Offer) -> (Sim, IcChannel<Sim>, DmaRegion, HostRing, HostRing) {
    let sim = Sim::new(V5, vec![o]);
    let mut bus = connect(&sim).unwrap();
    let offers = bus.request_offers().unwrap();
    let (ch, mem, from_guest, to_guest) = open(&sim, &mut bus, &offers[0], 4);
    (sim, IcChannel::new(service, ch), mem, from_guest, to_guest)
}

#[test]
fn shutdown_service_negotiates_and_reports_a_shutdown() {
    let (_sim, mut ic, mem, from_guest, to_guest) = open_ic(Service::Shutdown, offer(GUID_SHUTDOWN, 1, true));
    assert_eq!(ic.poll().unwrap(), None);
    to_guest.send(&mem, pkt::DATA_INBAND, 77, &negotiate(&[(1, 0), (3, 0)], &[(1, 0), (3, 0), (3, 2)]));
    assert_eq!(ic.poll().unwrap(), Some(Event::Negotiated((3, 0), (3, 2))));
    let (d, r) = from_guest.recv(&mem).unwrap();
    assert_eq!((d.ty, d.trans_id), (pkt::DATA_INBAND, 77));
    assert_eq!(r.u8_at(25), Some(1 | 4), "transaction | response");
    assert_eq!((r.u16_at(28), r.u16_at(30)), (Some(1), Some(1)));
    assert_eq!((r.u16_at(36), r.u16_at(38), r.u16_at(40), r.u16_at(42)), (Some(3), Some(0), Some(3), Some(2)));

    // reason, timeout, flags 0 (shut down), message.
    let mut body = Out::default();
    body.u32(0).u32(30).u32(0).bytes(&[0; 2048]);
    to_guest.send(&mem, pkt::DATA_INBAND, 78, &ic_request(3, &body.0));
    assert_eq!(ic.poll().unwrap(), Some(Event::Shutdown { restart: false }));
    let (d, r) = from_guest.recv(&mem).unwrap();
    assert_eq!(d.trans_id, 78);
    assert_eq!(r.u32_at(20), Some(0), "HV_S_OK");

    // Hibernate (flags 4) is declined with HV_E_FAIL.
    let mut body = Out::default();
    body.u32(0).u32(30).u32(4);
    to_guest.send(&mem, pkt::DATA_INBAND, 79, &ic_request(3, &body.0));
    assert_eq!(ic.poll().unwrap(), Some(Event::Declined));
    assert_eq!(from_guest.recv(&mem).unwrap().1.u32_at(20), Some(0x8000_4005));
}

#[test]
fn heartbeat_answers_sequence_plus_one() {
    let (_sim, mut ic, mem, from_guest, to_guest) = open_ic(Service::Heartbeat, offer(GUID_HEARTBEAT, 2, false));
    to_guest.send(&mem, pkt::DATA_INBAND, 1, &negotiate(&[(3, 0)], &[(3, 0)]));
    assert_eq!(ic.poll().unwrap(), Some(Event::Negotiated((3, 0), (3, 0))));
    from_guest.recv(&mem).unwrap();
    for seq in [41u64, u64::MAX] {
        let mut body = Out::default();
        body.u64(seq).bytes(&[0; 32]);
        to_guest.send(&mem, pkt::DATA_INBAND, 2, &ic_request(1, &body.0));
        assert_eq!(ic.poll().unwrap(), Some(Event::Heartbeat(seq)));
        assert_eq!(from_guest.recv(&mem).unwrap().1.u64_at(28), Some(seq.wrapping_add(1)));
    }
}

#[test]
fn ic_rejects_hostile_requests_without_answering() {
    let (_sim, mut ic, mem, from_guest, to_guest) = open_ic(Service::Shutdown, offer(GUID_SHUTDOWN, 1, true));
    // Version counts that run past the packet.
    let mut n = negotiate(&[(3, 0)], &[(3, 0)]);
    n[28..30].copy_from_slice(&1000u16.to_le_bytes());
    to_guest.send(&mem, pkt::DATA_INBAND, 1, &n);
    // A heartbeat message on the shutdown channel; a truncated header; a
    // shutdown request without its flags.
    to_guest.send(&mem, pkt::DATA_INBAND, 2, &ic_request(1, &[0; 40]));
    to_guest.send(&mem, pkt::DATA_INBAND, 3, &[0; 12]);
    to_guest.send(&mem, pkt::DATA_INBAND, 4, &ic_request(3, &[0; 4]));
    // A completion instead of in-band data.
    to_guest.send(&mem, pkt::COMP, 5, &ic_request(3, &[0; 12]));
    for _ in 0..5 {
        assert!(matches!(ic.poll(), Err(Error::Hostile(_))));
    }
    assert!(from_guest.recv(&mem).is_none(), "no answer to any of them");
    // No common version: an answer with empty lists.
    to_guest.send(&mem, pkt::DATA_INBAND, 6, &negotiate(&[(2, 0)], &[(3, 0)]));
    assert_eq!(ic.poll().unwrap(), Some(Event::NoCommonVersion));
    let r = from_guest.recv(&mem).unwrap().1;
    assert_eq!((r.u16_at(28), r.u16_at(30)), (Some(0), Some(0)));
}
