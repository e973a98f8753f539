//! Property validation: unknown keys, bad values, unknown connectors.

mod common;

use common::*;
use ferris_connectors::{create_sink, create_source};
use std::path::Path;

fn source_err(pairs: &[(&str, &str)]) -> String {
    create_source("s", trades_schema(), &props(pairs), Path::new("."))
        .err()
        .expect("an error")
        .to_string()
}

fn sink_err(pairs: &[(&str, &str)]) -> String {
    create_sink("q", &props(pairs), Path::new("."))
        .err()
        .expect("an error")
        .to_string()
}

#[test]
fn unknown_keys_are_named_with_the_valid_ones() {
    assert_eq!(
        source_err(&[("connector", "file"), ("path", "x.csv"), ("foo", "1")]),
        "unknown property 'foo' for the file source; valid properties: connector, path, format, follow, csv.null.literal"
    );
    assert_eq!(
        source_err(&[("connector", "datagen"), ("table", "bid")]),
        "unknown property 'table' for the datagen source (generator 'trades'); valid properties: \
         connector, generator, seed, symbols, events, rate, start, interval.ms"
    );
    assert_eq!(
        source_err(&[("connector", "stdin"), ("path", "x")]),
        "unknown property 'path' for the stdin source; valid properties: connector, format"
    );
    assert_eq!(
        sink_err(&[
            ("connector", "file"),
            ("path", "o.json"),
            ("follow", "true")
        ]),
        "unknown property 'follow' for the file sink; valid properties: connector, path, format, upsert.key, append"
    );
    assert_eq!(
        sink_err(&[("connector", "blackhole"), ("x", "y")]),
        "unknown property 'x' for the blackhole sink; valid properties: connector"
    );
}

#[test]
fn bad_values_are_named() {
    assert_eq!(
        source_err(&[("connector", "file"), ("path", "x.csv"), ("format", "xml")]),
        "invalid value 'xml' for property 'format' of the file source: expected 'csv' or 'json'"
    );
    assert_eq!(
        source_err(&[
            ("connector", "file"),
            ("path", "x.csv"),
            ("follow", "sometimes")
        ]),
        "invalid value 'sometimes' for property 'follow' of the file source: expected 'true' or 'false'"
    );
    assert_eq!(
        source_err(&[("connector", "datagen"), ("events", "x")]),
        "invalid value 'x' for property 'events' of the datagen source (generator 'trades'): \
         expected a non-negative integer"
    );
    assert_eq!(
        source_err(&[("connector", "datagen"), ("rate", "-5")]),
        "invalid value '-5' for property 'rate' of the datagen source (generator 'trades'): \
         expected a positive number"
    );
    assert_eq!(
        source_err(&[
            ("connector", "datagen"),
            ("generator", "nexmark"),
            ("table", "bids")
        ]),
        "invalid value 'bids' for property 'table' of the datagen source (generator 'nexmark'): \
         expected 'bid', 'auction' or 'person'"
    );
    assert_eq!(
        source_err(&[("connector", "datagen"), ("generator", "stocks")]),
        "invalid value 'stocks' for property 'generator' of the datagen source: expected 'trades' or 'nexmark'"
    );
    assert_eq!(
        source_err(&[("connector", "datagen"), ("start", "soon")]),
        "invalid value 'soon' for property 'start' of the datagen source (generator 'trades'): \
         expected a timestamp such as 2024-01-01T00:00:00Z"
    );
    assert_eq!(
        sink_err(&[
            ("connector", "file"),
            ("path", "o.txt"),
            ("format", "parquet")
        ]),
        "invalid value 'parquet' for property 'format' of the file sink: expected 'json', 'csv' or 'upsert-json'"
    );
}

#[test]
fn missing_and_unknown_connectors() {
    assert_eq!(
        source_err(&[("connector", "file")]),
        "the file source needs property 'path'"
    );
    assert_eq!(
        source_err(&[("connector", "file"), ("path", "data.txt")]),
        "the file source (the extension of 'data.txt' does not tell) needs property 'format'"
    );
    assert_eq!(
        source_err(&[("path", "x.csv")]),
        "missing property 'connector' (valid connectors: file, stdin, datagen, kafka)"
    );
    assert_eq!(
        source_err(&[("connector", "ftp")]),
        "unknown connector 'ftp' for a source; valid connectors: file, stdin, datagen, kafka"
    );
    assert_eq!(
        sink_err(&[("connector", "ftp")]),
        "unknown connector 'ftp' for a sink; valid connectors: file, stdout, blackhole, kafka"
    );
}
