//! The reading core shared by the file and stdin sources: buffering, CSV and JSON Lines
//! framing, line numbers and follow mode.
//!
//! Input is read in chunks into one buffer; only complete records are decoded (a partial last
//! record waits for more input, or for the end of input when not following). Positions are
//! 1-based line numbers of the first line of each record (the CSV header is line 1).

use crate::formats::decode::{RowDecoder, UnsupportedType};
use arrow::datatypes::{DataType, SchemaRef};
use csv_core::ReadRecordResult;
use ferris_runtime::{Reject, SourceError, SourcePoll};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;
use std::io::Read;

/// Bytes requested from the reader per read call.
const CHUNK: usize = 256 * 1024;

/// A text format of the file and stdin sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// CSV with a header row; columns are matched to the schema by name.
    Csv,
    /// JSON Lines: one object per line.
    Json,
}

impl TextFormat {
    /// Parses a `'format'` value (`csv` or `json`, any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(TextFormat::Csv),
            "json" | "jsonl" | "ndjson" | "json_lines" => Some(TextFormat::Json),
            _ => None,
        }
    }

    /// The canonical name (`csv` or `json`).
    pub fn name(&self) -> &'static str {
        match self {
            TextFormat::Csv => "csv",
            TextFormat::Json => "json",
        }
    }
}

/// How the reader behaves at the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndMode {
    /// The input is finished at its end (`SourcePoll::End`).
    Finish,
    /// More may be appended: report `Idle` and read again later; a partial last record waits
    /// for its terminator.
    Follow,
}

struct CsvState {
    rdr: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Field index in the CSV record of each declared column, once the header is read.
    header: Option<Vec<usize>>,
    /// Number of header fields: every row must have exactly this many.
    nfields: usize,
    /// csv_core has not read since it was created or reset: it would strip a UTF-8 byte
    /// order mark at the start of its next input as if it began the file.
    fresh: bool,
}

enum Next {
    Record {
        consumed: usize,
        nfields: usize,
        line: u64,
    },
    NeedMore,
    End,
}

/// Decodes CSV or JSON Lines from a byte stream into batches of the declared schema.
pub struct TextReader<R> {
    reader: R,
    location: String,
    format: TextFormat,
    end_mode: EndMode,
    /// Return rows after each read instead of filling a whole batch (interactive input).
    eager: bool,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    done: bool,
    decoder: RowDecoder,
    names: Vec<String>,
    positions: Vec<u64>,
    rejects: Vec<Reject>,
    csv: CsvState,
    json_line: u64,
    /// A leading UTF-8 byte order mark has been looked for (and skipped).
    bom_checked: bool,
    /// CSV: the field text that is NULL (`None`: an empty field is).
    null_literal: Option<Vec<u8>>,
    /// Per declared column, whether it is a string (an empty field is then "" under a null
    /// literal).
    string_columns: Vec<bool>,
}

impl<R: Read> TextReader<R> {
    /// A reader of `format` rows in `schema` from `reader`; `location` prefixes errors.
    pub fn new(
        reader: R,
        location: String,
        schema: SchemaRef,
        format: TextFormat,
        end_mode: EndMode,
        eager: bool,
    ) -> Result<Self, UnsupportedType> {
        let decoder = RowDecoder::new(schema)?;
        let names = decoder.column_names().map(str::to_string).collect();
        Ok(TextReader {
            reader,
            location,
            format,
            end_mode,
            eager,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            done: false,
            decoder,
            names,
            positions: Vec::new(),
            rejects: Vec::new(),
            csv: CsvState {
                rdr: csv_core::Reader::new(),
                fresh: true,
                out: vec![0; 4096],
                ends: vec![0; 64],
                header: None,
                nfields: 0,
            },
            json_line: 1,
            bom_checked: false,
            null_literal: None,
            string_columns: Vec::new(),
        })
    }

    /// CSV: `literal` is the field text that is NULL; an empty field is then an empty string
    /// for string columns (NULL for the others). Without one, an empty field is NULL.
    pub fn with_null_literal(mut self, literal: Option<&str>) -> Self {
        self.null_literal = literal.map(|l| l.as_bytes().to_vec());
        let schema = self.decoder.schema().clone();
        self.string_columns = schema
            .fields()
            .iter()
            .map(|f| {
                matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            })
            .collect();
        self
    }

    /// Where positions point.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The declared schema.
    pub fn schema(&self) -> SchemaRef {
        self.decoder.schema().clone()
    }

    fn err(&self, msg: impl std::fmt::Display) -> SourceError {
        SourceError::new(format!("{}: {msg}", self.location))
    }

    /// For CSV, reads until the header row is complete and checks it against the schema.
    /// Returns whether the header is known (`false`: following an input that has no complete
    /// header line yet). For JSON, does nothing.
    pub fn read_header(&mut self) -> Result<bool, SourceError> {
        if self.format == TextFormat::Json {
            return Ok(true);
        }
        loop {
            if self.csv_header()? {
                return Ok(true);
            }
            if self.done {
                return Err(self.err("the CSV input has no header row"));
            }
            if self.fill()? == 0 {
                match self.end_mode {
                    EndMode::Follow => return Ok(false),
                    EndMode::Finish => self.eof = true,
                }
            }
        }
    }

    /// Reads up to `max_rows` rows (decoded rows plus rejects).
    pub fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        let max = max_rows.max(1);
        loop {
            if !self.done {
                match self.format {
                    TextFormat::Csv => self.decode_csv(max)?,
                    TextFormat::Json => self.decode_json(max),
                }
            }
            let have = self.decoder.rows() + self.rejects.len();
            if have >= max || self.done || (self.eager && have > 0) {
                break;
            }
            if self.eof {
                continue;
            }
            if self.fill()? == 0 {
                match self.end_mode {
                    EndMode::Follow => break,
                    EndMode::Finish => self.eof = true,
                }
            }
        }
        if self.decoder.rows() + self.rejects.len() > 0 {
            let records = self.decoder.finish().map_err(|e| self.err(e))?;
            Ok(SourcePoll::Batch {
                records,
                positions: std::mem::take(&mut self.positions),
                rejects: std::mem::take(&mut self.rejects),
            })
        } else if self.done {
            Ok(SourcePoll::End)
        } else {
            Ok(SourcePoll::Idle)
        }
    }

    /// Reads one chunk; returns the number of bytes read (0 at the current end of input).
    fn fill(&mut self) -> Result<usize, SourceError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(self.err(format!("read failed: {e}")));
                }
            }
        };
        self.buf.truncate(old + n);
        Ok(n)
    }

    /// Skips a UTF-8 byte order mark at the start of the input; `false` while it cannot be
    /// told yet.
    fn skip_bom(&mut self) -> bool {
        if self.bom_checked {
            return true;
        }
        const BOM: &[u8] = b"\xef\xbb\xbf";
        let rest = &self.buf[self.pos..];
        if rest.len() < BOM.len() && !self.eof && BOM.starts_with(rest) {
            return false;
        }
        if rest.starts_with(BOM) {
            self.pos += BOM.len();
        }
        self.bom_checked = true;
        true
    }

    /// Parses the header from the buffer if it is complete; `Ok(true)` once it is known.
    fn csv_header(&mut self) -> Result<bool, SourceError> {
        if self.csv.header.is_some() {
            return Ok(true);
        }
        if !self.skip_bom() {
            return Ok(false);
        }
        match next_csv(&mut self.csv, &self.buf[self.pos..], self.eof) {
            Next::NeedMore => Ok(false),
            Next::End => {
                self.done = true;
                Ok(false)
            }
            Next::Record {
                consumed, nfields, ..
            } => {
                self.pos += consumed;
                let fields: Vec<String> = (0..nfields)
                    .map(|i| {
                        String::from_utf8_lossy(csv_field(&self.csv, i))
                            .trim()
                            .to_string()
                    })
                    .collect();
                let map = map_header(&fields, &self.names).map_err(|m| self.err(m))?;
                self.csv.nfields = nfields;
                self.csv.header = Some(map);
                Ok(true)
            }
        }
    }

    fn decode_csv(&mut self, max: usize) -> Result<(), SourceError> {
        if !self.csv_header()? {
            return Ok(());
        }
        while self.decoder.rows() + self.rejects.len() < max {
            let input = &self.buf[self.pos..];
            let (consumed, nfields, line) = match next_csv(&mut self.csv, input, self.eof) {
                Next::NeedMore => return Ok(()),
                Next::End => {
                    self.done = true;
                    return Ok(());
                }
                Next::Record {
                    consumed,
                    nfields,
                    line,
                } => (consumed, nfields, line),
            };
            let raw = &input[..consumed];
            self.pos += consumed;
            let csv = &self.csv;
            let result = if nfields != csv.nfields {
                Err(format!(
                    "expected {} fields, found {}",
                    csv.nfields, nfields
                ))
            } else {
                let map = csv.header.as_deref().unwrap_or(&[]);
                let literal = self.null_literal.as_deref();
                let strings = &self.string_columns;
                self.decoder.push_row(|i| {
                    let v = csv_field(csv, *map.get(i)?);
                    let null = match literal {
                        None => v.is_empty(),
                        Some(l) => {
                            v == l || (v.is_empty() && !strings.get(i).copied().unwrap_or(false))
                        }
                    };
                    if null { None } else { Some(v) }
                })
            };
            match result {
                Ok(()) => self.positions.push(line),
                Err(reason) => self
                    .rejects
                    .push(Reject::new(line, trim_newlines(raw), reason)),
            }
        }
        Ok(())
    }

    fn decode_json(&mut self, max: usize) {
        if !self.skip_bom() {
            return;
        }
        while self.decoder.rows() + self.rejects.len() < max {
            let rest = &self.buf[self.pos..];
            let (line, consumed) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], i + 1),
                None if self.eof && !rest.is_empty() => (rest, rest.len()),
                None => {
                    if self.eof {
                        self.done = true;
                    }
                    return;
                }
            };
            self.pos += consumed;
            let line_no = self.json_line;
            self.json_line += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match decode_json_line(&mut self.decoder, &self.names, text) {
                Ok(()) => self.positions.push(line_no),
                Err(reason) => self
                    .rejects
                    .push(Reject::new(line_no, trim_newlines(line), reason)),
            }
        }
    }
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b'\r' | b'\n'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b'\r' | b'\n'))
        .map_or(start, |e| e + 1);
    b.get(start..end.max(start)).unwrap_or(&[])
}

fn csv_field(csv: &CsvState, i: usize) -> &[u8] {
    let start = if i == 0 {
        0
    } else {
        csv.ends.get(i - 1).copied().unwrap_or(0)
    };
    let end = csv.ends.get(i).copied().unwrap_or(start);
    csv.out.get(start..end).unwrap_or(&[])
}

/// Reads the next complete CSV record from `input`. Without `at_eof`, a record that is not
/// terminated yet is left unconsumed (`NeedMore`).
fn next_csv(st: &mut CsvState, input: &[u8], at_eof: bool) -> Next {
    // csv_core takes empty input as the end of the data.
    if input.is_empty() && !at_eof {
        return Next::NeedMore;
    }
    match next_plain_line(st, input) {
        Some(next) => next,
        None => next_csv_core(st, input, at_eof),
    }
}

/// [`next_csv`] by csv_core alone.
fn next_csv_core(st: &mut CsvState, input: &[u8], at_eof: bool) -> Next {
    let line_before = st.rdr.line();
    let (mut nin, mut nout, mut nend) = (0, 0, 0);
    let mut empty_calls = 0;
    loop {
        // Our own reader skips the byte order mark at the start of the input; csv_core must
        // not strip one that starts a later record (it does when fresh, also after a reset
        // that re-parses a record whose bytes came in two reads; found by fuzzing: such a
        // record lost its first bytes, and 3 buffered bytes EF BB BF ended the source). Its
        // first byte alone makes csv_core read without stripping.
        let rest = input.get(nin..).unwrap_or(&[]);
        let rest = if st.fresh && rest.starts_with(b"\xef\xbb\xbf") {
            &rest[..1]
        } else {
            rest
        };
        let (res, i, o, e) = st.rdr.read_record(
            rest,
            st.out.get_mut(nout..).unwrap_or(&mut []),
            st.ends.get_mut(nend..).unwrap_or(&mut []),
        );
        st.fresh = false;
        nin += i;
        nout += o;
        nend += e;
        match res {
            ReadRecordResult::Record => {
                let lead = &input[..nin];
                let skipped = lead.iter().take_while(|c| matches!(c, b'\r' | b'\n'));
                let newlines = skipped.filter(|c| **c == b'\n').count() as u64;
                return Next::Record {
                    consumed: nin,
                    nfields: nend,
                    line: line_before + newlines,
                };
            }
            ReadRecordResult::End => return Next::End,
            ReadRecordResult::OutputFull => {
                let n = st.out.len().max(1024) * 2;
                st.out.resize(n, 0);
            }
            ReadRecordResult::OutputEndsFull => {
                let n = st.ends.len().max(16) * 2;
                st.ends.resize(n, 0);
            }
            ReadRecordResult::InputEmpty => {
                if nin < input.len() {
                    continue;
                }
                if !at_eof {
                    st.rdr.reset();
                    st.fresh = true;
                    st.rdr.set_line(line_before);
                    return Next::NeedMore;
                }
                empty_calls += 1;
                if empty_calls > 2 {
                    return Next::End;
                }
            }
        }
    }
}

/// The fast path of [`next_csv`]: a complete line with no quote and no carriage return
/// (but the one of a CRLF ending) is its fields between the commas, exactly as csv_core reads
/// it, split with `memchr` instead of csv_core's byte-at-a-time machine (most lines of most
/// files). `None`: the line needs csv_core (quotes, a lone CR, a blank line, no newline yet).
///
/// csv_core is left as it was: after the record it last returned it is at the start of a
/// record (or after a CR, where anything but a newline starts one), and the bytes taken here
/// begin and end a record of their own. Its line count goes on past the newline taken.
fn next_plain_line(st: &mut CsvState, input: &[u8]) -> Option<Next> {
    let end = memchr::memchr(b'\n', input)?;
    let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    if line.is_empty() || memchr::memchr2(b'"', b'\r', line).is_some() {
        return None;
    }
    if st.out.len() < line.len() {
        st.out.resize(line.len().max(1024), 0);
    }
    let mut nfields = 0;
    let mut from = 0;
    let mut copied = 0;
    for cut in memchr::memchr_iter(b',', line).chain(std::iter::once(line.len())) {
        let field = &line[from..cut];
        st.out[copied..copied + field.len()].copy_from_slice(field);
        copied += field.len();
        if st.ends.len() <= nfields {
            st.ends.resize((nfields + 1).max(16) * 2, 0);
        }
        st.ends[nfields] = copied;
        nfields += 1;
        from = cut + 1;
    }
    let line_no = st.rdr.line();
    st.rdr.set_line(line_no + 1);
    Some(Next::Record {
        consumed: end + 1,
        nfields,
        line: line_no,
    })
}

/// Maps each declared column to its field in the CSV header (exact name first, then
/// case-insensitive). Extra header columns are ignored.
fn map_header(header: &[String], columns: &[String]) -> Result<Vec<usize>, String> {
    let mut map = Vec::with_capacity(columns.len());
    let mut missing = Vec::new();
    for c in columns {
        let found = header
            .iter()
            .position(|h| h == c)
            .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(c)));
        match found {
            Some(i) => map.push(i),
            None => missing.push(format!("'{c}'")),
        }
    }
    if missing.is_empty() {
        Ok(map)
    } else {
        Err(format!(
            "the CSV header has no column {} (header columns: {}; columns are matched by name)",
            missing.join(", "),
            header.join(", ")
        ))
    }
}

fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn lookup<'a, K: std::borrow::Borrow<str> + Hash + Eq>(
    map: &HashMap<K, &'a RawValue>,
    names: &[String],
) -> Vec<Option<&'a RawValue>> {
    names.iter().map(|n| map.get(n.as_str()).copied()).collect()
}

/// The text of one JSON value: strings unescaped, numbers as written (exact digits), other
/// values as raw JSON; `None` for `null`.
fn json_text(raw: &RawValue) -> Result<Option<Cow<'_, str>>, String> {
    let s = raw.get();
    match s.as_bytes().first() {
        Some(b'n') => Ok(None),
        Some(b'"') => {
            if s.contains('\\') {
                serde_json::from_str::<String>(s)
                    .map(|x| Some(Cow::Owned(x)))
                    .map_err(|e| format!("invalid JSON: {e}"))
            } else {
                Ok(Some(Cow::Borrowed(
                    s.get(1..s.len().saturating_sub(1)).unwrap_or(""),
                )))
            }
        }
        _ => Ok(Some(Cow::Borrowed(s))),
    }
}

/// Decodes one JSON object (a line, or a Kafka message) into the decoder.
pub(crate) fn decode_json_line(
    decoder: &mut RowDecoder,
    names: &[String],
    line: &[u8],
) -> Result<(), String> {
    let text = std::str::from_utf8(line).map_err(|_| "the line is not valid UTF-8".to_string())?;
    if !text.starts_with('{') {
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => format!("expected a JSON object, found {}", json_kind(text)),
            Err(e) => format!("invalid JSON: {e}"),
        });
    }
    let raws = match serde_json::from_str::<HashMap<&str, &RawValue>>(text) {
        Ok(m) => lookup(&m, names),
        // Keys with escapes cannot be borrowed: retry with owned keys.
        Err(_) => match serde_json::from_str::<HashMap<String, &RawValue>>(text) {
            Ok(m) => lookup(&m, names),
            Err(e) => return Err(format!("invalid JSON: {e}")),
        },
    };
    let mut values = Vec::with_capacity(raws.len());
    for (raw, name) in raws.iter().zip(names) {
        match raw {
            None => values.push(None),
            Some(r) => values.push(json_text(r).map_err(|e| format!("column '{name}': {e}"))?),
        }
    }
    decoder.push_row(|i| values.get(i).and_then(|v| v.as_deref()).map(str::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> CsvState {
        CsvState {
            rdr: csv_core::Reader::new(),
            out: Vec::new(),
            ends: Vec::new(),
            header: None,
            nfields: 0,
            fresh: true,
        }
    }

    /// Every record of `input` read in chunks of `chunk` bytes, as (line, fields).
    fn records(
        input: &[u8],
        chunk: usize,
        next: fn(&mut CsvState, &[u8], bool) -> Next,
    ) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut st = state();
        let (mut pos, mut have) = (0, chunk.min(input.len()));
        let mut out = Vec::new();
        loop {
            let eof = have == input.len();
            match next(&mut st, &input[pos..have], eof) {
                Next::Record {
                    consumed,
                    nfields,
                    line,
                } => {
                    pos += consumed;
                    let fields = (0..nfields).map(|i| csv_field(&st, i).to_vec()).collect();
                    out.push((line, fields));
                }
                Next::NeedMore => have = (have + chunk).min(input.len()),
                Next::End => return out,
            }
        }
    }

    #[test]
    fn the_plain_line_path_reads_what_csv_core_reads() {
        // Lines built from the bytes that matter to csv_core, in every mix (a fixed
        // pseudo-random sequence), read whole and in small chunks.
        let alphabet: &[&[u8]] = &[
            b"a",
            b"bc",
            b",",
            b",",
            b"\"",
            b"\r",
            b"\n",
            b"\n",
            b"\r\n",
            b"\xef\xbb\xbf",
            b" ",
        ];
        let mut seed: u64 = 7;
        for case in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(case % 40) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                input.extend_from_slice(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            for chunk in [usize::MAX, 1, 3, 7] {
                let fast = records(&input, chunk, next_csv);
                let core = records(&input, chunk, |st, input, at_eof| {
                    if input.is_empty() && !at_eof {
                        return Next::NeedMore;
                    }
                    next_csv_core(st, input, at_eof)
                });
                assert_eq!(
                    fast,
                    core,
                    "input {:?}, chunk {chunk}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        let plain = records(b"a,b\r\n\nc,,d\n\"e\",f\n", usize::MAX, next_csv);
        assert_eq!(
            plain,
            vec![
                (1, vec![b"a".to_vec(), b"b".to_vec()]),
                (3, vec![b"c".to_vec(), b"".to_vec(), b"d".to_vec()]),
                (4, vec![b"e".to_vec(), b"f".to_vec()]),
            ]
        );
    }
}
