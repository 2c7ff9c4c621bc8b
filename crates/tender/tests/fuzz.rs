//! Property tests of the ELF, note and manifest parsing: whatever the file,
//! the tender's checks return Ok or Err and never panic, index out of
//! bounds or overflow. Inputs are random bytes and mutations of a valid
//! Solo5 executable (random bytes and random 64-bit values written over the
//! headers, program headers and notes). The number of cases per property is
//! `UNIKIT_HVT_FUZZ_CASES` (default 5000); each test prints how many ran.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use unikit_hvt::elf::Elf;
use unikit_hvt::{abi, mft::Manifest, run::check_executable, testguest::*};

fn cases() -> u32 {
    std::env::var("UNIKIT_HVT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

fn valid() -> Vec<u8> {
    guest(&hypercalls(&[(2, 0x10_0100)]), 0x10_0200, 5, 0, b"hello", &hvt_notes(&[("service", 2), ("storage", 1)]))
}

/// Everything the tender does with an executable before KVM.
fn exercise(bytes: &[u8]) {
    if let Ok((elf, m)) = check_executable(bytes) {
        for mem in [2u64 << 20, 64 << 20, 4 << 30] {
            if let Ok(plan) = elf.load_plan(mem, abi::GUEST_MIN_BASE) {
                assert!(plan.end <= mem);
                for s in &plan.segments {
                    assert!(s.vaddr + s.memsz <= mem);
                    assert_eq!(elf.file_image(s).len() as u64, s.filesz);
                }
            }
        }
        let _ = m.for_guest(&[]);
    }
    if let Ok(elf) = Elf::parse(bytes) {
        for (t, a, max) in
            [(abi::ABI1_NOTE_TYPE, 4, abi::ABI1_NOTE_MAX_SIZE), (abi::MFT1_NOTE_TYPE, 8, abi::MFT1_NOTE_MAX_SIZE)]
        {
            if let Ok(Some(d)) = elf.solo5_note(t, a, max) {
                assert!(d.len() <= max);
                let _ = Manifest::parse(d);
            }
        }
    }
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })
}

fn report(what: &str, n: &AtomicU64) {
    eprintln!("fuzz: {} {what} checked without a panic", n.load(Ordering::Relaxed));
}

#[test]
fn random_bytes() {
    let n = AtomicU64::new(0);
    let strategy = (proptest::collection::vec(any::<u8>(), 0..2048), any::<bool>());
    runner()
        .run(&strategy, |(mut bytes, elf_magic)| {
            if elf_magic && bytes.len() >= 64 {
                // Get past the magic and class checks most of the time.
                bytes[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
                bytes[0x10..0x14].copy_from_slice(&[2, 0, 62, 0]);
                bytes[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
                bytes[0x34..0x38].copy_from_slice(&[64, 0, 56, 0]);
            }
            exercise(&bytes);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("random files", &n);
}

#[test]
fn mutated_executable() {
    let n = AtomicU64::new(0);
    let word = prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 63), any::<u64>(), 0u64..0x1_0000];
    let strategy = (
        proptest::collection::vec((0usize..0x1400, any::<u8>()), 0..16),
        proptest::collection::vec((0usize..0x1400, word), 0..6),
        proptest::option::of(0usize..0x1400),
    );
    let base = valid();
    runner()
        .run(&strategy, |(bytes, words, cut)| {
            let mut f = base.clone();
            for (o, b) in bytes {
                if o < f.len() {
                    f[o] = b;
                }
            }
            for (o, w) in words {
                let o = o & !3;
                if o + 8 <= f.len() {
                    f[o..o + 8].copy_from_slice(&w.to_le_bytes());
                }
            }
            if let Some(c) = cut {
                f.truncate(c.min(f.len()));
            }
            exercise(&f);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("mutated executables", &n);
}

#[test]
fn random_manifests() {
    let n = AtomicU64::new(0);
    let strategy = (
        0u32..70,
        proptest::collection::vec(any::<u8>(), 0..8000),
        proptest::collection::vec(("[a-z0-9]{1,8}", 0u32..4), 0..8),
    );
    runner()
        .run(&strategy, |(entries, body, devs)| {
            let mut m = mft(&devs.iter().map(|(n, t)| (n.as_str(), *t)).collect::<Vec<_>>());
            let _ = Manifest::parse(&m);
            m[4..8].copy_from_slice(&entries.to_le_bytes());
            let _ = Manifest::parse(&m);
            let _ = Manifest::parse(&body);
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    report("manifests", &n);
}

#[test]
fn the_valid_executable_is_valid() {
    let f = valid();
    let (elf, m) = check_executable(&f).unwrap();
    assert_eq!(m.devices.len(), 2);
    assert!(elf.load_plan(2 << 20, abi::GUEST_MIN_BASE).is_ok());
}
