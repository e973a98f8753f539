//! Unit tests of the Avro codec: round trips, hand-written datums, schema errors and
//! malformed payloads.

use super::AvroCodec;
use super::write::write_long;
use crate::formats::decode::RowDecoder;
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int32Array, Int64Array, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

fn arrow_schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(ArrowSchema::new(fields))
}

fn zz(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    write_long(&mut out, v);
    out
}

fn encode_all(codec: &AvroCodec, batch: &RecordBatch) -> Vec<Vec<u8>> {
    (0..batch.num_rows())
        .map(|row| {
            let mut out = Vec::new();
            codec.encode_row(batch, row, &mut out).unwrap();
            out
        })
        .collect()
}

fn decode_all(codec: &AvroCodec, schema: &SchemaRef, payloads: &[Vec<u8>]) -> RecordBatch {
    let mut decoder = RowDecoder::new(schema.clone()).unwrap();
    for p in payloads {
        codec.decode(p, &mut decoder).unwrap();
    }
    decoder.finish().unwrap()
}

/// A batch with every supported column type, NULLs and extreme values.
fn every_type_batch() -> RecordBatch {
    let ts = |u| DataType::Timestamp(u, None);
    let schema = arrow_schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("small", DataType::Int32, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("uns", DataType::UInt64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("r", DataType::Float32, false),
        Field::new("d", DataType::Float64, true),
        Field::new("price", DataType::Decimal128(18, 4), true),
        Field::new("big", DataType::Decimal128(38, 10), true),
        Field::new("ts_s", ts(TimeUnit::Second), true),
        Field::new("ts_ms", ts(TimeUnit::Millisecond), true),
        Field::new("ts_us", ts(TimeUnit::Microsecond), false),
        Field::new("ts_ns", ts(TimeUnit::Nanosecond), true),
        Field::new("day", DataType::Date32, true),
    ]);
    let max38 = 10i128.pow(38) - 1;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, -2, i64::MAX, i64::MIN])),
        Arc::new(Int32Array::from(vec![
            Some(7),
            None,
            Some(i32::MIN),
            Some(i32::MAX),
        ])),
        Arc::new(Int8Array::from(vec![Some(-128), Some(127), None, Some(0)])),
        Arc::new(UInt64Array::from(vec![
            Some(0),
            Some(i64::MAX as u64),
            None,
            Some(5),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
        ])),
        Arc::new(StringArray::from(vec![
            Some("héllo"),
            Some(""),
            None,
            Some("a,b\"c\n"),
        ])),
        Arc::new(Float32Array::from(vec![0.1, -0.0, f32::MAX, 1e-40])),
        Arc::new(Float64Array::from(vec![
            Some(0.1),
            None,
            Some(-1e300),
            Some(f64::INFINITY),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(123_456_789),
                Some(-1),
                None,
                Some(999_999_999_999_999_999),
            ])
            .with_precision_and_scale(18, 4)
            .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(max38), Some(-max38), Some(0), None])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        Arc::new(TimestampSecondArray::from(vec![
            Some(1_705_311_000),
            Some(-1),
            None,
            Some(0),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_705_311_000_123),
            Some(-1),
            None,
            Some(0),
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            1_705_311_000_123_456,
            -1,
            1_000,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        ])),
        Arc::new(TimestampNanosecondArray::from(vec![
            Some(1_705_311_000_123_456_789),
            Some(-1),
            None,
            Some(i64::MAX),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(19_737),  // 2024-01-15
            Some(-25_567), // 1900-01-01
            None,
            Some(2_932_896), // 9999-12-31
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

#[test]
fn round_trip_of_every_type_is_exact() {
    let batch = every_type_batch();
    let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
    let payloads = encode_all(&codec, &batch);
    let decoded = decode_all(&codec, batch.schema_ref(), &payloads);
    assert_eq!(decoded, batch);

    // The same through a codec built from the derived schema's JSON text.
    let again = AvroCodec::new(codec.schema_json(), batch.schema()).unwrap();
    assert_eq!(encode_all(&again, &batch), payloads);
    assert_eq!(decode_all(&again, batch.schema_ref(), &payloads), batch);
}

#[test]
fn derived_schema() {
    let schema = arrow_schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("day", DataType::Date32, false),
    ]);
    let codec = AvroCodec::from_arrow(&schema).unwrap();
    let got: serde_json::Value = serde_json::from_str(codec.schema_json()).unwrap();
    let want = serde_json::json!({"type": "record", "name": "row", "fields": [
        {"name": "id", "type": "long"},
        {"name": "price", "default": null, "type": ["null",
            {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}]},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    ]});
    assert_eq!(got, want);

    let bad = arrow_schema(vec![Field::new("count(*)", DataType::Int64, false)]);
    let err = AvroCodec::from_arrow(&bad).unwrap_err();
    assert!(
        err.starts_with("column 'count(*)' is not a valid Avro field name"),
        "{err}"
    );
    let bad = arrow_schema(vec![Field::new("b", DataType::Binary, false)]);
    assert_eq!(
        AvroCodec::from_arrow(&bad).unwrap_err(),
        "column 'b' has type Binary, which the Avro format does not support"
    );
}

#[test]
fn decimal_bytes_are_exact() {
    let json = r#"{"type": "record", "name": "r", "fields": [
        {"name": "p", "type": {"type": "bytes", "logicalType": "decimal",
                               "precision": 9, "scale": 4}}]}"#;
    let schema = arrow_schema(vec![Field::new("p", DataType::Decimal128(9, 4), false)]);
    let codec = AvroCodec::new(json, schema.clone()).unwrap();
    let values = [123_456_789i128, -1, 128, -128, 0, -999_999_999];
    let expected: [&[u8]; 6] = [
        &[0x08, 0x07, 0x5b, 0xcd, 0x15], // 12345.6789
        &[0x02, 0xff],
        &[0x04, 0x00, 0x80],
        &[0x02, 0x80],
        &[0x02, 0x00],
        &[0x08, 0xc4, 0x65, 0x36, 0x01],
    ];
    let array = Decimal128Array::from(values.to_vec())
        .with_precision_and_scale(9, 4)
        .unwrap();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap();
    let payloads = encode_all(&codec, &batch);
    for (got, want) in payloads.iter().zip(expected) {
        assert_eq!(got.as_slice(), want);
    }
    assert_eq!(decode_all(&codec, &schema, &payloads), batch);

    // A value with more digits than the Avro precision is not written.
    let wide = arrow_schema(vec![Field::new("p", DataType::Decimal128(18, 4), false)]);
    let codec = AvroCodec::new(json, wide.clone()).unwrap();
    let array = Decimal128Array::from(vec![1_000_000_000i128])
        .with_precision_and_scale(18, 4)
        .unwrap();
    let batch = RecordBatch::try_new(wide, vec![Arc::new(array)]).unwrap();
    let mut out = vec![9];
    assert_eq!(
        codec.encode_row(&batch, 0, &mut out).unwrap_err(),
        "column 'p': value 100000.0000 has more than 9 digits for Avro field 'p'"
    );
    assert_eq!(out, [9]);
}

const TRADE: &str = r#"{"type": "record", "name": "Trade", "namespace": "com.example",
    "fields": [
    {"name": "skip_arr", "type": {"type": "array", "items": "long"}},
    {"name": "Symbol", "type": "string"},
    {"name": "meta", "type": {"type": "map", "values": {"type": "record", "name": "Meta",
        "fields": [{"name": "a", "type": ["null", "string"]}, {"name": "n", "type": "null"}]}}},
    {"name": "price", "type": {"type": "fixed", "name": "money", "size": 8,
        "logicalType": "decimal", "precision": 18, "scale": 4}},
    {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]}},
    {"name": "again", "type": "Meta"},
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "qty", "type": ["int", "null"]},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "epoch", "type": "long"},
    {"name": "ratio", "type": "double"},
    {"name": "f", "type": {"type": "fixed", "name": "Blob", "size": 3}},
    {"name": "u", "type": ["null", "Blob", "boolean"]}
]}"#;

fn trade_columns() -> SchemaRef {
    let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
    arrow_schema(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Decimal128(18, 4), false),
        Field::new("side", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, true),
        Field::new("ts", ms.clone(), false),
        Field::new("epoch", ms, false),
        Field::new("ratio", DataType::Float32, false),
    ])
}

/// A TRADE datum written by hand.
fn trade_payload(price: [u8; 8], qty: Option<i32>, ts_micros: i64) -> Vec<u8> {
    let mut p = Vec::new();
    // skip_arr: a block of 2, a block of 1 with its byte size, the end.
    p.extend(zz(2));
    p.extend(zz(5));
    p.extend(zz(-7));
    p.extend(zz(-1));
    p.extend(zz(1));
    p.extend(zz(3));
    p.extend(zz(0));
    // Symbol
    p.extend(zz(4));
    p.extend(b"AAPL");
    // meta: {"k": {a: "hi", n: null}}
    p.extend(zz(1));
    p.extend(zz(1));
    p.extend(b"k");
    p.extend(zz(1));
    p.extend(zz(2));
    p.extend(b"hi");
    p.extend(zz(0));
    // price
    p.extend(price);
    // side = SELL
    p.extend(zz(1));
    // again: {a: null, n: null}
    p.extend(zz(0));
    // nulls: a million of them in one block
    p.extend(zz(1_000_000));
    p.extend(zz(0));
    // qty
    match qty {
        Some(q) => {
            p.extend(zz(0));
            p.extend(zz(q.into()));
        }
        None => p.extend(zz(1)),
    }
    p.extend(zz(ts_micros));
    p.extend(zz(1_705_311_000_123));
    p.extend(0.1f64.to_le_bytes());
    p.extend(b"xyz");
    // u: the Blob branch
    p.extend(zz(1));
    p.extend(b"abc");
    p
}

#[test]
fn decodes_hand_written_datums_skipping_other_fields() {
    let columns = trade_columns();
    let codec = AvroCodec::new(TRADE, columns.clone()).unwrap();
    let payloads = [
        trade_payload(
            123_456_789i64.to_be_bytes(),
            Some(42),
            1_705_311_000_123_999,
        ),
        trade_payload([0xff; 8], None, -1),
    ];
    let batch = decode_all(&codec, &columns, &payloads);
    let expected: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["AAPL", "AAPL"])),
        Arc::new(
            Decimal128Array::from(vec![123_456_789, -1])
                .with_precision_and_scale(18, 4)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec!["SELL", "SELL"])),
        Arc::new(Int64Array::from(vec![Some(42), None])),
        // timestamp-micros into milliseconds: truncated toward the past.
        Arc::new(TimestampMillisecondArray::from(vec![1_705_311_000_123, -1])),
        Arc::new(TimestampMillisecondArray::from(vec![
            1_705_311_000_123,
            1_705_311_000_123,
        ])),
        Arc::new(Float32Array::from(vec![0.1f32, 0.1f32])),
    ];
    assert_eq!(batch, RecordBatch::try_new(columns, expected).unwrap());
}

#[test]
fn fixed_decimals_round_trip() {
    let json = r#"{"type": "record", "name": "r", "fields": [
        {"name": "p", "type": ["null", {"type": "fixed", "name": "m", "size": 2,
            "logicalType": "decimal", "precision": 4, "scale": 2}]},
        {"name": "q", "type": "m"}]}"#;
    let schema = arrow_schema(vec![
        Field::new("p", DataType::Decimal128(4, 2), true),
        Field::new("q", DataType::Decimal128(4, 2), false),
    ]);
    let codec = AvroCodec::new(json, schema.clone()).unwrap();
    let dec = |v: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(4, 2)
                .unwrap(),
        )
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            dec(vec![Some(9999), None, Some(-9999)]),
            dec(vec![Some(-1), Some(0), Some(300)]),
        ],
    )
    .unwrap();
    let payloads = encode_all(&codec, &batch);
    assert_eq!(payloads[0], [0x02, 0x27, 0x0f, 0xff, 0xff]);
    assert_eq!(payloads[1], [0x00, 0x00, 0x00]);
    assert_eq!(decode_all(&codec, &schema, &payloads), batch);
}

#[test]
fn schema_errors_name_the_column_and_both_types() {
    let columns = trade_columns();
    let retype = |from: &str, to: &str| TRADE.replacen(from, to, 1);

    let json = retype(
        r#"{"name": "ratio", "type": "double"}"#,
        r#"{"name": "ratio", "type": "string"}"#,
    );
    assert_eq!(
        AvroCodec::new(&json, columns.clone()).unwrap_err(),
        "column 'ratio' has type REAL but Avro field 'ratio' has type string"
    );
    let json = retype(
        r#""precision": 18, "scale": 4"#,
        r#""precision": 18, "scale": 2"#,
    );
    assert_eq!(
        AvroCodec::new(&json, columns.clone()).unwrap_err(),
        "column 'price' has type DECIMAL(18,4) but Avro field 'price' has type \
         decimal(18,2): the scales differ (values are not rescaled)"
    );
    let json = retype(r#"["int", "null"]"#, r#"["int", "null", "string"]"#);
    assert_eq!(
        AvroCodec::new(&json, columns.clone()).unwrap_err(),
        "column 'qty' has type BIGINT but Avro field 'qty' has type [int, null, string]"
    );
    let json = retype(
        r#"{"name": "epoch", "type": "long"}"#,
        r#"{"name": "x", "type": "long"}"#,
    );
    assert_eq!(
        AvroCodec::new(&json, columns.clone()).unwrap_err(),
        "column 'epoch' is not a field of the Avro record 'com.example.Trade' (fields: \
         skip_arr, Symbol, meta, price, side, again, nulls, qty, ts, x, ratio, f, u)"
    );
    assert_eq!(
        AvroCodec::new(r#""string""#, columns.clone()).unwrap_err(),
        "the Avro schema must be a record, not string"
    );
    let err = AvroCodec::new("{not json", columns.clone()).unwrap_err();
    assert!(err.starts_with("invalid Avro schema: "), "{err}");
    let err = AvroCodec::new(
        r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": "Nope"}]}"#,
        columns,
    )
    .unwrap_err();
    assert!(err.starts_with("invalid Avro schema: "), "{err}");
}

#[test]
fn truncated_payloads_are_rejected() {
    let batch = every_type_batch();
    let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
    let mut decoder = RowDecoder::new(batch.schema()).unwrap();
    for payload in encode_all(&codec, &batch) {
        for cut in 0..payload.len() {
            let err = codec.decode(&payload[..cut], &mut decoder).unwrap_err();
            assert!(err.starts_with("invalid Avro: field '"), "{err}");
            assert!(err.contains("truncated"), "{err}");
        }
    }
    assert_eq!(decoder.rows(), 0);

    let trade = AvroCodec::new(TRADE, trade_columns()).unwrap();
    let mut decoder = RowDecoder::new(trade_columns()).unwrap();
    let payload = trade_payload([0; 8], Some(1), 0);
    for cut in 0..payload.len() {
        assert!(trade.decode(&payload[..cut], &mut decoder).is_err());
    }
    trade.decode(&payload, &mut decoder).unwrap();
    assert_eq!(decoder.rows(), 1);
}

#[test]
fn trailing_bytes_are_rejected() {
    let batch = every_type_batch();
    let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
    let mut decoder = RowDecoder::new(batch.schema()).unwrap();
    let mut payload = encode_all(&codec, &batch).remove(0);
    payload.extend([0, 0]);
    assert_eq!(
        codec.decode(&payload, &mut decoder).unwrap_err(),
        "invalid Avro: trailing bytes after the record (2)"
    );
    assert_eq!(decoder.rows(), 0);
}

#[test]
fn garbage_payloads_are_rejected() {
    let codec = AvroCodec::new(TRADE, trade_columns()).unwrap();
    let mut decoder = RowDecoder::new(trade_columns()).unwrap();
    let mut check = |payload: &[u8], want: &str| {
        let err = codec.decode(payload, &mut decoder).unwrap_err();
        assert_eq!(err, want);
    };
    check(&[0xff; 11], "invalid Avro: number overflows 64 bits");
    // An array block claiming more longs than there are bytes.
    check(
        &zz(1 << 40),
        "invalid Avro: truncated: block of 1099511627776 items but 0 bytes left",
    );
    // An empty array, then a string claiming 2^40 bytes.
    let mut p = zz(0);
    p.extend(zz(1 << 40));
    check(
        &p,
        "invalid Avro: field 'Symbol': truncated: length 1099511627776 but 0 bytes left",
    );
    let mut p = zz(0);
    p.extend(zz(-3));
    check(&p, "invalid Avro: field 'Symbol': negative length -3");
    // Bad enum index and union branch.
    let mut p = trade_payload([7; 8], Some(1), 0);
    // The enum index follows the price, then the skipped field's union branch.
    let at = p.windows(8).position(|w| w == [7; 8]).unwrap() + 8;
    p[at] = 4;
    check(
        &p,
        "invalid Avro: field 'side': enum index 2 out of range (0..2)",
    );
    let mut p = trade_payload([7; 8], None, 0);
    p[at + 1] = 4;
    check(&p, "invalid Avro: union branch 2 out of range (0..2)");

    // Pseudo-random bytes: errors or rows, never a panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = trade_payload([1; 8], Some(7), 5);
    let mut decoder = RowDecoder::new(trade_columns()).unwrap();
    for _ in 0..20_000 {
        let mut p: Vec<u8> = (0..next() % 80).map(|_| next() as u8).collect();
        let _ = codec.decode(&p, &mut decoder);
        // Also valid datums with a few bytes flipped.
        p.clone_from(&valid);
        for _ in 0..3 {
            let i = (next() % p.len() as u64) as usize;
            p[i] = next() as u8;
        }
        let _ = codec.decode(&p, &mut decoder);
    }
    decoder.finish().unwrap();
}

#[test]
fn payload_of_another_schema_is_an_error() {
    let other = arrow_schema(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]);
    let writer = AvroCodec::from_arrow(&other).unwrap();
    let batch = RecordBatch::try_new(
        other,
        vec![
            Arc::new(StringArray::from(vec!["hello"])),
            Arc::new(Float64Array::from(vec![1.5])),
        ],
    )
    .unwrap();
    let payload = encode_all(&writer, &batch).remove(0);

    let reader_schema = arrow_schema(vec![
        Field::new("price", DataType::Decimal128(18, 4), true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let reader = AvroCodec::from_arrow(&reader_schema).unwrap();
    let mut decoder = RowDecoder::new(reader_schema).unwrap();
    assert_eq!(
        reader.decode(&payload, &mut decoder).unwrap_err(),
        "invalid Avro: field 'price': union branch 5 out of range (0..2)"
    );
    let every = every_type_batch();
    let reader = AvroCodec::from_arrow(every.schema_ref()).unwrap();
    let mut decoder = RowDecoder::new(every.schema()).unwrap();
    let err = reader.decode(&payload, &mut decoder).unwrap_err();
    assert!(err.starts_with("invalid Avro: "), "{err}");
    assert_eq!(decoder.rows(), 0);
}

#[test]
fn encode_errors() {
    let json = r#"{"type": "record", "name": "r", "fields": [
        {"name": "n", "type": "int"},
        {"name": "s", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "extra", "type": ["null", "string"]}]}"#;
    let schema = arrow_schema(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, false),
    ]);
    let codec = AvroCodec::new(json, schema.clone()).unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![
                Some(-5),
                None,
                Some(1 << 40),
                Some(1),
            ])),
            Arc::new(StringArray::from(vec!["B", "A", "A", "C"])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    codec.encode_row(&batch, 0, &mut out).unwrap();
    // -5, symbol 1, the null branch of the unmatched field.
    assert_eq!(out, [0x09, 0x02, 0x00]);
    let errors = [
        "column 'n' is NULL but Avro field 'n' cannot be NULL",
        "column 'n': value 1099511627776 is out of range for Avro int",
        "column 's': 'C' is not a symbol of the Avro enum of field 's'",
    ];
    for (row, want) in (1..4).zip(errors) {
        assert_eq!(codec.encode_row(&batch, row, &mut out).unwrap_err(), want);
        assert_eq!(out, [0x09, 0x02, 0x00]);
    }
    assert_eq!(
        codec.encode_row(&batch, 4, &mut out).unwrap_err(),
        "row 4 is out of range for a batch of 4 rows"
    );

    // A field no column fills and that cannot be NULL: decoding works, encoding does not.
    let json = json.replace(r#"["null", "string"]"#, r#""string""#);
    let codec = AvroCodec::new(&json, schema).unwrap();
    assert_eq!(
        codec.encode_row(&batch, 0, &mut out).unwrap_err(),
        "Avro field 'extra' matches no column and cannot be NULL, so rows cannot be \
         encoded with this schema"
    );
}
