//! Parsing of single text values (CSV fields, JSON scalars, property values) into typed
//! scalars. All parsers work on bytes, allocate nothing and never panic.

use arrow::datatypes::{DataType, TimeUnit};

/// Why an integer or decimal could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number of the expected form.
    Invalid,
    /// A number, but outside the range (or precision) of the type.
    OutOfRange,
    /// A decimal with more (non-zero) fractional digits than the scale.
    TooManyDecimals,
}

/// The SQL name of an Arrow type, as used in error messages (`DECIMAL(18,4)`, `BIGINT`).
pub fn sql_type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Date32 => "DATE".into(),
        other => other.to_string(),
    }
}

/// Parses `true`/`false`/`1`/`0` (case-insensitive, surrounding blanks ignored).
pub fn parse_bool(b: &[u8]) -> Option<bool> {
    let b = b.trim_ascii();
    if b.eq_ignore_ascii_case(b"true") || b == b"1" {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"false") || b == b"0" {
        Some(false)
    } else {
        None
    }
}

fn split_sign(b: &[u8]) -> (bool, &[u8]) {
    match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    }
}

/// Parses a signed decimal integer (optional sign, digits only; blanks around are ignored).
pub fn parse_i64(b: &[u8]) -> Result<i64, NumberError> {
    let (neg, digits) = split_sign(b.trim_ascii());
    if digits.is_empty() {
        return Err(NumberError::Invalid);
    }
    let mut v: i64 = 0;
    let mut overflow = false;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(NumberError::Invalid);
        }
        if !overflow {
            let next = v.checked_mul(10).and_then(|v| {
                if neg {
                    v.checked_sub(i64::from(d))
                } else {
                    v.checked_add(i64::from(d))
                }
            });
            match next {
                Some(n) => v = n,
                None => overflow = true,
            }
        }
    }
    if overflow {
        Err(NumberError::OutOfRange)
    } else {
        Ok(v)
    }
}

/// Parses an unsigned decimal integer (`+` allowed; `-0` is 0, other negatives are out of
/// range).
pub fn parse_u64(b: &[u8]) -> Result<u64, NumberError> {
    let (neg, digits) = split_sign(b.trim_ascii());
    if digits.is_empty() {
        return Err(NumberError::Invalid);
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(NumberError::Invalid);
        }
        if !overflow {
            match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
                Some(n) => v = n,
                None => overflow = true,
            }
        }
    }
    if overflow || (neg && v != 0) {
        Err(NumberError::OutOfRange)
    } else {
        Ok(v)
    }
}

/// Parses a 64-bit float (Rust syntax: `1.5`, `-2e3`, `inf`, `NaN`).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b.trim_ascii()).ok()?.parse().ok()
}

/// Parses a 32-bit float.
pub fn parse_f32(b: &[u8]) -> Option<f32> {
    std::str::from_utf8(b.trim_ascii()).ok()?.parse().ok()
}

/// Parses an exact decimal (`-123.4500`, `0.1`, `1e3`) into the unscaled value of
/// `DECIMAL(precision, scale)`. Never goes through floating point: `0.1` at scale 4 is
/// exactly 1000. Fractional digits beyond the scale are accepted only when they are zeros.
pub fn parse_decimal(b: &[u8], precision: u8, scale: i8) -> Result<i128, NumberError> {
    let (neg, rest) = split_sign(b.trim_ascii());
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let (int_part, rest) = rest.split_at(int_len);
    let (frac_part, rest) = match rest.first() {
        Some(b'.') => {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            (&rest[1..1 + n], &rest[1 + n..])
        }
        _ => (&rest[..0], rest),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(NumberError::Invalid);
    }
    let exp: i64 = match rest.first() {
        None => 0,
        Some(b'e' | b'E') => {
            let (eneg, edigits) = split_sign(&rest[1..]);
            if edigits.is_empty() || !edigits.iter().all(u8::is_ascii_digit) {
                return Err(NumberError::Invalid);
            }
            let mut e: i64 = 0;
            for &c in edigits {
                e = (e * 10 + i64::from(c - b'0')).min(1_000_000);
            }
            if eneg { -e } else { e }
        }
        Some(_) => return Err(NumberError::Invalid),
    };
    // value = D * 10^(exp - frac_len), D = int_part ++ frac_part; units = value * 10^scale.
    let shift = exp - frac_part.len() as i64 + i64::from(scale);
    let total = int_part.len() + frac_part.len();
    let digit = |i: usize| -> u8 {
        if i < int_part.len() {
            int_part[i]
        } else {
            frac_part[i - int_part.len()]
        }
    };
    let kept = if shift < 0 {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        let kept = total.saturating_sub(drop);
        if (kept..total).any(|i| digit(i) != b'0') {
            return Err(NumberError::TooManyDecimals);
        }
        kept
    } else {
        total
    };
    let first_nonzero = (0..kept).find(|&i| digit(i) != b'0');
    let Some(first) = first_nonzero else {
        return Ok(0);
    };
    let zeros = shift.max(0);
    let significant = (kept - first) as i64 + zeros;
    if significant > i64::from(precision) || significant > 38 {
        return Err(NumberError::OutOfRange);
    }
    let mut v: i128 = 0;
    for i in first..kept {
        v = v * 10 + i128::from(digit(i) - b'0');
    }
    for _ in 0..zeros {
        v *= 10;
    }
    Ok(if neg { -v } else { v })
}

/// Parses a date `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(b: &[u8]) -> Option<i32> {
    let b = b.trim_ascii();
    if b.len() != 10 {
        return None;
    }
    let days = parse_ymd(b)?;
    i32::try_from(days).ok()
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    Some(v)
}

/// `YYYY-MM-DD` at the start of `b` (exactly 10 bytes used) -> days since the epoch.
fn parse_ymd(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a timestamp into (epoch seconds, nanoseconds). Accepted forms: RFC 3339
/// (`2024-01-15T09:30:00.123Z`, `2024-01-15T10:30:00+01:00`), `YYYY-MM-DD HH:MM:SS[.fff]`
/// (UTC unless an offset follows), `YYYY-MM-DD` (midnight UTC) and integer epoch
/// milliseconds (`1705311000123`). Fractions beyond nanoseconds are truncated.
pub fn parse_timestamp(b: &[u8]) -> Option<(i64, u32)> {
    let b = b.trim_ascii();
    let (_, body) = split_sign(b);
    if !body.is_empty() && body.iter().all(u8::is_ascii_digit) {
        let ms = parse_i64(b).ok()?;
        let nanos = u32::try_from(ms.rem_euclid(1000) * 1_000_000).ok()?;
        return Some((ms.div_euclid(1000), nanos));
    }
    let days = parse_ymd(b)?;
    if b.len() == 10 {
        return Some((days * 86_400, 0));
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let mut i = 16;
    let mut s = 0;
    if b.get(i) == Some(&b':') {
        s = digits(b.get(i + 1..i + 3)?)?;
        i += 3;
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for k in 0..9 {
            let d = if k < n { u32::from(b[i + k] - b'0') } else { 0 };
            nanos = nanos * 10 + d;
        }
        i += n;
    }
    let rest = &b[i..];
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let offset: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (oh, om) = match tail {
                [a, b2] => (digits(&[*a, *b2])?, 0),
                [a, b2, b':', c, d] | [a, b2, c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset;
    Some((secs, nanos))
}

/// Converts (epoch seconds, nanoseconds) to a value in `unit`, `None` on overflow.
pub fn timestamp_in_unit(secs: i64, nanos: u32, unit: &TimeUnit) -> Option<i64> {
    let (mul, div) = match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    };
    // Every instant must also fit in epoch milliseconds, the unit of event time and of
    // every sink format (so a row read in seconds can be written again; found by fuzzing:
    // the smallest millisecond value floored to seconds did not).
    secs.checked_mul(1_000)?;
    secs.checked_mul(mul)?.checked_add(i64::from(nanos / div))
}

/// Parses a timestamp straight to epoch milliseconds (see [`parse_timestamp`]).
pub fn parse_timestamp_millis(b: &[u8]) -> Option<i64> {
    let (s, n) = parse_timestamp(b)?;
    timestamp_in_unit(s, n, &TimeUnit::Millisecond)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_fit_epoch_milliseconds_in_every_unit() {
        let lowest = i64::MIN / 1_000; // the lowest second whose milliseconds fit
        assert_eq!(
            timestamp_in_unit(lowest, 0, &TimeUnit::Second),
            Some(lowest)
        );
        assert_eq!(timestamp_in_unit(lowest - 1, 0, &TimeUnit::Second), None);
        assert_eq!(
            timestamp_in_unit(lowest - 1, 0, &TimeUnit::Millisecond),
            None
        );
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal(b"0.1", 18, 4), Ok(1000));
        assert_eq!(parse_decimal(b"123.4500", 18, 4), Ok(1_234_500));
        assert_eq!(parse_decimal(b"-0.0005", 18, 4), Ok(-5));
        assert_eq!(parse_decimal(b"+7", 18, 4), Ok(70_000));
        assert_eq!(parse_decimal(b".5", 18, 4), Ok(5000));
        assert_eq!(parse_decimal(b"5.", 18, 4), Ok(50_000));
        assert_eq!(parse_decimal(b"1.5e2", 18, 4), Ok(1_500_000));
        assert_eq!(
            parse_decimal(b"12345E-7", 18, 4),
            Err(NumberError::TooManyDecimals)
        );
        assert_eq!(parse_decimal(b"1.23450", 18, 4), Ok(12_345));
        assert_eq!(
            parse_decimal(b"1.23456", 18, 4),
            Err(NumberError::TooManyDecimals)
        );
        assert_eq!(
            parse_decimal(b"99999999999999.9999", 18, 4),
            Ok(999_999_999_999_999_999)
        );
        assert_eq!(
            parse_decimal(b"100000000000000", 18, 4),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_decimal(b"000000000000000000001.5", 18, 4), Ok(15_000));
        assert_eq!(parse_decimal(b"0.00000", 18, 4), Ok(0));
        assert_eq!(parse_decimal(b"1200", 5, -2), Ok(12));
        assert_eq!(parse_decimal(b"abc", 18, 4), Err(NumberError::Invalid));
        assert_eq!(parse_decimal(b"1.2.3", 18, 4), Err(NumberError::Invalid));
        assert_eq!(parse_decimal(b"-", 18, 4), Err(NumberError::Invalid));
        assert_eq!(parse_decimal(b"1e", 18, 4), Err(NumberError::Invalid));
        assert_eq!(
            parse_decimal(b"1e999999999", 18, 4),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_decimal(b"0e999999999", 18, 4), Ok(0));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_i64(b"9223372036854775808"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_i64(b" 42 "), Ok(42));
        assert_eq!(parse_i64(b"4x2"), Err(NumberError::Invalid));
        assert_eq!(parse_i64(b"1.0"), Err(NumberError::Invalid));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_u64(b"-1"), Err(NumberError::OutOfRange));
    }

    #[test]
    fn timestamps() {
        let ms = |s: &str| parse_timestamp_millis(s.as_bytes());
        assert_eq!(ms("2024-01-15T09:30:00.123Z"), Some(1_705_311_000_123));
        assert_eq!(ms("2024-01-15T10:30:00.123+01:00"), Some(1_705_311_000_123));
        assert_eq!(ms("2024-01-15T04:30:00.123-0500"), Some(1_705_311_000_123));
        assert_eq!(ms("2024-01-15 09:30:00.123"), Some(1_705_311_000_123));
        assert_eq!(ms("2024-01-15 09:30:00.1239999"), Some(1_705_311_000_123));
        assert_eq!(ms("2024-01-15 09:30:00"), Some(1_705_311_000_000));
        assert_eq!(ms("2024-01-15"), Some(1_705_276_800_000));
        assert_eq!(ms("1705311000123"), Some(1_705_311_000_123));
        assert_eq!(ms("-1"), Some(-1));
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(ms("2024-01-15T25:00:00Z"), None);
        assert_eq!(ms("2024-01-15X09:30:00Z"), None);
        assert_eq!(ms("2024-01-15T09:30:00.Z"), None);
        assert_eq!(ms("yesterday"), None);
        assert_eq!(parse_date(b"1970-01-02"), Some(1));
        assert_eq!(parse_date(b"1969-12-31"), Some(-1));
        assert_eq!(parse_date(b"2024-13-01"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool(b"TRUE"), Some(true));
        assert_eq!(parse_bool(b"0"), Some(false));
        assert_eq!(parse_bool(b"False"), Some(false));
        assert_eq!(parse_bool(b"yes"), None);
    }
}
