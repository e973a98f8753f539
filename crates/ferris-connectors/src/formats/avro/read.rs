//! Decoding: reading one Avro binary datum, strictly, into the text of the declared columns
//! (handed to [`RowDecoder`](crate::formats::decode::RowDecoder)) and skipping the fields no column
//! names.

use super::{AvroCodec, ColumnPlan, Node, Scalar};
use arrow::datatypes::{DataType, TimeUnit};
use std::io::Write as _;

/// Deepest nesting of arrays, maps, unions and records followed while skipping a field.
const MAX_DEPTH: usize = 64;

impl AvroCodec {
    /// Skips one value of `node` at nesting `depth`; fails past [`MAX_DEPTH`] levels.
    pub(super) fn skip(&self, node: &Node, r: &mut Reader<'_>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        match node {
            Node::Null => {}
            Node::Boolean => {
                r.boolean()?;
            }
            Node::Int => {
                r.int()?;
            }
            Node::Long => {
                r.long()?;
            }
            Node::Float => {
                r.take(4)?;
            }
            Node::Double => {
                r.take(8)?;
            }
            Node::Bytes => {
                r.bytes()?;
            }
            Node::Fixed(n) => {
                r.take(*n)?;
            }
            Node::Enum(n) => {
                let i = r.long()?;
                if usize::try_from(i).map_or(true, |i| i >= *n) {
                    return Err(format!("enum index {i} out of range (0..{n})"));
                }
            }
            Node::Array(item) => {
                let zero = self.zero_size(item, 0);
                while let Some(count) = r.block_count()? {
                    if zero {
                        continue;
                    }
                    r.check_count(count)?;
                    for _ in 0..count {
                        self.skip(item, r, depth + 1)?;
                    }
                }
            }
            Node::Map(value) => {
                while let Some(count) = r.block_count()? {
                    r.check_count(count)?;
                    for _ in 0..count {
                        r.bytes()?;
                        self.skip(value, r, depth + 1)?;
                    }
                }
            }
            Node::Union(branches) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        format!("union branch {i} out of range (0..{})", branches.len())
                    })?;
                self.skip(branch, r, depth + 1)?;
            }
            Node::Record(fields) => {
                for f in fields {
                    self.skip(f, r, depth + 1)?;
                }
            }
            Node::Named(i) => {
                let node = self.named.get(*i).ok_or("unknown named type")?;
                self.skip(node, r, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Whether every value of `node` encodes to zero bytes (so a count of them reads nothing).
    fn zero_size(&self, node: &Node, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match node {
            Node::Null => true,
            Node::Fixed(n) => *n == 0,
            Node::Record(fields) => fields.iter().all(|f| self.zero_size(f, depth + 1)),
            Node::Named(i) => self
                .named
                .get(*i)
                .is_some_and(|n| self.zero_size(n, depth + 1)),
            _ => false,
        }
    }
}

/// Where a column's text is: a range of the payload or of the text buffer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Span {
    Payload(usize, usize),
    Text(usize, usize),
}

/// A cursor over one message.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// How many bytes are left after the cursor.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes and where they start.
    fn take(&mut self, n: usize) -> Result<(usize, &'a [u8]), String> {
        let start = self.pos;
        let bytes = start
            .checked_add(n)
            .and_then(|end| self.buf.get(start..end))
            .ok_or_else(|| format!("truncated: needs {n} more bytes, {} left", self.remaining()))?;
        self.pos += n;
        Ok((start, bytes))
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (_, b) = self.take(1)?;
        b.first().copied().ok_or_else(|| "truncated".to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("invalid boolean byte 0x{b:02x}")),
        }
    }

    /// A zig-zag varint `long` (at most 10 bytes).
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self
                .byte()
                .map_err(|_| "truncated: ends inside a number".to_string())?;
            if i == 9 && b > 1 {
                return Err("number overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("number overflows 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int value {v} out of the 32-bit range"))
    }

    /// A `bytes` or `string` value: its start offset and bytes.
    fn bytes(&mut self) -> Result<(usize, &'a [u8]), String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
        if n > self.remaining() {
            return Err(format!(
                "truncated: length {n} but {} bytes left",
                self.remaining()
            ));
        }
        self.take(n)
    }

    /// The item count of the next array or map block; `None` at the end marker.
    fn block_count(&mut self) -> Result<Option<u64>, String> {
        let n = self.long()?;
        if n < 0 {
            let size = self.long()?;
            if size < 0 {
                return Err(format!("negative block size {size}"));
            }
        }
        Ok(if n == 0 { None } else { Some(n.unsigned_abs()) })
    }

    /// Rejects a block count of non-empty items larger than the bytes left.
    fn check_count(&self, count: u64) -> Result<(), String> {
        if usize::try_from(count).map_or(true, |c| c > self.remaining()) {
            return Err(format!(
                "truncated: block of {count} items but {} bytes left",
                self.remaining()
            ));
        }
        Ok(())
    }
}

/// Reads one column's field, writing its text to `text` unless it is a string (left in the
/// payload); `None` for NULL.
pub(super) fn read_column(
    c: &ColumnPlan,
    r: &mut Reader<'_>,
    text: &mut Vec<u8>,
) -> Result<Option<Span>, String> {
    if let Some(u) = c.union {
        let i = r.long()?;
        if i == u.null {
            return Ok(None);
        }
        if i != u.value {
            return Err(format!("union branch {i} out of range (0..2)"));
        }
    }
    let start = text.len();
    match &c.scalar {
        Scalar::Boolean => {
            let b = r.boolean()?;
            text.extend_from_slice(if b { b"true" } else { b"false" });
        }
        Scalar::Int => {
            let v = r.int()?;
            put(text, format_args!("{v}"))?;
        }
        Scalar::Long => {
            let v = r.long()?;
            put(text, format_args!("{v}"))?;
        }
        Scalar::Float | Scalar::Double => {
            let v = if c.scalar == Scalar::Float {
                let (_, b) = r.take(4)?;
                let b: [u8; 4] = b.try_into().map_err(|_| "truncated".to_string())?;
                f64::from(f32::from_le_bytes(b))
            } else {
                let (_, b) = r.take(8)?;
                let b: [u8; 8] = b.try_into().map_err(|_| "truncated".to_string())?;
                f64::from_le_bytes(b)
            };
            // Each printed in its own type's shortest form, which parses back exactly.
            if c.data_type == DataType::Float32 {
                put(text, format_args!("{}", v as f32))?;
            } else {
                put(text, format_args!("{v}"))?;
            }
        }
        Scalar::String => {
            let (at, b) = r.bytes()?;
            return Ok(Some(Span::Payload(at, at + b.len())));
        }
        Scalar::Enum(symbols) => {
            let i = r.long()?;
            let symbol = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| format!("enum index {i} out of range (0..{})", symbols.len()))?;
            text.extend_from_slice(symbol.as_bytes());
        }
        Scalar::Decimal { scale, fixed, .. } => {
            let (_, b) = match fixed {
                Some(n) => r.take(*n)?,
                None => r.bytes()?,
            };
            let v = decimal_from_be(b)?;
            write_decimal(text, v, *scale)?;
        }
        Scalar::Date => {
            let days = r.int()?;
            write_date(text, i64::from(days))?;
        }
        Scalar::Timestamp(tick) => {
            let v = r.long()?;
            write_timestamp(text, v, *tick, &c.data_type)?;
        }
    }
    Ok(Some(Span::Text(start, text.len())))
}

fn put(text: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> Result<(), String> {
    text.write_fmt(args).map_err(|e| e.to_string())
}

/// A two's-complement big-endian integer (the Avro decimal encoding) as an `i128`.
fn decimal_from_be(b: &[u8]) -> Result<i128, String> {
    let Some(&first) = b.first() else {
        return Err("empty decimal".into());
    };
    let negative = first & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    let cut = b.len().saturating_sub(16);
    let (head, tail) = b.split_at(cut);
    let mut buf = [fill; 16];
    let at = 16 - tail.len();
    if let Some(dst) = buf.get_mut(at..) {
        dst.copy_from_slice(tail);
    }
    let v = i128::from_be_bytes(buf);
    if head.iter().any(|&x| x != fill) || (v < 0) != negative {
        return Err(format!("decimal of {} bytes exceeds 128 bits", b.len()));
    }
    Ok(v)
}

/// `v` scaled by 10^-`scale` in plain decimal notation (`-123.4500`).
fn write_decimal(text: &mut Vec<u8>, v: i128, scale: usize) -> Result<(), String> {
    let digits = v.unsigned_abs().to_string();
    if v < 0 {
        text.push(b'-');
    }
    if scale == 0 {
        text.extend_from_slice(digits.as_bytes());
    } else if digits.len() <= scale {
        text.extend_from_slice(b"0.");
        text.resize(text.len() + (scale - digits.len()), b'0');
        text.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        put(text, format_args!("{int}.{frac}"))?;
    }
    Ok(())
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_date(text: &mut Vec<u8>, days: i64) -> Result<(), String> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(format!("date {days} (days) is outside the years 0000-9999"));
    }
    put(text, format_args!("{y:04}-{m:02}-{d:02}"))
}

/// A timestamp of `v` ticks of `tick` ns, as text [`RowDecoder`](crate::formats::decode::RowDecoder)
/// reads into `column`'s unit: integer epoch milliseconds when that is exact (or the column is
/// no finer), else RFC 3339.
fn write_timestamp(text: &mut Vec<u8>, v: i64, tick: i64, column: &DataType) -> Result<(), String> {
    let per_ms = 1_000_000 / tick;
    let millis = v.div_euclid(per_ms);
    let sub_ms = v.rem_euclid(per_ms);
    let coarse = matches!(
        column,
        DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _)
    );
    if sub_ms == 0 || coarse {
        return put(text, format_args!("{millis}"));
    }
    let per_s = 1_000_000_000 / tick;
    let secs = v.div_euclid(per_s);
    let nanos = v.rem_euclid(per_s) * tick;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return Err(format!(
            "timestamp {v} is outside the years 0000-9999 (only whole milliseconds are \
             supported there)"
        ));
    }
    let s = secs.rem_euclid(86_400);
    put(
        text,
        format_args!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        ),
    )
}
