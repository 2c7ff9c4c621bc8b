//! Memory sizes: `64M`, `512K`, `1G`, or a plain number of MiB.

use std::fmt;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Upper bound, to keep arithmetic and QEMU arguments sane (1 TiB).
const MAX: u64 = 1024 * GIB;

/// Guest memory size in bytes (a positive multiple of 1 KiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(u64);

impl Memory {
    pub const DEFAULT: Memory = Memory(64 * MIB);

    pub fn parse(s: &str) -> Result<Memory, String> {
        let t = s.trim();
        let (digits, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() && i > 0 && t[..i].bytes().all(|b| b.is_ascii_digit()) => {
                let unit = match c.to_ascii_uppercase() {
                    'K' => KIB,
                    'M' => MIB,
                    'G' => GIB,
                    _ => {
                        return Err(format!("invalid memory size '{s}': unknown unit '{c}' (use K, M or G)"));
                    }
                };
                (&t[..i], unit)
            }
            _ => (t, MIB),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid memory size '{s}' (expected e.g. 64M, 512K, 1G)"));
        }
        let n: u64 = digits.parse().map_err(|_| format!("memory size '{s}' is too large"))?;
        let bytes =
            n.checked_mul(unit).filter(|&b| b <= MAX).ok_or_else(|| format!("memory size '{s}' is too large"))?;
        if bytes == 0 {
            return Err(format!("memory size '{s}' must be positive"));
        }
        Ok(Memory(bytes))
    }

    /// For clap's `value_parser`.
    pub fn parse_arg(s: &str) -> Result<Memory, String> {
        Memory::parse(s)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size as QEMU's `-m` wants it: `<N>M` or `<N>K`.
    pub fn qemu_arg(self) -> String {
        if self.0.is_multiple_of(MIB) { format!("{}M", self.0 / MIB) } else { format!("{}K", self.0 / KIB) }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.qemu_arg())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Memory::parse("64M").unwrap().bytes(), 64 * MIB);
        assert_eq!(Memory::parse("64m").unwrap().bytes(), 64 * MIB);
        assert_eq!(Memory::parse("64").unwrap().bytes(), 64 * MIB);
        assert_eq!(Memory::parse("512K").unwrap().bytes(), 512 * KIB);
        assert_eq!(Memory::parse("2G").unwrap().bytes(), 2 * GIB);
        assert_eq!(Memory::parse(" 16M ").unwrap().bytes(), 16 * MIB);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "lots", "M", "0", "0M", "-5M", "5X", "1.5G", "64MB", "99999999999999999999", "2000G", "1 M"] {
            assert!(Memory::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn qemu_arg() {
        assert_eq!(Memory::parse("64M").unwrap().qemu_arg(), "64M");
        assert_eq!(Memory::parse("1G").unwrap().qemu_arg(), "1024M");
        assert_eq!(Memory::parse("1536K").unwrap().qemu_arg(), "1536K");
        assert_eq!(Memory::parse("2048K").unwrap().qemu_arg(), "2M");
    }
}
