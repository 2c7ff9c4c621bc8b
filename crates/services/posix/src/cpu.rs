//! CPU facts a program's start-up asks for.

/// `AT_HWCAP` on x86_64: CPUID leaf 1's EDX, as Linux reports it.
pub fn hwcap() -> u64 {
    core::arch::x86_64::__cpuid(1).edx as u64
}
