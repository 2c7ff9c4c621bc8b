//! Reading Xen's report of a crashed domain. A PV guest whose fault cannot
//! be delivered (its stack is unmapped: an overflow into a guard page) dies
//! in Xen before it can print its own report; Xen's console then has the
//! registers, which this turns into the guest's report.

#[derive(Debug, PartialEq, Eq)]
pub struct Crash {
    pub rip: u64,
    pub rsp: u64,
    pub cr2: u64,
    /// Xen faulted writing the exception frame onto the guest's stack.
    pub undeliverable: bool,
}

fn hex_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(key).nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// The last crash dump of a guest domain in Xen's console lines.
pub fn parse(lines: &[String]) -> Option<Crash> {
    let start = lines.iter().rposition(|l| l.contains(") crashed on cpu#"))?;
    let before = &lines[start.saturating_sub(8)..start];
    let undeliverable = before.iter().any(|l| l.contains("domain_crash_page_fault"));
    let (mut rip, mut rsp, mut cr2) = (None, None, None);
    for l in &lines[start..lines.len().min(start + 20)] {
        if l.contains("RIP:") {
            rip = rip.or(hex_after(l, "[<"));
        }
        if l.contains(" rsp: ") {
            rsp = rsp.or(hex_after(l, " rsp: "));
        }
        if l.contains("cr2: ") {
            cr2 = cr2.or(hex_after(l, "cr2: "));
        }
    }
    Some(Crash { rip: rip?, rsp: rsp?, cr2: cr2.unwrap_or(0), undeliverable })
}

impl Crash {
    /// The lines the user sees; `symbol` names a code address.
    pub fn report(&self, symbol: &dyn Fn(u64) -> Option<String>) -> Vec<String> {
        let at = match symbol(self.rip) {
            Some(s) => format!("{:#x} ({s})", self.rip),
            None => format!("{:#x}", self.rip),
        };
        if !self.undeliverable {
            return vec![format!(
                "unikit: guest crashed in Xen at rip {at} (rsp {:#x}, cr2 {:#x})",
                self.rsp, self.cr2
            )];
        }
        let mut v = vec![format!(
            "unikit: guest CPU exception at rip {at}, fault address {:#x}, that Xen could not deliver: the stack (rsp {:#x}) is not mapped",
            self.cr2, self.rsp
        )];
        if self.cr2 / 4096 == self.rsp / 4096 || self.cr2.abs_diff(self.rsp) < 4096 {
            v.push("unikit: STACK OVERFLOW: the stack ran into its guard page; a Xen PV guest cannot take a fault on an overflowed stack, so Xen crashed the domain before the guest could report it".into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    const DUMP: &str = "\
(XEN) Pagetable walk from 0000000000012e08:
(XEN)  L1[0x012] = 0000000000000000 ffffffffffffffff
(XEN) domain_crash_sync called from entry.S: fault at ffff82d0403602d0 x86_64/entry.S#domain_crash_page_fault_6x8+0/0x4
(XEN) Domain 1 (vcpu#0) crashed on cpu#0:
(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----
(XEN) CPU:    0
(XEN) RIP:    e033:[<00000000001042be>]
(XEN) rbp: 0000000000013038   rsp: 0000000000012e18   r8:  0000000000000000
(XEN) cr3: 000000007b569000   cr2: 0000000000012f20
";

    #[test]
    fn stack_overflow_dump() {
        let c = parse(&lines(DUMP)).unwrap();
        assert_eq!(c, Crash { rip: 0x1042be, rsp: 0x12e18, cr2: 0x12f20, undeliverable: true });
        let r = c.report(&|a| (a == 0x1042be).then(|| "recurse+0x1e".to_string()));
        assert!(r[0].contains("0x1042be (recurse+0x1e)") && r[0].contains("0x12f20"), "{r:?}");
        assert!(r[1].contains("STACK OVERFLOW"), "{r:?}");
    }

    #[test]
    fn other_crash_and_garbage() {
        let d = DUMP.replace("domain_crash_page_fault_6x8", "something_else");
        let c = parse(&lines(&d)).unwrap();
        assert!(!c.undeliverable);
        assert_eq!(c.report(&|_| None).len(), 1);
        assert_eq!(parse(&lines("(XEN) Domain 1 (vcpu#0) crashed on cpu#0:\n(XEN) RIP: nonsense")), None);
        assert_eq!(parse(&lines("nothing here")), None);
    }
}
