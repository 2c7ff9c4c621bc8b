//! Host tests: real stacks on OS threads, joined by in-memory devices.
use crate::*;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

fn opts(ip: &str) -> Options {
    Options {
        ip: config::parse_ip_config(ip).unwrap(),
        tcp_rx_buffer: 16 * 1024,
        tcp_tx_buffer: 16 * 1024,
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

/// Two stacks on one virtual cable: 10.0.0.1 (client) and 10.0.0.2 (server).
fn pair_with(f: impl Fn(&mut Options)) -> (Net, Net) {
    let (a, b) = Loopback::pair();
    let (mut oa, mut ob) = (opts("10.0.0.1/24"), opts("10.0.0.2/24"));
    f(&mut oa);
    f(&mut ob);
    (Net::start(a, oa).unwrap(), Net::start(b, ob).unwrap())
}

fn pair() -> (Net, Net) {
    pair_with(|_| {})
}

/// Waits (a bounded time) for background closing to finish.
fn settles(net: &Net, want: usize) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if net.socket_count() == want {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn echo_and_eof() {
    let (a, b) = pair();
    let l = b.tcp_bind("0.0.0.0:7").unwrap();
    assert_eq!(l.local_addr().unwrap(), "0.0.0.0:7".parse().unwrap());
    let server = thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&got).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got.len()
    });
    let c = a.tcp_connect("10.0.0.2:7", None).unwrap();
    assert_eq!(c.peer_addr().unwrap(), "10.0.0.2:7".parse().unwrap());
    c.write_all(b"hello, unikit").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"hello, unikit");
    assert_eq!(c.read(&mut [0u8; 4]).unwrap(), 0, "EOF stays EOF");
    assert_eq!(server.join().unwrap(), 13);
}

#[test]
fn bulk_transfer_is_intact() {
    let (a, b) = pair();
    let l = b.tcp_bind(9000).unwrap();
    const N: usize = 1 << 20;
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let data: Vec<u8> = (0..N).map(|i| (i * 7 + i / 251) as u8).collect();
    let c = a.tcp_connect(("10.0.0.2", 9000), None).unwrap();
    c.write_all(&data).unwrap();
    c.flush().unwrap();
    drop(c);
    let got = server.join().unwrap();
    assert_eq!(got.len(), N);
    assert!(got == data);
}

#[test]
fn refused_without_listener() {
    let (a, b) = pair();
    let e = a.tcp_connect("10.0.0.2:81", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(settles(&a, 0), "the refused socket is freed");
    drop(b);
}

#[test]
fn connect_times_out_when_nobody_answers() {
    let (a, _b) = pair();
    let t = Instant::now();
    let e = a.tcp_connect("10.0.0.99:80", Some(Duration::from_millis(300))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(3));
    assert!(settles(&a, 0));
}

#[test]
fn read_timeout_and_reset() {
    let (a, b) = pair();
    let l = b.tcp_bind(8080).unwrap();
    let c = a.tcp_connect("10.0.0.2:8080", None).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert_eq!(c.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::InvalidInput);
    let t = Instant::now();
    let e = c.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(100));
    // Closing the listener resets the connection it never accepted.
    drop(l);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let e = c.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    let e = c.write(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    drop(c);
    assert!(settles(&a, 0));
    assert!(settles(&b, 0));
}

#[test]
fn write_timeout_when_peer_does_not_read() {
    let (a, b) = pair();
    let l = b.tcp_bind(5000).unwrap();
    let c = a.tcp_connect("10.0.0.2:5000", None).unwrap();
    let (_s, _) = l.accept().unwrap();
    c.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let chunk = [0u8; 4096];
    let mut total = 0;
    let e = loop {
        match c.write(&chunk) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(total < 1 << 20, "buffers are bounded");
    };
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    // Peer's receive buffer plus ours.
    assert!(total >= 16 * 1024, "{total}");
}

#[test]
fn sixty_four_concurrent_clients_and_no_leaks() {
    let (a, b) = pair_with(|o| {
        o.tcp_rx_buffer = 4096;
        o.tcp_tx_buffer = 4096;
    });
    let l = Arc::new(b.tcp_bind(80).unwrap());
    let baseline_b = b.socket_count();
    let srv = {
        let l = l.clone();
        thread::spawn(move || {
            let mut hs = Vec::new();
            for _ in 0..64 {
                let (s, _) = l.accept().unwrap();
                hs.push(thread::spawn(move || {
                    let mut buf = [0u8; 256];
                    let mut req = Vec::new();
                    while !req.ends_with(b"\r\n\r\n") {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0);
                        req.extend_from_slice(&buf[..n]);
                    }
                    let body = &req[..req.len() - 4];
                    let resp = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    s.write_all(resp.as_bytes()).unwrap();
                    s.write_all(body).unwrap();
                }));
            }
            for h in hs {
                h.join().unwrap();
            }
        })
    };
    // Every client connects before any of them sends.
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let a = a.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let c = a.tcp_connect("10.0.0.2:80", None).unwrap();
                barrier.wait();
                let msg = format!("GET /{i} {}\r\n\r\n", "x".repeat(i * 10));
                c.write_all(msg.as_bytes()).unwrap();
                let mut resp = Vec::new();
                c.read_to_end(&mut resp).unwrap();
                let resp = String::from_utf8(resp).unwrap();
                assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
                assert!(resp.ends_with(&msg[..msg.len() - 4]), "{resp}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    srv.join().unwrap();
    assert!(settles(&a, 0), "client sockets freed: {}", a.socket_count());
    assert!(settles(&b, baseline_b), "server sockets freed: {}", b.socket_count());
    drop(l);
    assert!(settles(&b, 0));
}

/// A full accept queue drops new SYNs (the client retries later, as with
/// a full Linux listen queue) instead of resetting them.
#[test]
fn backlog_limits_unaccepted_connections() {
    let (a, b) = pair_with(|o| {
        o.backlog = 3;
        o.listen_spare = 1;
        o.connect_timeout = Duration::from_millis(600);
    });
    let l = b.tcp_bind(8000).unwrap();
    let mut ok = Vec::new();
    let mut waited = 0;
    for _ in 0..6 {
        match a.tcp_connect("10.0.0.2:8000", None) {
            Ok(c) => ok.push(c),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                waited += 1;
            }
        }
    }
    assert!(ok.len() >= 3 && ok.len() <= 4, "accepted {}", ok.len());
    assert_eq!(ok.len() + waited, 6);
    assert!(b.stats().syn_dropped > 0);
    // Accepting frees room again.
    for _ in 0..ok.len() {
        l.accept().unwrap();
    }
    let _more = a.tcp_connect("10.0.0.2:8000", None).unwrap();
    l.set_accept_timeout(Some(Duration::from_secs(2))).unwrap();
    l.accept().unwrap();
}

#[test]
fn address_in_use_and_ephemeral_ports() {
    let (_a, b) = pair();
    let l = b.tcp_bind(22).unwrap();
    assert_eq!(b.tcp_bind("0.0.0.0:22").unwrap_err().kind(), ErrorKind::AddrInUse);
    drop(l);
    let _l = b.tcp_bind(22).unwrap();
    let l0 = b.tcp_bind(0).unwrap();
    assert!(l0.local_addr().unwrap().port() >= 49152);
    let u = b.udp_bind(53).unwrap();
    assert_eq!(b.udp_bind(53).unwrap_err().kind(), ErrorKind::AddrInUse);
    drop(u);
    b.udp_bind(53).unwrap();
}

#[test]
fn udp_send_recv_and_timeout() {
    let (a, b) = pair();
    let sb = b.udp_bind("0.0.0.0:5353").unwrap();
    let sa = a.udp_bind(0).unwrap();
    let port_a = sa.local_addr().unwrap().port();
    assert!(port_a >= 49152);
    for i in 0..10u8 {
        sa.send_to(&[i; 100], "10.0.0.2:5353").unwrap();
    }
    let mut buf = [0u8; 1500];
    for i in 0..10u8 {
        let (n, from) = sb.recv_from(&mut buf).unwrap();
        assert_eq!((n, buf[0]), (100, i));
        assert_eq!(from, SocketAddr::from(([10, 0, 0, 1], port_a)));
    }
    // Truncation, like std.
    sb.send_to(&[9; 64], ("10.0.0.1", port_a)).unwrap();
    let mut small = [0u8; 8];
    assert_eq!(sa.recv_from(&mut small).unwrap().0, 8);
    sb.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert_eq!(sb.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(sa.send_to(&[0; 2000], "10.0.0.2:5353").unwrap_err().kind(), ErrorKind::InvalidInput);
    // Connected sockets.
    sa.connect("10.0.0.2:5353").unwrap();
    sa.send(b"ping").unwrap();
    assert_eq!(sb.recv(&mut buf).unwrap(), 4);
}

#[test]
fn self_loopback() {
    let net = Net::start(Loopback::new(), opts("127.0.0.1/8")).unwrap();
    assert_eq!(net.wait_configured(Duration::from_secs(1)).unwrap(), Ipv4Addr::LOCALHOST);
    let l = net.tcp_bind("127.0.0.1:1234").unwrap();
    let t = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(&b).unwrap();
    });
    let c = net.tcp_connect("localhost:1234", None).unwrap();
    c.write_all(b"abcde").unwrap();
    let mut b = [0u8; 5];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"abcde");
    t.join().unwrap();
    assert_eq!(c.read(&mut b).unwrap(), 0);
}

#[test]
fn dhcp_gives_up() {
    let (a, _b) = Loopback::pair();
    let mut o = opts("dhcp");
    o.dhcp_timeout = Duration::from_millis(300);
    let net = Net::start(a, o).unwrap();
    let t = Instant::now();
    let e = net.wait_configured(Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(e.to_string().contains("DHCP on pair0: no lease"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(net.tcp_connect("10.0.0.2:80", None).unwrap_err().kind(), ErrorKind::NetworkUnreachable);
}

#[test]
fn global_without_device() {
    let e = TcpListener::bind(80).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "no network device");
    assert_eq!(TcpStream::connect("10.0.0.1:1").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(UdpSocket::bind(0).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn dropping_the_stack_stops_its_thread() {
    let (a, b) = pair();
    let weak = Arc::downgrade(&a.0);
    drop(a);
    drop(b);
    assert!(weak.upgrade().is_none());
}

/// The DHCP client's reply parsing under arbitrary bytes: replies built
/// around the transaction the client really runs (its xid, our MAC), with
/// random fields and options, and wholly random payloads. The stack must
/// go on receiving (its thread alive) after every one.
mod dhcp_fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Mutex, OnceLock};

    struct Rig {
        net: Net,
        peer: Arc<Loopback>,
        xid: Mutex<[u8; 4]>,
    }

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];

    fn rig() -> &'static Rig {
        static RIG: OnceLock<Rig> = OnceLock::new();
        RIG.get_or_init(|| {
            let (a, b) = Loopback::pair();
            let mut o = opts("dhcp");
            o.dhcp_timeout = Duration::from_secs(3600);
            let net = Net::start(a, o).unwrap();
            let rig = Rig { net, peer: b, xid: Mutex::new([0; 4]) };
            let t = Instant::now();
            while !rig.learn_xid() {
                assert!(t.elapsed() < Duration::from_secs(10), "no DHCPDISCOVER from the client");
                thread::sleep(Duration::from_millis(10));
            }
            rig
        })
    }

    impl Rig {
        /// Reads what the client sent; keeps the xid of its last DHCP message.
        fn learn_xid(&self) -> bool {
            let mut seen = false;
            let mut buf = [0u8; 2048];
            while let Ok(n) = self.peer.receive(&mut buf) {
                let f = &buf[..n];
                // Ethernet + IPv4 (no options) + UDP 68 -> 67, then BOOTP.
                if n > 14 + 20 + 8 + 8 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0, 67] {
                    self.xid.lock().unwrap().copy_from_slice(&f[14 + 20 + 8 + 4..14 + 20 + 8 + 8]);
                    seen = true;
                }
            }
            seen
        }
    }

    fn checksum(b: &[u8]) -> u16 {
        let mut s: u32 = b.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// An Ethernet/IPv4/UDP (67 -> 68) frame to the client carrying `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xb, 8, 0]);
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[255, 255, 255, 255]);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&67u16.to_be_bytes());
        f.extend_from_slice(&68u16.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
        f.extend_from_slice(payload);
        f
    }

    /// A BOOTREPLY for the client's transaction with random addresses and
    /// random options after the magic cookie.
    fn reply(xid: [u8; 4], fields: &[u8], options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[..4].copy_from_slice(&[2, 1, 6, 0]);
        p[4..8].copy_from_slice(&xid);
        for (i, b) in fields.iter().enumerate().take(16) {
            p[12 + i] = *b; // ciaddr, yiaddr, siaddr, giaddr
        }
        p[28..34].copy_from_slice(&CLIENT_MAC);
        p.extend_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(options);
        p
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
    }

    fn deliver(payload: &[u8]) -> std::result::Result<(), TestCaseError> {
        let r = rig();
        let before = r.net.stats().rx_frames;
        let f = frame(payload);
        if f.len() > 1514 {
            return Ok(());
        }
        while r.peer.transmit(&f).is_err() {
            thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        while r.net.stats().rx_frames == before {
            prop_assert!(t.elapsed() < Duration::from_secs(10), "the stack stopped receiving");
            thread::yield_now();
        }
        r.learn_xid();
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn replies_with_random_options_never_panic(
            fields in proptest::collection::vec(any::<u8>(), 16),
            options in proptest::collection::vec(any::<u8>(), 0..300),
            message_type in 1u8..9,
        ) {
            let xid = *rig().xid.lock().unwrap();
            // Half of them start with a well-formed message-type option, so
            // that parsing goes past it into the random rest.
            let mut opts = vec![];
            if message_type % 2 == 0 {
                opts.extend_from_slice(&[53, 1, message_type / 2 + 1]);
            }
            opts.extend_from_slice(&options);
            deliver(&reply(xid, &fields, &opts))?;
        }

        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            deliver(&payload)?;
        }
    }
}

/// Closing a connection whose request was not read resets it at once (as
/// Linux does), so a client still sending is not left on a full window
/// until the linger deadline.
#[test]
fn closing_with_unread_data_resets_the_peer() {
    let (a, b) = pair();
    let l = b.tcp_bind(8081).unwrap();
    let c = a.tcp_connect("10.0.0.2:8081", None).unwrap();
    let (s, _) = l.accept().unwrap();
    c.write_all(b"a request nobody reads").unwrap();
    thread::sleep(Duration::from_millis(300)); // the request reaches the server's buffer
    drop(s);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let e = c.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// What the accept-queue gate looks at: only a first IPv4 TCP SYN, with
/// every offset inside the frame.
#[test]
fn syn_frames_are_recognised() {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[12..14].copy_from_slice(&[8, 0]);
    f[14] = 0x45;
    f[14 + 9] = 6;
    f[34 + 2..34 + 4].copy_from_slice(&80u16.to_be_bytes());
    f[34 + 13] = 0x02;
    assert_eq!(crate::device::tcp_syn_port(&f), Some(80));
    f[34 + 13] = 0x12; // SYN-ACK
    assert_eq!(crate::device::tcp_syn_port(&f), None);
    f[34 + 13] = 0x02;
    f[14 + 6] = 0x00;
    f[14 + 7] = 0x10; // a later fragment: no TCP header there
    assert_eq!(crate::device::tcp_syn_port(&f), None);
    f[14 + 7] = 0;
    for n in 0..34 + 14 {
        assert_eq!(crate::device::tcp_syn_port(&f[..n]), None, "truncated at {n}");
    }
    f[14] = 0x4f; // IHL past the end
    assert_eq!(crate::device::tcp_syn_port(&f), None);
}

/// Traffic on one connection does not wake the threads sleeping on other,
/// idle connections (each socket has its own waiters).
#[test]
fn idle_connections_are_not_woken_by_others_traffic() {
    let (a, b) = pair();
    let l = b.tcp_bind(8082).unwrap();
    let mut idle_clients = Vec::new();
    let mut idle_servers = Vec::new();
    for _ in 0..20 {
        idle_clients.push(a.tcp_connect("10.0.0.2:8082", None).unwrap());
        idle_servers.push(Arc::new(l.accept().unwrap().0));
    }
    // A thread blocked in read on each idle server-side stream.
    let readers: Vec<_> = idle_servers
        .iter()
        .map(|s| {
            let s = s.clone();
            thread::spawn(move || s.read(&mut [0u8; 8]))
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let before: u64 = idle_servers.iter().map(|s| s.waiters.wakes.load(std::sync::atomic::Ordering::Relaxed)).sum();
    let c = a.tcp_connect("10.0.0.2:8082", None).unwrap();
    let (s, _) = l.accept().unwrap();
    for i in 0..100u32 {
        c.write_all(&i.to_le_bytes()).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
    }
    let after: u64 = idle_servers.iter().map(|s| s.waiters.wakes.load(std::sync::atomic::Ordering::Relaxed)).sum();
    assert_eq!(after, before, "idle sockets were woken by another connection's traffic");
    // They still wake for their own data.
    for c in &idle_clients {
        c.write_all(b"x").unwrap();
    }
    for r in readers {
        assert_eq!(r.join().unwrap().unwrap(), 1);
    }
}

/// A second stack on a device whose first stack was dropped is woken by
/// the device as the first was (the device keeps its doorbell).
#[test]
fn a_device_serves_a_second_stack() {
    let (a, b) = Loopback::pair();
    let server = Net::start(b, opts("10.0.0.2/24")).unwrap();
    let l = server.tcp_bind(9000).unwrap();
    for _ in 0..2 {
        let client = Net::start(a.clone(), opts("10.0.0.1/24")).unwrap();
        let c = client.tcp_connect("10.0.0.2:9000", None).unwrap();
        let (s, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        drop((c, s, client));
        thread::sleep(Duration::from_millis(50));
    }
}
