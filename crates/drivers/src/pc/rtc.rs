//! CMOS real-time clock (MC146818): wall-clock time at boot.
#![deny(unsafe_code)]
use unikit_io::pc::CMOS;

const ADDR: u16 = 0;
const DATA: u16 = 1;

fn read(reg: u8) -> u8 {
    // Bit 7 of the index keeps the NMI-enable state as-is (0).
    CMOS.write::<u8>(ADDR, reg);
    CMOS.read::<u8>(DATA)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl DateTime {
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    /// Seconds since the Unix epoch (the RTC is assumed to run in UTC, as
    /// QEMU and cloud hypervisors set it).
    pub fn unix_seconds(&self) -> u64 {
        let (y, m) = if self.month <= 2 {
            (self.year as i64 - 1, self.month as i64 + 9)
        } else {
            (self.year as i64, self.month as i64 - 3)
        };
        // Days from civil (Howard Hinnant's algorithm).
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        (days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64).max(0) as u64
    }
}

fn snapshot() -> [u8; 7] {
    [read(0x00), read(0x02), read(0x04), read(0x07), read(0x08), read(0x09), read(0x32)]
}

/// Reads the RTC, waiting out an update in progress and re-reading until two
/// consecutive reads agree. `None` when there is no RTC or it holds no
/// valid date (a machine without CMOS reads all ones or all zeros).
pub fn read_datetime() -> Option<DateTime> {
    let mut prev = [0xffu8; 7];
    for _ in 0..8 {
        let mut spins = 0;
        while read(0x0a) & 0x80 != 0 && spins < 100_000 {
            spins += 1;
        }
        let now = snapshot();
        if now == prev {
            break;
        }
        prev = now;
    }
    let status_b = read(0x0b);
    let bcd = status_b & 0x04 == 0;
    let h24 = status_b & 0x02 != 0;
    if bcd && prev.iter().any(|&v| v >> 4 > 9 || v & 0x0f > 9) && prev[2] & 0x80 == 0 {
        return None;
    }
    let conv = |v: u8| if bcd { ((v >> 4) * 10 + (v & 0x0f)) as u32 } else { v as u32 };
    let [sec, min, hour_raw, day, month, year, century] = prev;
    let pm = hour_raw & 0x80 != 0;
    let mut hour = conv(hour_raw & 0x7f);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let century = match conv(century) {
        c @ 19..=21 => c,
        _ => 20,
    };
    let dt = DateTime {
        year: century * 100 + conv(year),
        month: conv(month),
        day: conv(day),
        hour,
        minute: conv(min),
        second: conv(sec),
    };
    dt.is_valid().then_some(dt)
}

#[cfg(test)]
mod tests {
    use super::DateTime;

    fn dt(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime {
        DateTime { year, month, day, hour, minute, second }
    }

    #[test]
    fn unix_seconds_known_dates() {
        assert_eq!(dt(1970, 1, 1, 0, 0, 0).unix_seconds(), 0);
        assert_eq!(dt(2000, 2, 29, 12, 0, 0).unix_seconds(), 951_825_600);
        assert_eq!(dt(2026, 11, 26, 18, 19, 0).unix_seconds(), 1_795_717_140);
        assert_eq!(dt(2038, 1, 19, 3, 14, 8).unix_seconds(), 2_147_483_648);
    }

    #[test]
    fn validity() {
        assert!(dt(2026, 11, 26, 18, 19, 0).is_valid());
        assert!(!dt(2000, 0, 0, 0, 0, 0).is_valid());
        assert!(!dt(2165, 165, 165, 165, 165, 165).is_valid());
    }

    #[test]
    fn before_epoch_clamps_to_zero() {
        assert_eq!(dt(1969, 12, 31, 23, 59, 59).unix_seconds(), 0);
    }
}
