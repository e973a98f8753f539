//! The datagen source: trades and nexmark generators.

mod common;

use arrow::datatypes::{DataType, TimeUnit};
use common::*;
use ferris_connectors::create_source;
use ferris_runtime::SourcePoll;
use std::path::Path;

fn trades_with_all_columns() -> arrow::datatypes::SchemaRef {
    schema(&[
        ("id", DataType::Int64),
        ("symbol", DataType::Utf8),
        ("price", DataType::Decimal128(18, 4)),
        ("volume", DataType::Int64),
        ("side", DataType::Utf8),
        ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
    ])
}

#[test]
fn trades_are_deterministic_with_exact_first_rows() {
    let p = props(&[
        ("connector", "datagen"),
        ("generator", "trades"),
        ("events", "5"),
    ]);
    let mut a = create_source("d", trades_with_all_columns(), &p, Path::new(".")).expect("source");
    assert_eq!(a.location(), "datagen(trades)");
    let da = drain(a.as_mut(), 3);
    assert_eq!(
        da.rows(),
        vec![
            "1|AMZN|dec:2325141|186|SELL|ms:1704067200000",
            "2|AAPL|dec:2863807|933|SELL|ms:1704067201000",
            "3|TSLA|dec:655093|803|SELL|ms:1704067202000",
            "4|MSFT|dec:2936527|520|BUY|ms:1704067203000",
            "5|AMZN|dec:2322917|464|SELL|ms:1704067204000",
        ]
    );
    assert_eq!(da.positions, vec![1, 2, 3, 4, 5]);
    // Same seed, other batch sizes: identical rows.
    let mut b = create_source("d", trades_with_all_columns(), &p, Path::new(".")).expect("source");
    assert_eq!(drain(b.as_mut(), 1).rows(), da.rows());
    // Another seed: other rows.
    let p2 = props(&[("connector", "datagen"), ("seed", "7"), ("events", "5")]);
    let mut c = create_source("d", trades_with_all_columns(), &p2, Path::new(".")).expect("source");
    assert_ne!(drain(c.as_mut(), 5).rows(), da.rows());
}

#[test]
fn trades_columns_are_chosen_by_name_and_values_do_not_depend_on_them() {
    let p = props(&[
        ("connector", "datagen"),
        ("events", "3"),
        ("start", "2024-06-01 12:00:00"),
        ("interval.ms", "250"),
        ("symbols", "X, Y"),
    ]);
    let s = schema(&[
        ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
        ("price", DataType::Decimal128(10, 2)),
    ]);
    let mut src = create_source("d", s, &p, Path::new(".")).expect("source");
    let rows = drain(src.as_mut(), 10).rows();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("ms:1717243200000|dec:"), "{}", rows[0]);
    assert!(rows[1].starts_with("ms:1717243200250|dec:"), "{}", rows[1]);
    assert!(rows[2].starts_with("ms:1717243200500|dec:"), "{}", rows[2]);
}

#[test]
fn trades_prices_stay_positive_at_the_declared_scale() {
    let p = props(&[("connector", "datagen"), ("events", "20000"), ("seed", "3")]);
    let s = schema(&[("price", DataType::Decimal128(6, 0))]);
    let mut src = create_source("d", s, &p, Path::new(".")).expect("source");
    let d = drain(src.as_mut(), 8192);
    assert_eq!(d.positions.len(), 20000);
    for r in d.rows() {
        let v: i128 = r.trim_start_matches("dec:").parse().expect("decimal");
        assert!(v > 0 && v < 1_000_000, "{r}");
    }
}

#[test]
fn events_limit_is_exact() {
    let p = props(&[("connector", "datagen"), ("events", "2500")]);
    let mut src = create_source("d", trades_schema(), &p, Path::new(".")).expect("source");
    let d = drain(src.as_mut(), 1000);
    assert_eq!(
        d.batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![1000, 1000, 500]
    );
    assert_eq!(d.positions.last(), Some(&2500));
    assert!(matches!(src.poll(1000).expect("poll"), SourcePoll::End));
}

#[test]
fn rate_limits_rows_by_the_wall_clock() {
    let p = props(&[("connector", "datagen"), ("rate", "1")]);
    let mut src = create_source("d", trades_schema(), &p, Path::new(".")).expect("source");
    let SourcePoll::Batch { positions, .. } = src.poll(100).expect("poll") else {
        panic!("expected a batch");
    };
    assert_eq!(positions, vec![1]);
    assert!(matches!(src.poll(100).expect("poll"), SourcePoll::Idle));
}

#[test]
fn unknown_and_mistyped_columns_are_errors() {
    let p = props(&[("connector", "datagen"), ("generator", "trades")]);
    let s = schema(&[
        ("symbol", DataType::Utf8),
        ("foo", DataType::Int64),
        ("bar", DataType::Utf8),
    ]);
    let err = create_source("d", s, &p, Path::new("."))
        .err()
        .expect("error");
    assert_eq!(
        err.to_string(),
        "generator 'trades' has no column 'foo', 'bar' (it generates: symbol, price, volume, ts, side, id)"
    );
    let s = schema(&[("price", DataType::Utf8)]);
    let err = create_source("d", s, &p, Path::new("."))
        .err()
        .expect("error");
    assert_eq!(
        err.to_string(),
        "column 'price' of generator 'trades' must be DECIMAL or DOUBLE, not VARCHAR"
    );
    let p = props(&[("connector", "datagen"), ("generator", "nexmark")]);
    let s = schema(&[("auction", DataType::Int64), ("name", DataType::Utf8)]);
    let err = create_source("d", s, &p, Path::new("."))
        .err()
        .expect("error");
    assert_eq!(
        err.to_string(),
        "nexmark table 'bid' has no column 'name' (its columns: auction, bidder, price, channel, url, date_time, extra)"
    );
}

#[test]
fn nexmark_bids_and_people_are_deterministic() {
    let s = schema(&[
        ("auction", DataType::Int64),
        ("bidder", DataType::Int64),
        ("price", DataType::Int64),
        ("channel", DataType::Utf8),
        (
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ),
    ]);
    let p = props(&[
        ("connector", "datagen"),
        ("generator", "nexmark"),
        ("events", "3"),
    ]);
    let mut src = create_source("n", s.clone(), &p, Path::new(".")).expect("source");
    assert_eq!(src.location(), "datagen(nexmark)");
    let d = drain(src.as_mut(), 2);
    assert_eq!(
        d.rows(),
        vec![
            "1000|1001|4564|Google|ms:1704067200000",
            "1000|1004|18251535|Apple|ms:1704067200000",
            "1000|1001|4429716|Google|ms:1704067200000",
        ]
    );
    assert_eq!(d.positions, vec![1, 2, 3]);
    let mut again = create_source("n", s, &p, Path::new(".")).expect("source");
    assert_eq!(drain(again.as_mut(), 3).rows(), d.rows());

    let s = schema(&[
        ("id", DataType::Int64),
        ("name", DataType::Utf8),
        ("date_time", DataType::Int64),
    ]);
    let p = props(&[
        ("connector", "datagen"),
        ("generator", "nexmark"),
        ("table", "person"),
        ("events", "3"),
    ]);
    let mut people = create_source("p", s, &p, Path::new(".")).expect("source");
    assert_eq!(
        drain(people.as_mut(), 10).rows(),
        vec![
            "1000|kate white|1704067200000",
            "1001|vicky white|1704067200005",
            "1002|deiter noris|1704067200010"
        ]
    );
}
