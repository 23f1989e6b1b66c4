//! Comparing NAB timestamps by value, not by text.
//!
//! Data files write `2014-02-26 13:45:00`, the windows file writes
//! `2014-02-26 13:45:00.000000`. NAB compares parsed (pandas) timestamps, so both are the
//! same instant; [`TimeKey`] makes them equal here too. No calendar arithmetic is needed:
//! the key is only compared for equality.

/// A parsed `YYYY-MM-DD[ T]HH:MM[:SS[.fraction]]`, comparable for equality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimeKey {
    /// Year, month, day, hour, minute, second.
    fields: [u32; 6],
    /// Fraction of a second, in nanoseconds (digits beyond the ninth are ignored).
    nanos: u32,
}

fn number(s: &str, digits: std::ops::RangeInclusive<usize>, max: u32) -> Option<u32> {
    if !digits.contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u32 = s.parse().ok()?;
    (v <= max).then_some(v)
}

impl TimeKey {
    /// Parses `s`; `None` if it is not a timestamp of the accepted shape.
    pub(crate) fn parse(s: &str) -> Option<TimeKey> {
        let s = s.trim();
        let (date, time) = s.split_once([' ', 'T'])?;
        let mut d = date.split('-');
        let year = number(d.next()?, 4..=4, 9999)?;
        let month = number(d.next()?, 1..=2, 12)?;
        let day = number(d.next()?, 1..=2, 31)?;
        if d.next().is_some() || month == 0 || day == 0 {
            return None;
        }
        let (hms, frac) = match time.trim_start().split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (time.trim_start(), None),
        };
        let mut t = hms.split(':');
        let hour = number(t.next()?, 1..=2, 23)?;
        let minute = number(t.next()?, 1..=2, 59)?;
        let second = match t.next() {
            Some(sec) => number(sec, 1..=2, 60)?,
            None => 0,
        };
        if t.next().is_some() {
            return None;
        }
        let nanos = match frac {
            None => 0,
            Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                // Pad or cut to 9 digits: "5" -> 500_000_000 ns.
                let mut n: u32 = 0;
                for i in 0..9 {
                    let digit = f.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
                    n = n * 10 + digit;
                }
                n
            }
            Some(_) => return None,
        };
        Some(TimeKey { fields: [year, month, day, hour, minute, second], nanos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_data_spellings_are_the_same_instant() {
        let a = TimeKey::parse("2014-02-26 13:45:00.000000");
        let b = TimeKey::parse("2014-02-26 13:45:00");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(TimeKey::parse("2014-02-26T13:45"), b);
        assert_eq!(TimeKey::parse("2014-2-26 13:45:00"), b);
    }

    #[test]
    fn different_instants_differ() {
        let a = TimeKey::parse("2014-02-26 13:45:00");
        assert_ne!(a, TimeKey::parse("2014-02-26 13:45:01"));
        assert_ne!(a, TimeKey::parse("2014-02-26 13:45:00.5"));
        assert_eq!(TimeKey::parse("2014-02-26 13:45:00.5"), TimeKey::parse("2014-02-26 13:45:00.500"));
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for s in [
            "",
            "2014-02-26",
            "13:45:00",
            "2014-13-01 00:00:00",
            "2014-02-26 24:00:00",
            "2014-02-26 13:45:00.x",
            "x014-02-26 13:45:00",
            "2014-02-26 13:45:00:00",
        ] {
            assert_eq!(TimeKey::parse(s), None, "{s:?}");
        }
    }
}
