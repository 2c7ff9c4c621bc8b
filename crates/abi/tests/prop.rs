//! Property tests of the ELF reader, the Solo5 manifest and the exit
//! marker: random and mutated bytes never make them panic, and valid
//! inputs round-trip. Cases per property: `UNIKIT_ABI_FUZZ_CASES`
//! (default 5000); each test prints how many ran.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use unikit_abi::elf::*;
use unikit_abi::exit::{self, Marker, Parse};
use unikit_abi::mft::{self, Device, Mft, mft_type};

fn cases() -> u32 {
    std::env::var("UNIKIT_ABI_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })
}

fn report(what: &str, n: &AtomicU64) {
    eprintln!("prop: {} {what} checked", n.load(Ordering::Relaxed));
}

/// Everything a reader can ask of a file; the answers must be consistent
/// with the file's size.
fn exercise_elf(bytes: &[u8]) {
    let Ok(e) = Elf::parse(bytes) else { return };
    let len = bytes.len() as u64;
    for (i, p) in e.program_headers().enumerate() {
        assert_eq!(e.program_header(i), Some(p));
        if let Ok(d) = e.segment_data(i, &p) {
            assert_eq!(d.len() as u64, p.filesz);
            assert!(p.offset + p.filesz <= len);
        }
    }
    for (i, n) in e.segment_notes().flatten() {
        let seg = e.program_header(i).unwrap();
        assert!((n.offset as u64) < seg.filesz);
        if let Some(d) = n.desc {
            assert_eq!(d.len(), n.descsz);
        }
    }
    if let Ok(Some(Linkage::Dynamic { interpreter })) = e.linkage() {
        assert!(!interpreter.is_empty() && !interpreter.contains(&0));
    }
    if let Ok(Some(d)) = e.dynamic() {
        for x in d {
            if x.tag == DT_STRTAB {
                let _ = e.vaddr_to_offset(x.val);
            }
        }
    }
    let _ = e.load_end();
    for (i, s) in e.sections().enumerate() {
        if let Ok(d) = e.section_data(i, &s) {
            assert!(s.sh_type == SHT_NOBITS || d.len() as u64 == s.size);
        }
        let _ = e.section_name(&s);
        let _ = e.linked_data(i, &s);
    }
    for t in [SHT_SYMTAB, SHT_DYNSYM] {
        if let Ok(st) = e.symbols(t) {
            for s in st.iter() {
                let _ = st.name(&s);
            }
        }
    }
}

/// A valid executable: PT_LOAD, PT_INTERP, PT_DYNAMIC, PT_NOTE, then
/// .symtab, .strtab, .shstrtab and section headers.
fn valid_elf() -> Vec<u8> {
    let mut f = vec![0u8; 0x800];
    f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    f[0x10..0x12].copy_from_slice(&ET_DYN.to_le_bytes());
    f[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
    f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    f[0x18..0x20].copy_from_slice(&0x1000u64.to_le_bytes());
    f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    f[0x28..0x30].copy_from_slice(&0x600u64.to_le_bytes());
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&4u16.to_le_bytes());
    f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    f[0x3c..0x3e].copy_from_slice(&4u16.to_le_bytes());
    f[0x3e..0x40].copy_from_slice(&3u16.to_le_bytes());
    let phdrs = [
        ProgramHeader {
            p_type: PT_LOAD,
            flags: PF_R | PF_X,
            offset: 0,
            vaddr: 0,
            paddr: 0,
            filesz: 0x400,
            memsz: 0x1000,
            align: 0x1000,
        },
        ProgramHeader {
            p_type: PT_INTERP,
            flags: PF_R,
            offset: 0x200,
            vaddr: 0x200,
            filesz: 11,
            memsz: 11,
            align: 1,
            ..Default::default()
        },
        ProgramHeader {
            p_type: PT_DYNAMIC,
            flags: PF_R,
            offset: 0x220,
            vaddr: 0x220,
            filesz: 48,
            memsz: 48,
            align: 8,
            ..Default::default()
        },
        ProgramHeader {
            p_type: PT_NOTE,
            flags: PF_R,
            offset: 0x260,
            vaddr: 0x260,
            filesz: 24,
            memsz: 24,
            align: 4,
            ..Default::default()
        },
    ];
    for (i, p) in phdrs.iter().enumerate() {
        f[64 + 56 * i..120 + 56 * i].copy_from_slice(&p.to_bytes());
    }
    f[0x200..0x20c].copy_from_slice(b"/lib/ld.so\0\0");
    for (i, (t, v)) in [(DT_NEEDED, 1u64), (DT_STRTAB, 0x300), (DT_NULL, 0)].iter().enumerate() {
        f[0x220 + 16 * i..0x228 + 16 * i].copy_from_slice(&t.to_le_bytes());
        f[0x228 + 16 * i..0x230 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }
    f[0x260..0x278].copy_from_slice(&[4, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, b'G', b'N', b'U', 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // .symtab at 0x400 (3 symbols), .strtab at 0x480, .shstrtab at 0x4c0.
    for (i, (name, info, value, size)) in
        [(0u32, 0u8, 0u64, 0u64), (1, 0x12, 0x1000, 0x20), (6, 0x11, 0x2000, 8)].iter().enumerate()
    {
        let o = 0x400 + 24 * i;
        f[o..o + 4].copy_from_slice(&name.to_le_bytes());
        f[o + 4] = *info;
        f[o + 6..o + 8].copy_from_slice(&1u16.to_le_bytes());
        f[o + 8..o + 16].copy_from_slice(&value.to_le_bytes());
        f[o + 16..o + 24].copy_from_slice(&size.to_le_bytes());
    }
    f[0x480..0x48c].copy_from_slice(b"\0main\0DATA\0\0");
    f[0x4c0..0x4da].copy_from_slice(b"\0.symtab\0.strtab\0.shstrtab");
    let sh = |f: &mut Vec<u8>, i: usize, name: u32, ty: u32, off: u64, size: u64, link: u32, entsize: u64| {
        let o = 0x600 + 64 * i;
        f[o..o + 4].copy_from_slice(&name.to_le_bytes());
        f[o + 4..o + 8].copy_from_slice(&ty.to_le_bytes());
        f[o + 24..o + 32].copy_from_slice(&off.to_le_bytes());
        f[o + 32..o + 40].copy_from_slice(&size.to_le_bytes());
        f[o + 40..o + 44].copy_from_slice(&link.to_le_bytes());
        f[o + 56..o + 64].copy_from_slice(&entsize.to_le_bytes());
    };
    sh(&mut f, 1, 1, SHT_SYMTAB, 0x400, 72, 2, 24);
    sh(&mut f, 2, 9, SHT_STRTAB, 0x480, 12, 0, 0);
    sh(&mut f, 3, 17, SHT_STRTAB, 0x4c0, 27, 0, 0);
    f.truncate(0x700);
    f
}

#[test]
fn the_valid_elf_reads_back() {
    let f = valid_elf();
    let e = Elf::parse(&f).unwrap();
    assert_eq!(e.interpreter().unwrap(), Some(&b"/lib/ld.so"[..]));
    assert_eq!(e.load_end(), Some(0x1000));
    let st = e.symtab().unwrap();
    let names: Vec<_> = st.iter().map(|s| st.name(&s).unwrap().to_vec()).collect();
    assert_eq!(names, [b"".to_vec(), b"main".to_vec(), b"DATA".to_vec()]);
    let s = e.section(1).unwrap();
    assert_eq!(e.section_name(&s), Some(&b".symtab"[..]));
    let notes: Vec<_> = e.segment_notes().collect::<Result<_, _>>().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].1.name, b"GNU\0");
    let d: Vec<_> = e.dynamic().unwrap().unwrap().collect();
    assert_eq!(d.len(), 2);
    assert_eq!(e.vaddr_to_offset(d[1].val), Some(0x300));
    exercise_elf(&f);
}

#[test]
fn elf_random_bytes() {
    let n = AtomicU64::new(0);
    let strategy = (proptest::collection::vec(any::<u8>(), 0..2048), any::<bool>());
    runner()
        .run(&strategy, |(mut bytes, header)| {
            if header && bytes.len() >= 64 {
                // Get past the header checks most of the time.
                bytes[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
                bytes[0x12..0x18].copy_from_slice(&[62, 0, 1, 0, 0, 0]);
                bytes[0x34..0x38].copy_from_slice(&[64, 0, 56, 0]);
                bytes[0x3a] = 64;
                bytes[0x3b] = 0;
            }
            exercise_elf(&bytes);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("random ELF files", &n);
}

#[test]
fn elf_mutated() {
    let n = AtomicU64::new(0);
    let base = valid_elf();
    let word = prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 63), any::<u64>(), 0u64..0x1000];
    let strategy = (
        proptest::collection::vec((0usize..0x700, any::<u8>()), 0..16),
        proptest::collection::vec((0usize..0x700, word), 0..6),
        proptest::option::of(0usize..0x700),
    );
    runner()
        .run(&strategy, |(bytes, words, cut)| {
            let mut f = base.clone();
            for (o, b) in bytes {
                f[o] = b;
            }
            for (o, w) in words {
                let o = (o & !3).min(f.len() - 8);
                f[o..o + 8].copy_from_slice(&w.to_le_bytes());
            }
            if let Some(c) = cut {
                f.truncate(c);
            }
            exercise_elf(&f);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("mutated ELF files", &n);
}

#[test]
fn elf_round_trip() {
    let n = AtomicU64::new(0);
    let phdr = (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(p_type, flags, offset, vaddr, paddr, filesz, memsz, align)| ProgramHeader {
            p_type: p_type % 8,
            flags,
            offset,
            vaddr,
            paddr: paddr >> 8,
            filesz,
            memsz: memsz >> 8,
            align,
        });
    let strategy =
        (proptest::collection::vec(phdr, 0..12), any::<u64>(), prop_oneof![Just(ET_EXEC), Just(ET_DYN)], 0usize..64);
    runner()
        .run(&strategy, |(phdrs, entry, e_type, tail)| {
            let mut f = vec![0u8; 64 + 56 * phdrs.len() + tail];
            f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
            f[0x10..0x12].copy_from_slice(&e_type.to_le_bytes());
            f[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
            f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
            f[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
            f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
            f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
            f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
            f[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
            for (i, p) in phdrs.iter().enumerate() {
                f[64 + 56 * i..120 + 56 * i].copy_from_slice(&p.to_bytes());
            }
            let e = Elf::parse(&f).unwrap();
            prop_assert_eq!(e.entry(), entry);
            prop_assert_eq!(e.e_type(), e_type);
            prop_assert_eq!(e.program_headers().collect::<Vec<_>>(), phdrs.clone());
            let want = phdrs.iter().filter(|p| p.p_type == PT_LOAD).map(|p| p.paddr + p.memsz).max();
            prop_assert_eq!(e.load_end(), want);
            exercise_elf(&f);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("ELF round trips", &n);
}

/// Device lists as `UNIKIT_SOLO5_DEVICES` could declare them: mostly a few,
/// sometimes up to the limit of 63; names of 1 to 67 letters and digits.
fn devices() -> impl Strategy<Value = Vec<(u32, String)>> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let name = prop_oneof![3 => 1usize..8, 1 => 8usize..=67]
        .prop_flat_map(|n| proptest::collection::vec(0..ALNUM.len(), n))
        .prop_map(|ix| ix.into_iter().map(|i| ALNUM[i] as char).collect::<String>());
    let kind = prop_oneof![Just(mft_type::NET_BASIC), Just(mft_type::BLOCK_BASIC)];
    prop_oneof![4 => 0usize..8, 1 => 8usize..64]
        .prop_flat_map(move |n| proptest::collection::vec((kind.clone(), name.clone()), n))
        .prop_map(|v| {
            let mut out: Vec<(u32, String)> = Vec::new();
            for d in v {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
            out
        })
}

fn device() -> impl Strategy<Value = Device> {
    prop_oneof![
        (any::<[u8; 6]>(), 68u16..=9000).prop_map(|(mut mac, mtu)| {
            mac[0] = (mac[0] & !1) | 2; // unicast, locally administered: never all-zero
            Device::Net { mac, mtu }
        }),
        (9u32..=15, 1u64..1 << 40)
            .prop_map(|(shift, blocks)| Device::Block { capacity: blocks << shift, block_size: 1 << shift }),
    ]
}

#[test]
fn mft_round_trip() {
    let n = AtomicU64::new(0);
    let strategy = (devices(), proptest::collection::vec(proptest::option::of(device()), 63));
    runner()
        .run(&strategy, |(devs, attach)| {
            let declared: Vec<(u32, &str)> = devs.iter().map(|(t, s)| (*t, s.as_str())).collect();
            let mut note = vec![0u8; mft::note_size(declared.len())];
            mft::write_note(&mut note, &declared).unwrap();
            let body = &note[mft::NOTE_MFT_OFFSET..];
            let m = Mft::validate(body).unwrap();
            prop_assert_eq!(m.entries(), declared.len() + 1);
            for (i, (t, name)) in declared.iter().enumerate() {
                let e = m.entry(i + 1).unwrap();
                prop_assert_eq!(e.kind(), *t);
                prop_assert_eq!(e.name(), Some(name.as_bytes()));
            }
            // The tender attaches some, with a device of the declared type.
            let mut copy = body.to_vec();
            let mut want = Vec::new();
            for (i, (t, _)) in declared.iter().enumerate() {
                let Some(d) = attach[i] else { continue };
                let d = match (d, *t) {
                    (Device::Net { .. }, mft_type::NET_BASIC) | (Device::Block { .. }, mft_type::BLOCK_BASIC) => d,
                    _ => continue,
                };
                mft::fill(&mut copy, i + 1, d).unwrap();
                want.push((i + 1, d));
            }
            let g = Mft::check_for_guest(&copy, &declared).unwrap();
            prop_assert_eq!(g.attached().collect::<Vec<_>>(), want);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("manifest round trips", &n);
}

#[test]
fn mft_hostile_bytes() {
    let n = AtomicU64::new(0);
    let strategy = (
        devices(),
        proptest::collection::vec((0usize..7000, any::<u8>()), 0..16),
        proptest::option::of(0usize..7000),
        proptest::collection::vec(any::<u8>(), 0..2000),
    );
    runner()
        .run(&strategy, |(devs, pokes, cut, random)| {
            let declared: Vec<(u32, &str)> = devs.iter().map(|(t, s)| (*t, s.as_str())).collect();
            let mut m = vec![0u8; mft::size(declared.len() + 1)];
            mft::write(&mut m, &declared).unwrap();
            for (o, b) in pokes {
                if let Some(x) = m.get_mut(o) {
                    *x = b;
                }
            }
            if let Some(c) = cut {
                m.truncate(c);
            }
            for bytes in [&m[..], &random[..]] {
                if let Ok(v) = Mft::validate(bytes) {
                    prop_assert_eq!(bytes.len(), mft::size(v.entries()));
                    for e in v.iter() {
                        let _ = (e.name(), e.device());
                    }
                }
                if let Ok(g) = Mft::check_for_guest(bytes, &declared) {
                    for (h, _) in g.attached() {
                        prop_assert!(h >= 1 && h <= declared.len());
                    }
                }
                let mut copy = bytes.to_vec();
                let _ = mft::fill(&mut copy, 1, Device::Net { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 });
            }
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("hostile manifests", &n);
}

#[test]
fn exit_marker_round_trip_and_noise() {
    let n = AtomicU64::new(0);
    let strategy =
        (any::<i32>(), proptest::option::of("[A-Za-z0-9_-]{1,32}"), proptest::collection::vec(any::<u8>(), 0..64));
    runner()
        .run(&strategy, |(code, reason, noise)| {
            let s = Marker { code, reason: reason.as_deref() }.to_string();
            let Parse::Done(e) = exit::parse(s.as_bytes()) else { panic!("{s:?} does not parse") };
            prop_assert_eq!(e.code, code);
            prop_assert_eq!(e.reason.as_ref().map(|r| r.as_str()), reason.as_deref());
            let mut b = exit::PREFIX.to_vec();
            b.extend_from_slice(&noise);
            let _ = exit::parse(&b);
            let _ = exit::parse(&noise);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("exit markers", &n);
}
