use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use ferris_runtime::Operator;

use super::{AsOfJoinSpec, asof_join_operator};
use crate::join::lookup::LookupKind;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Orders (id, sym, ts) and rates (sym, rate, ts).
fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("sym", DataType::Utf8, true),
        Field::new("ts", ts_type(), false),
    ]))
}

fn rates_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rsym", DataType::Utf8, false),
        Field::new("rate", DataType::Int64, true),
        Field::new("rts", ts_type(), false),
    ]))
}

fn op(kind: LookupKind) -> Box<dyn Operator> {
    let (s, t) = (orders_schema(), rates_schema());
    let fields: Vec<Field> = s
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(
            t.fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true)),
        )
        .collect();
    asof_join_operator(Arc::new(AsOfJoinSpec {
        kind,
        table: "rates".into(),
        stream_schema: s,
        table_schema: t,
        stream_keys: vec![1],
        table_keys: vec![0],
        stream_time: 2,
        table_time: 2,
        table_first: false,
        output_schema: Arc::new(Schema::new(fields)),
        stream_out: 3,
        condition: "o.sym = r.rsym".into(),
    }))
    .expect("valid spec")
}

fn orders(rows: &[(i64, Option<&str>, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            )),
        ],
    )
    .expect("batch")
}

fn rates(rows: &[(&str, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        rates_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            )),
        ],
    )
    .expect("batch")
}

/// (id, rate) of the joined rows, in emitted order.
fn ids_and_rates(out: &[RecordBatch]) -> Vec<(i64, Option<i64>)> {
    let mut v = Vec::new();
    for b in out {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id");
        let rate = b
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("rate");
        for r in 0..b.num_rows() {
            v.push((
                ids.value(r),
                (!arrow::array::Array::is_null(rate, r)).then(|| rate.value(r)),
            ));
        }
    }
    v
}

#[test]
fn each_row_joins_the_version_current_at_its_time() {
    let mut j = op(LookupKind::Left);
    let mut out = Vec::new();
    // Version 1 at 10, version 2 at 20, version 3 at 30 (arriving after the orders).
    j.process_side(1, &rates(&[("X", 1, 10), ("X", 2, 20)]), &mut out)
        .expect("rates");
    j.process_side(
        0,
        &orders(&[
            (1, Some("X"), 5),
            (2, Some("X"), 10),
            (3, Some("X"), 25),
            (4, Some("X"), 30),
        ]),
        &mut out,
    )
    .expect("orders");
    assert!(
        out.is_empty(),
        "nothing before the watermark passes the orders"
    );
    j.process_side(1, &rates(&[("X", 3, 30)]), &mut out)
        .expect("rates");
    j.process_watermark(26, &mut out).expect("wm");
    // Order 1 precedes every version (NULL); order 2 meets version 1 at the same time;
    // order 3 joins version 2.
    assert_eq!(
        ids_and_rates(&out),
        vec![(1, None), (2, Some(1)), (3, Some(2))]
    );
    out.clear();
    j.finish(&mut out).expect("finish");
    assert_eq!(ids_and_rates(&out), vec![(4, Some(3))]);
}

#[test]
fn inner_drops_rows_without_a_version_and_null_keys_join_nothing() {
    let mut j = op(LookupKind::Inner);
    let mut out = Vec::new();
    j.process_side(1, &rates(&[("X", 1, 10)]), &mut out)
        .expect("rates");
    j.process_side(
        0,
        &orders(&[
            (1, Some("X"), 5),
            (2, None, 12),
            (3, Some("Y"), 12),
            (4, Some("X"), 12),
        ]),
        &mut out,
    )
    .expect("orders");
    j.finish(&mut out).expect("finish");
    assert_eq!(ids_and_rates(&out), vec![(4, Some(1))]);
    let mut left = op(LookupKind::Left);
    let mut out = Vec::new();
    left.process_side(0, &orders(&[(2, None, 12)]), &mut out)
        .expect("orders");
    left.finish(&mut out).expect("finish");
    assert_eq!(
        pretty_format_batches(&out).expect("pretty").to_string(),
        "+----+-----+-------------------------+------+------+-----+\n\
         | id | sym | ts                      | rsym | rate | rts |\n\
         +----+-----+-------------------------+------+------+-----+\n\
         | 2  |     | 1970-01-01T00:00:00.012 |      |      |     |\n\
         +----+-----+-------------------------+------+------+-----+"
    );
}

#[test]
fn versions_no_row_can_join_are_dropped() {
    let mut j = op(LookupKind::Left);
    let mut out = Vec::new();
    for t in 0..1000 {
        j.process_side(1, &rates(&[("X", t, t * 10), ("Y", t, t * 10)]), &mut out)
            .expect("rates");
        j.process_watermark(t * 10, &mut out).expect("wm");
    }
    // Per key: the version current at the watermark and the one before it (a key's old
    // versions go when it gets a new one, or when all keys hold twice their count): not the
    // 1,000 each key had.
    assert_eq!(j.state_size().rows, 4);
    j.process_side(
        0,
        &orders(&[(1, Some("X"), 9_990), (2, Some("Y"), 9_995)]),
        &mut out,
    )
    .expect("orders");
    j.finish(&mut out).expect("finish");
    assert_eq!(ids_and_rates(&out), vec![(1, Some(999)), (2, Some(999))]);
}

#[test]
fn the_answer_does_not_depend_on_how_rows_are_batched() {
    let table: Vec<(&str, i64, i64)> = (0..40)
        .map(|i| (["A", "B", "C"][i % 3], i as i64, (i as i64) * 7))
        .collect();
    let stream: Vec<(i64, Option<&str>, i64)> = (0..60)
        .map(|i| (i as i64, Some(["A", "B", "C", "D"][i % 4]), (i as i64) * 5))
        .collect();
    let run = |chunk: usize| {
        let mut j = op(LookupKind::Left);
        let mut out = Vec::new();
        let mut wm = i64::MIN;
        for (t, s) in table.chunks(chunk).zip(stream.chunks(chunk)) {
            j.process_side(1, &rates(t), &mut out).expect("rates");
            j.process_side(0, &orders(s), &mut out).expect("orders");
            wm = wm.max(
                s.last()
                    .map_or(wm, |r| r.2 - 20)
                    .min(t.last().map_or(wm, |r| r.2 - 20)),
            );
            j.process_watermark(wm, &mut out).expect("wm");
        }
        for s in stream.chunks(chunk).skip(table.len().div_ceil(chunk)) {
            j.process_side(0, &orders(s), &mut out).expect("orders");
        }
        j.finish(&mut out).expect("finish");
        let mut rows = ids_and_rates(&out);
        rows.sort();
        rows
    };
    let one = run(1);
    assert_eq!(one.len(), 60);
    // Order 59 (C at 295) joins C's last version (i = 38 at 266).
    assert_eq!(one[59], (59, None));
    assert_eq!(one[58], (58, Some(38)));
    assert_eq!(run(7), one);
    assert_eq!(run(64), one);
}
