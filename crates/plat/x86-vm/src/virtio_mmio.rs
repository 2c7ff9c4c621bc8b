//! virtio-mmio devices as Linux, QEMU microvm and Firecracker describe them
//! on the command line: `virtio_mmio.device=<size>@<base>:<irq>` (size and
//! base in decimal or 0x-hex, size with an optional K/M suffix; Linux
//! allows a trailing `:<id>`). See Linux's
//! Documentation/admin-guide/kernel-parameters.txt, `virtio_mmio.device`.
use alloc::vec::Vec;

/// One device named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

fn parse_num(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    v.checked_mul(mult)
}

/// Every well-formed `virtio_mmio.device=` among `options` (malformed ones
/// are skipped).
pub fn devices(options: &[alloc::string::String]) -> Vec<VirtioMmio> {
    options
        .iter()
        .filter_map(|o| o.strip_prefix("virtio_mmio.device="))
        .filter_map(|v| {
            let (size, rest) = v.split_once('@')?;
            let (base, irq) = rest.split_once(':')?;
            let irq = irq.split(':').next()?;
            let d = VirtioMmio { base: parse_num(base)?, size: parse_num(size)?, irq: irq.parse().ok()? };
            (d.size > 0 && d.base.checked_add(d.size).is_some()).then_some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn opts(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn entries() {
        assert_eq!(
            devices(&opts("virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=4K@0xd0000000:5:3 pci=off")),
            vec![
                VirtioMmio { base: 0xfeb0_0000, size: 512, irq: 12 },
                VirtioMmio { base: 0xd000_0000, size: 4096, irq: 5 }
            ]
        );
        assert_eq!(
            devices(&opts("virtio_mmio.device=0x1000@4096:7")),
            vec![VirtioMmio { base: 4096, size: 4096, irq: 7 }]
        );
        for bad in [
            "virtio_mmio.device=",
            "virtio_mmio.device=512",
            "virtio_mmio.device=512@zz:1",
            "virtio_mmio.device=0@0x1000:1",
            "virtio_mmio.device=1@0xffffffffffffffff:1",
            "virtio_mmio.device=512@0x1000:x",
        ] {
            assert!(devices(&opts(bad)).is_empty(), "{bad}");
        }
    }
}
