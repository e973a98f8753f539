//! Every format the connectors read and write, decode beside encode.
//!
//! | format | decode (sources) | encode (sinks) |
//! | --- | --- | --- |
//! | CSV | [`text`] frames records (quotes, line numbers, follow mode), [`decode`] turns fields into columns | [`csv`] |
//! | JSON (Lines, or one object per Kafka message) | [`text`] frames lines, [`decode`] turns values into columns | `ferris_runtime::json` (shared with dead-letter records, which the runtime writes) |
//! | Avro binary (one datum per Kafka message) | [`avro`] | [`avro`] |
//! | Arrow IPC (the engine's repartition topics) | [`arrow_ipc`] | [`arrow_ipc`] |
//!
//! Supported column types, the one list every format follows:
//!
//! | SQL type | Arrow type | CSV / JSON | Avro | Arrow IPC |
//! | --- | --- | --- | --- | --- |
//! | VARCHAR | Utf8 | ✔ | `string` | ✔ |
//! | BOOLEAN | Boolean | ✔ (`true`/`false`/`1`/`0`, any case) | `boolean` | ✔ |
//! | TINYINT, SMALLINT, INT, BIGINT (and unsigned) | Int8..Int64, UInt8..UInt64 | ✔ | `int` / `long` | ✔ |
//! | REAL, DOUBLE | Float32, Float64 | ✔ | `float` / `double` | ✔ |
//! | DECIMAL(p, s) | Decimal128(p, s), exact | ✔ (more decimals than `s` is an error, never rounded) | `bytes` + `decimal` | ✔ |
//! | TIMESTAMP | Timestamp(ms), UTC | ✔ (forms: [`convert::parse_timestamp`]; written RFC 3339 with ms) | `long` + `timestamp-millis`/`-micros` | ✔ |
//! | DATE | Date32 | ✔ (`YYYY-MM-DD`) | `int` + `date` | ✔ |
//!
//! Scalars are parsed by [`convert`] (bytes in, no allocation, no panic); a row with any bad
//! field is rejected whole, with its position, and meets the query's error strategy.

pub mod arrow_ipc;
pub mod avro;
pub mod convert;
pub mod csv;
pub mod decode;
pub mod text;
