//! Timestamps as text, one way for every crate: [`parse_timestamp_ms`] reads RFC 3339-like
//! UTC times (`2014-04-10T00:02:00Z`, `2014-04-10 00:02:00.250`, with `T` or a space,
//! `Z` or `+00:00` or nothing, any number of fraction digits) into milliseconds since the
//! Unix epoch; [`format_ms`] and [`format_seconds`] write them back (RFC 3339, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::TimestampMs;

/// A text that is not a timestamp this crate reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not a UTC time like 2014-04-10T00:02:00Z or 2014-04-10 00:02:00.250: {reason}")]
pub struct TimeError {
    /// The text, quoted (long texts cut, see [`crate::ids::echo`]).
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses an RFC 3339-like UTC time (see the module docs) into ms since the Unix epoch;
/// fraction digits past the millisecond are dropped.
///
/// # Errors
/// [`TimeError`] for anything else: other time zones, out-of-range fields, times before
/// 1970, trailing text.
pub fn parse_timestamp_ms(text: &str) -> Result<TimestampMs, TimeError> {
    let t = text.trim();
    let err = |reason: String| TimeError { text: crate::ids::echo(t), reason };
    let st = humantime::parse_rfc3339_weak(t).map_err(|e| err(e.to_string()))?;
    let d = st.duration_since(UNIX_EPOCH).map_err(|_| err("it is before 1970".into()))?;
    i64::try_from(d.as_millis()).map_err(|_| err("it is out of range".into()))
}

fn system_time(ms: TimestampMs) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `ms` as RFC 3339 with milliseconds (`2014-04-10T00:02:00.250Z`); times before 1970
/// show as the epoch.
pub fn format_ms(ms: TimestampMs) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

/// `ms` as RFC 3339 to the second (`2014-04-10T00:02:00Z`); times before 1970 show as the
/// epoch.
pub fn format_seconds(ms: TimestampMs) -> String {
    humantime::format_rfc3339_seconds(system_time(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_forms_parse_to_epoch_ms() {
        for (text, ms) in [
            ("1970-01-01 00:00:00", 0),
            ("2014-04-10 00:02:00", 1_397_088_120_000),
            ("2014-04-10T00:02:00Z", 1_397_088_120_000),
            ("2014-04-10T00:02:00+00:00", 1_397_088_120_000),
            ("2014-04-10T00:02:00.250000", 1_397_088_120_250),
            ("2014-04-10 00:02:00.2509", 1_397_088_120_250),
            ("  2000-02-29 12:00:00\n", 951_825_600_000),
        ] {
            assert_eq!(parse_timestamp_ms(text), Ok(ms), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_text() {
        for bad in ["2014-04-10", "2014-13-01 00:00:00", "2014-02-30 00:00:00", "2014-04-10 00:02:0x", "x", "", "2014-04-10T00:02:00+02:00"]
        {
            let e = parse_timestamp_ms(bad).expect_err(bad);
            assert_eq!(e.text, format!("{:?}", bad.trim()), "{e}");
            assert!(e.to_string().contains("is not a UTC time"), "{e}");
        }
        assert!(parse_timestamp_ms("1969-12-31 23:59:59").is_err(), "times before 1970 are refused");
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [0, 1_397_088_120_000, 1_397_088_120_250, 4_102_444_800_123] {
            assert_eq!(parse_timestamp_ms(&format_ms(ms)), Ok(ms));
            assert_eq!(parse_timestamp_ms(&format_seconds(ms)), Ok(ms / 1000 * 1000));
        }
        assert_eq!(format_ms(1_397_088_120_250), "2014-04-10T00:02:00.250Z");
        assert_eq!(format_seconds(-5), "1970-01-01T00:00:00Z");
    }
}
