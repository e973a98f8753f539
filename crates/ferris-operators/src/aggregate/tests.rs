//! Tests of the streaming aggregation operators (whole outputs compared as pretty-printed
//! tables).

use super::*;
use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Int64Type, Schema, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion_expr::AggregateUDF;
use datafusion_functions_aggregate::average::avg_udaf;
use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
use datafusion_functions_aggregate::median::median_udaf;
use datafusion_functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion_functions_aggregate::stddev::stddev_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::expressions::col;
use ferris_runtime::StateSize;
use std::collections::BTreeMap;

const TS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// Input schema `k Utf8, v <value type>, ts Timestamp(ms)`.
fn schema_with(value: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", value, true),
        Field::new("ts", TS, false),
    ]))
}

fn int_schema() -> SchemaRef {
    schema_with(DataType::Int64)
}

/// A batch of `(key, value, ts)` rows with an Int64 value.
fn rows(rows: &[(Option<&str>, Option<i64>, i64)]) -> RecordBatch {
    let v: ArrayRef = Arc::new(rows.iter().map(|r| r.1).collect::<Int64Array>());
    batch_of(&int_schema(), rows.iter().map(|r| (r.0, r.2)).collect(), v)
}

fn batch_of(schema: &SchemaRef, keys_ts: Vec<(Option<&str>, i64)>, v: ArrayRef) -> RecordBatch {
    let k: ArrayRef = Arc::new(keys_ts.iter().map(|r| r.0).collect::<StringArray>());
    let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(
        keys_ts.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema.clone(), vec![k, v, ts]).unwrap()
}

/// One aggregate over column `v`.
struct Agg {
    fun: Arc<AggregateUDF>,
    name: &'static str,
    distinct: bool,
}

fn agg(fun: Arc<AggregateUDF>, name: &'static str) -> Agg {
    Agg {
        fun,
        name,
        distinct: false,
    }
}

fn spec(
    schema: &SchemaRef,
    keys: usize,
    aggs: &[Agg],
    window: WindowKind,
    emit: EmitMode,
) -> AggregateSpec {
    let mut fields: Vec<Field> = schema.fields()[..keys]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if window != WindowKind::Global {
        fields.push(Field::new("_window_start", TS, false));
        fields.push(Field::new("_window_end", TS, false));
    }
    let v = schema.index_of("v").unwrap();
    let aggregates = aggs
        .iter()
        .map(|a| {
            let expr = AggregateExprBuilder::new(a.fun.clone(), vec![col("v", schema).unwrap()])
                .schema(schema.clone())
                .alias(a.name)
                .with_distinct(a.distinct)
                .build()
                .unwrap();
            fields.push(expr.field().as_ref().clone());
            AggregateInput {
                expr: Arc::new(expr),
                columns: v..v + 1,
            }
        })
        .collect();
    AggregateSpec {
        key_count: keys,
        aggregates,
        time_column: Some(schema.index_of("ts").unwrap()),
        window,
        emit,
        output_schema: Arc::new(Schema::new(fields)),
        ttl_ms: None,
        retract_column: None,
        grace_ms: 0,
    }
}

fn operator(aggs: &[Agg], window: WindowKind, emit: EmitMode) -> Box<dyn Operator> {
    aggregate_operator(Arc::new(spec(&int_schema(), 1, aggs, window, emit))).unwrap()
}

fn count_sum() -> Vec<Agg> {
    vec![agg(count_udaf(), "cnt"), agg(sum_udaf(), "total")]
}

/// (key, value, event time) of an input row.
type InputRow = (Option<&'static str>, Option<i64>, i64);

/// One input event.
enum Step {
    Batch(RecordBatch),
    Watermark(i64),
    Finish,
}

/// The pretty-printed output of every step ("" when it emitted nothing).
fn run(op: &mut dyn Operator, steps: Vec<Step>) -> Vec<String> {
    steps
        .into_iter()
        .map(|step| {
            let mut out = Vec::new();
            match step {
                Step::Batch(b) => op.process_batch(&b, &mut out).unwrap(),
                Step::Watermark(w) => op.process_watermark(w, &mut out).unwrap(),
                Step::Finish => op.finish(&mut out).unwrap(),
            }
            for b in &out {
                assert_eq!(b.schema(), op.schema());
            }
            pretty(&out)
        })
        .collect()
}

fn pretty(batches: &[RecordBatch]) -> String {
    let batches: Vec<_> = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .cloned()
        .collect();
    if batches.is_empty() {
        return String::new();
    }
    pretty_format_batches(&batches).unwrap().to_string()
}

fn table(lines: &[&str]) -> String {
    lines.join("\n")
}

#[test]
fn describes_itself() {
    let op = operator(
        &[agg(avg_udaf(), "avg(trades.price)")],
        WindowKind::Tumbling { size_ms: 60000 },
        EmitMode::Final,
    );
    assert_eq!(op.name(), "aggregate");
    assert!(!op.is_stateless());
    assert_eq!(
        op.describe(),
        "Aggregate: TUMBLING(60000ms) EMIT FINAL keys=1 aggs=[avg(trades.price)]"
    );
    let op = operator(
        &count_sum(),
        WindowKind::Session { gap_ms: 5 },
        EmitMode::Changes,
    );
    assert_eq!(op.name(), "session_aggregate");
    assert_eq!(
        op.describe(),
        "Aggregate: SESSION(5ms) EMIT CHANGES keys=1 aggs=[cnt, total]"
    );
}

#[test]
fn rejects_bad_specs() {
    let s = spec(
        &int_schema(),
        1,
        &count_sum(),
        WindowKind::Tumbling { size_ms: 0 },
        EmitMode::Final,
    );
    assert!(aggregate_operator(Arc::new(s)).is_err());
    let mut s = spec(
        &int_schema(),
        1,
        &count_sum(),
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    s.time_column = None;
    assert!(aggregate_operator(Arc::new(s)).is_err());
}

#[test]
fn tumbling_final_with_null_key() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[
                (Some("a"), Some(1), 1),
                (None, Some(2), 3),
                (Some("a"), Some(3), 12),
                (Some("b"), Some(4), 5),
                (None, Some(5), 7),
                (Some("a"), None, 9),
            ])),
            Step::Watermark(10),
            Step::Watermark(25),
            Step::Finish,
        ],
    );
    assert_eq!(out[0], "");
    assert_eq!(
        out[1],
        table(&[
            "+---+---------------------+-------------------------+-----+-------+",
            "| k | _window_start       | _window_end             | cnt | total |",
            "+---+---------------------+-------------------------+-----+-------+",
            "|   | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 2   | 7     |",
            "| a | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 1   | 1     |",
            "| b | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 1   | 4     |",
            "+---+---------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(
        out[2],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1970-01-01T00:00:00.010 | 1970-01-01T00:00:00.020 | 1   | 3     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(out[3], "");
    assert_eq!(op.state_size(), StateSize::default());
}

#[test]
fn two_key_columns() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("k2", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", TS, false),
    ]));
    let s = spec(
        &schema,
        2,
        &[agg(sum_udaf(), "total")],
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("a"),
                None,
                Some("a"),
            ])),
            Arc::new(Int64Array::from(vec![Some(1), None, None, Some(1)])),
            Arc::new(Int64Array::from(vec![10, 20, 30, 40])),
            Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3, 4])),
        ],
    )
    .unwrap();
    let out = run(op.as_mut(), vec![Step::Batch(b), Step::Finish]);
    assert_eq!(
        out[1],
        table(&[
            "+---+----+---------------------+-------------------------+-------+",
            "| k | k2 | _window_start       | _window_end             | total |",
            "+---+----+---------------------+-------------------------+-------+",
            "|   |    | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 30    |",
            "| a |    | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 20    |",
            "| a | 1  | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 50    |",
            "+---+----+---------------------+-------------------------+-------+",
        ])
    );
}

#[test]
fn tumbling_negative_times_align_to_epoch() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[
                (Some("a"), Some(1), -1),
                (Some("a"), Some(2), -10),
                (Some("a"), Some(4), 0),
            ])),
            Step::Finish,
        ],
    );
    assert_eq!(
        out[1],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1969-12-31T23:59:59.990 | 1970-01-01T00:00:00     | 2   | 3     |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 1   | 4     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
}

#[test]
fn decimal_sum_and_avg_are_exact() {
    let schema = schema_with(DataType::Decimal128(18, 4));
    let s = spec(
        &schema,
        1,
        &[agg(sum_udaf(), "total"), agg(avg_udaf(), "mean")],
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let v: ArrayRef = Arc::new(
        Decimal128Array::from(vec![Some(12345), Some(20001), None, Some(33333)])
            .with_precision_and_scale(18, 4)
            .unwrap(),
    );
    let b = batch_of(
        &schema,
        vec![
            (Some("a"), 1),
            (Some("a"), 2),
            (Some("a"), 3),
            (Some("a"), 4),
        ],
        v,
    );
    let out = run(op.as_mut(), vec![Step::Batch(b), Step::Watermark(10)]);
    let schema = op.schema();
    assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(28, 4));
    assert_eq!(schema.field(4).data_type(), &DataType::Decimal128(22, 8));
    assert_eq!(
        out[1],
        table(&[
            "+---+---------------------+-------------------------+--------+------------+",
            "| k | _window_start       | _window_end             | total  | mean       |",
            "+---+---------------------+-------------------------+--------+------------+",
            "| a | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 6.5679 | 2.18930000 |",
            "+---+---------------------+-------------------------+--------+------------+",
        ])
    );
}

#[test]
fn distinct_median_stddev() {
    // STDDEV takes Float64 (the planner coerces); MEDIAN and COUNT(DISTINCT) work on it too.
    let schema = schema_with(DataType::Float64);
    let s = spec(
        &schema,
        1,
        &[
            Agg {
                fun: count_udaf(),
                name: "distinct_v",
                distinct: true,
            },
            agg(median_udaf(), "med"),
            agg(stddev_udaf(), "sd"),
        ],
        WindowKind::Tumbling { size_ms: 100 },
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let batch = |range: std::ops::Range<usize>| {
        let v: ArrayRef = Arc::new(Float64Array::from(values[range.clone()].to_vec()));
        batch_of(
            &schema,
            range.map(|i| (Some("a"), 10 * i as i64)).collect(),
            v,
        )
    };
    // Two batches, so that the accumulators see two updates.
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(batch(0..3)),
            Step::Batch(batch(3..8)),
            Step::Watermark(100),
        ],
    );
    assert_eq!(
        out[2],
        table(&[
            "+---+---------------------+-------------------------+------------+-----+-------------------+",
            "| k | _window_start       | _window_end             | distinct_v | med | sd                |",
            "+---+---------------------+-------------------------+------------+-----+-------------------+",
            "| a | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.100 | 5          | 4.5 | 2.138089935299395 |",
            "+---+---------------------+-------------------------+------------+-----+-------------------+",
        ])
    );
}

#[test]
fn out_of_order_equal_timestamps_single_row_and_empty_windows() {
    let mut op = operator(
        &[
            agg(count_udaf(), "cnt"),
            agg(min_udaf(), "lo"),
            agg(max_udaf(), "hi"),
            agg(first_value_udaf(), "first"),
            agg(last_value_udaf(), "last"),
        ],
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Final,
    );
    let out = run(
        op.as_mut(),
        vec![
            // Out of order within [0, 10), two rows at ts 5.
            Step::Batch(rows(&[(Some("a"), Some(3), 8), (Some("a"), Some(1), 5)])),
            Step::Batch(rows(&[(Some("a"), Some(7), 5), (Some("a"), Some(2), 1)])),
            // A single row in [40, 50); [10, 40) stay empty.
            Step::Batch(rows(&[(Some("a"), Some(9), 42)])),
            Step::Watermark(60),
        ],
    );
    assert_eq!(
        out[3],
        table(&[
            "+---+-------------------------+-------------------------+-----+----+----+-------+------+",
            "| k | _window_start           | _window_end             | cnt | lo | hi | first | last |",
            "+---+-------------------------+-------------------------+-----+----+----+-------+------+",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 4   | 1  | 7  | 3     | 2    |",
            "| a | 1970-01-01T00:00:00.040 | 1970-01-01T00:00:00.050 | 1   | 9  | 9  | 9     | 9    |",
            "+---+-------------------------+-------------------------+-----+----+----+-------+------+",
        ])
    );
    assert_eq!(op.state_size(), StateSize::default());
}

#[test]
fn tumbling_changes_after_each_batch() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Changes,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[(Some("b"), Some(1), 1), (Some("a"), Some(2), 2)])),
            Step::Batch(rows(&[(Some("a"), Some(5), 3), (Some("a"), Some(6), 11)])),
            Step::Watermark(10),
        ],
    );
    assert_eq!(
        out[0],
        table(&[
            "+---+---------------------+-------------------------+-----+-------+",
            "| k | _window_start       | _window_end             | cnt | total |",
            "+---+---------------------+-------------------------+-----+-------+",
            "| a | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 1   | 2     |",
            "| b | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.010 | 1   | 1     |",
            "+---+---------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(
        out[1],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 2   | 7     |",
            "| a | 1970-01-01T00:00:00.010 | 1970-01-01T00:00:00.020 | 1   | 6     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(out[2], "");
    assert_eq!(op.state_size().rows, 1);
    assert_eq!(run(op.as_mut(), vec![Step::Finish]), [""]);
    assert_eq!(op.state_size(), StateSize::default());
}

#[test]
fn global_final_and_changes() {
    let input = || {
        vec![
            Step::Batch(rows(&[(Some("b"), Some(1), 1), (Some("a"), Some(2), 2)])),
            Step::Watermark(1_000_000),
            Step::Batch(rows(&[(Some("a"), Some(5), 3), (None, Some(6), 4)])),
            Step::Finish,
        ]
    };
    let mut op = operator(&count_sum(), WindowKind::Global, EmitMode::Final);
    let out = run(op.as_mut(), input());
    assert_eq!(out[..3], ["", "", ""]);
    assert_eq!(
        out[3],
        table(&[
            "+---+-----+-------+",
            "| k | cnt | total |",
            "+---+-----+-------+",
            "|   | 1   | 6     |",
            "| a | 2   | 7     |",
            "| b | 1   | 1     |",
            "+---+-----+-------+",
        ])
    );
    assert_eq!(op.state_size(), StateSize::default());

    let mut op = operator(&count_sum(), WindowKind::Global, EmitMode::Changes);
    let out = run(op.as_mut(), input());
    assert_eq!(
        out[0],
        table(&[
            "+---+-----+-------+",
            "| k | cnt | total |",
            "+---+-----+-------+",
            "| a | 1   | 2     |",
            "| b | 1   | 1     |",
            "+---+-----+-------+",
        ])
    );
    assert_eq!(out[1], "");
    assert_eq!(
        out[2],
        table(&[
            "+---+-----+-------+",
            "| k | cnt | total |",
            "+---+-----+-------+",
            "|   | 1   | 6     |",
            "| a | 2   | 7     |",
            "+---+-----+-------+",
        ])
    );
    assert_eq!(out[3], "");
}

#[test]
fn global_without_keys() {
    let s = spec(
        &int_schema(),
        0,
        &count_sum(),
        WindowKind::Global,
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[(Some("b"), Some(1), 1), (Some("a"), Some(2), 2)])),
            Step::Batch(rows(&[(None, Some(3), 1)])),
            Step::Finish,
        ],
    );
    assert_eq!(
        out[2],
        table(&[
            "+-----+-------+",
            "| cnt | total |",
            "+-----+-------+",
            "| 3   | 6     |",
            "+-----+-------+",
        ])
    );
    // No input: no row.
    let s = spec(
        &int_schema(),
        0,
        &count_sum(),
        WindowKind::Global,
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    assert_eq!(run(op.as_mut(), vec![Step::Finish]), [""]);
}

/// Deterministic pseudo-random input: rows with slightly out-of-order times, in batches,
/// each followed by a watermark (max time seen - 6). Late rows are left out.
fn random_steps(n: usize, batch: usize, seed: u64) -> (Vec<InputRow>, Vec<Step>) {
    let mut state = seed;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let keys = [Some("a"), Some("b"), None];
    let mut all = Vec::new();
    let mut steps = Vec::new();
    let mut max_ts = i64::MIN;
    let mut wm = i64::MIN;
    let mut current = Vec::new();
    for i in 0..n {
        let ts = i as i64 / 2 - 20 + next(6) as i64;
        if ts < wm {
            continue;
        }
        let v = if next(10) == 0 {
            None
        } else {
            Some(next(100) as i64 - 30)
        };
        let row = (keys[next(3) as usize], v, ts);
        all.push(row);
        current.push(row);
        max_ts = max_ts.max(ts);
        if current.len() == batch {
            steps.push(Step::Batch(rows(&current)));
            current.clear();
            wm = max_ts - 6;
            steps.push(Step::Watermark(wm));
        }
    }
    if !current.is_empty() {
        steps.push(Step::Batch(rows(&current)));
    }
    steps.push(Step::Finish);
    (all, steps)
}

type WindowRow = (i64, i64, Option<String>);
type Values = (i64, Option<i64>, Option<i64>, Option<i64>);

/// count, sum, min, max per (end, start, key) by brute force.
fn brute_sliding(
    input: &[(Option<&str>, Option<i64>, i64)],
    size: i64,
    advance: i64,
) -> BTreeMap<WindowRow, Values> {
    let mut out: BTreeMap<WindowRow, Values> = BTreeMap::new();
    let lo = input.iter().map(|r| r.2).min().unwrap() - size - advance;
    let hi = input.iter().map(|r| r.2).max().unwrap() + size + advance;
    let mut s = lo.div_euclid(advance) * advance;
    while s <= hi {
        for r in input.iter().filter(|r| r.2 >= s && r.2 < s + size) {
            let e = out
                .entry((s + size, s, r.0.map(str::to_string)))
                .or_insert((0, None, None, None));
            if let Some(v) = r.1 {
                e.0 += 1;
                e.1 = Some(e.1.unwrap_or(0) + v);
                e.2 = Some(e.2.map_or(v, |m: i64| m.min(v)));
                e.3 = Some(e.3.map_or(v, |m: i64| m.max(v)));
            }
        }
        s += advance;
    }
    out
}

/// Runs `steps`, checking that every output row is emitted by the first watermark at or
/// after its end (or at finish), and collects the rows.
/// The windows `op` emits, checking that each comes out at the first watermark that closes
/// it: at or past its end, or (`past_end`, sessions, which a row at their end still joins)
/// past it.
fn collect_windows(
    op: &mut dyn Operator,
    steps: Vec<Step>,
    past_end: bool,
) -> BTreeMap<WindowRow, Values> {
    let mut result = BTreeMap::new();
    let mut prev_wm = i64::MIN;
    for step in steps {
        let mut out = Vec::new();
        let wm = match step {
            Step::Batch(b) => {
                op.process_batch(&b, &mut out).unwrap();
                None
            }
            Step::Watermark(w) => {
                op.process_watermark(w, &mut out).unwrap();
                Some(w)
            }
            Step::Finish => {
                op.finish(&mut out).unwrap();
                Some(i64::MAX)
            }
        };
        for b in &out {
            let k = b.column(0).as_string::<i32>();
            let start = b.column(1).as_primitive::<TimestampMillisecondType>();
            let end = b.column(2).as_primitive::<TimestampMillisecondType>();
            let num = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
            let (cnt, sum, min, max) = (num(3), num(4), num(5), num(6));
            for i in 0..b.num_rows() {
                let wm = wm.expect("EMIT FINAL emits nothing on a batch");
                let e = end.value(i);
                if past_end {
                    assert!(e < wm && e >= prev_wm, "session end {e}, watermark {wm}");
                } else {
                    assert!(e <= wm && e > prev_wm, "window end {e}, watermark {wm}");
                }
                let opt = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
                let key = (
                    end.value(i),
                    start.value(i),
                    k.is_valid(i).then(|| k.value(i).to_string()),
                );
                let prev = result.insert(key, (cnt.value(i), opt(&sum), opt(&min), opt(&max)));
                assert!(prev.is_none(), "window emitted twice");
            }
        }
        if let Some(w) = wm {
            prev_wm = prev_wm.max(w);
        }
    }
    assert_eq!(op.state_size(), StateSize::default());
    result
}

fn sliding_aggs() -> Vec<Agg> {
    vec![
        agg(count_udaf(), "cnt"),
        agg(sum_udaf(), "total"),
        agg(min_udaf(), "lo"),
        agg(max_udaf(), "hi"),
    ]
}

#[test]
fn sliding_final_matches_brute_force() {
    for (size, advance) in [(10, 5), (10, 4), (4, 10), (7, 7), (30, 5)] {
        for batch in [1, 7, 50] {
            let (input, steps) = random_steps(400, batch, size as u64 * 31 + advance as u64);
            let mut op = operator(
                &sliding_aggs(),
                WindowKind::Sliding {
                    size_ms: size,
                    advance_ms: advance,
                },
                EmitMode::Final,
            );
            let got = collect_windows(op.as_mut(), steps, false);
            let want = brute_sliding(&input, size, advance);
            assert_eq!(got, want, "SLIDING({size}, {advance}) batch {batch}");
        }
    }
}

#[test]
fn sliding_final_frees_panes_as_windows_close() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Sliding {
            size_ms: 10,
            advance_ms: 5,
        },
        EmitMode::Final,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[
                (Some("a"), Some(1), 1),
                (Some("a"), Some(2), 7),
                (Some("b"), Some(3), 12),
            ])),
            Step::Watermark(10),
        ],
    );
    assert_eq!(
        out[1],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1969-12-31T23:59:59.995 | 1970-01-01T00:00:00.005 | 1   | 1     |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 2   | 3     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    // Pane [0, 5) is gone; [5, 10) (frozen) and [10, 15) (live) remain.
    assert_eq!(op.state_size().rows, 2);
    let mut out = Vec::new();
    op.process_watermark(100, &mut out).unwrap();
    assert_eq!(out[0].num_rows(), 3);
    assert_eq!(op.state_size(), StateSize::default());
}

#[test]
fn sliding_changes() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Sliding {
            size_ms: 10,
            advance_ms: 5,
        },
        EmitMode::Changes,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[(Some("a"), Some(1), 1), (Some("a"), Some(2), 7)])),
            Step::Batch(rows(&[(Some("a"), Some(4), 8)])),
            Step::Watermark(10),
        ],
    );
    assert_eq!(
        out[0],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1969-12-31T23:59:59.995 | 1970-01-01T00:00:00.005 | 1   | 1     |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 2   | 3     |",
            "| a | 1970-01-01T00:00:00.005 | 1970-01-01T00:00:00.015 | 1   | 2     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(
        out[1],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 3   | 7     |",
            "| a | 1970-01-01T00:00:00.005 | 1970-01-01T00:00:00.015 | 2   | 6     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(out[2], "");
    assert_eq!(op.state_size().rows, 1);
    assert_eq!(run(op.as_mut(), vec![Step::Finish]), [""]);
    assert_eq!(op.state_size(), StateSize::default());
}

#[test]
fn sliding_changes_matches_brute_force_at_the_end() {
    let (input, steps) = random_steps(300, 9, 7);
    let mut op = operator(
        &sliding_aggs(),
        WindowKind::Sliding {
            size_ms: 10,
            advance_ms: 4,
        },
        EmitMode::Changes,
    );
    // The last row per window is its final value.
    let mut last: BTreeMap<WindowRow, Values> = BTreeMap::new();
    for step in steps {
        let mut out = Vec::new();
        match step {
            Step::Batch(b) => op.process_batch(&b, &mut out).unwrap(),
            Step::Watermark(w) => op.process_watermark(w, &mut out).unwrap(),
            Step::Finish => op.finish(&mut out).unwrap(),
        }
        for b in &out {
            let k = b.column(0).as_string::<i32>();
            let start = b.column(1).as_primitive::<TimestampMillisecondType>();
            let end = b.column(2).as_primitive::<TimestampMillisecondType>();
            let num = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
            let (cnt, sum, min, max) = (num(3), num(4), num(5), num(6));
            for i in 0..b.num_rows() {
                let opt = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
                let key = (
                    end.value(i),
                    start.value(i),
                    k.is_valid(i).then(|| k.value(i).to_string()),
                );
                last.insert(key, (cnt.value(i), opt(&sum), opt(&min), opt(&max)));
            }
        }
    }
    assert_eq!(last, brute_sliding(&input, 10, 4));
    assert_eq!(op.state_size(), StateSize::default());
}

fn session_aggs() -> Vec<Agg> {
    vec![
        agg(count_udaf(), "cnt"),
        agg(sum_udaf(), "total"),
        agg(first_value_udaf(), "first"),
        agg(last_value_udaf(), "last"),
    ]
}

#[test]
fn session_merge_across_batches() {
    let mut op = operator(
        &session_aggs(),
        WindowKind::Session { gap_ms: 10 },
        EmitMode::Final,
    );
    let out = run(
        op.as_mut(),
        vec![
            // a: sessions [0, 10] and [15, 25]; b: [3, 13].
            Step::Batch(rows(&[
                (Some("a"), Some(1), 0),
                (Some("a"), Some(2), 15),
                (Some("b"), Some(5), 3),
            ])),
            // a at 8 bridges both: [0, 25]; a at 40 opens [40, 50].
            Step::Batch(rows(&[(Some("a"), Some(40), 40), (Some("a"), Some(4), 8)])),
            // Past 25: both close (at 25 a row at 25 could still join a's session).
            Step::Watermark(26),
            Step::Finish,
        ],
    );
    assert_eq!(op.state_size(), StateSize::default());
    assert_eq!(out[..2], ["", ""]);
    assert_eq!(
        out[2],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
            "| k | _window_start           | _window_end             | cnt | total | first | last |",
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
            "| b | 1970-01-01T00:00:00.003 | 1970-01-01T00:00:00.013 | 1   | 5     | 5     | 5    |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.025 | 3   | 7     | 1     | 4    |",
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
        ])
    );
    assert_eq!(
        out[3],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
            "| k | _window_start           | _window_end             | cnt | total | first | last |",
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
            "| a | 1970-01-01T00:00:00.040 | 1970-01-01T00:00:00.050 | 1   | 40    | 40    | 40   |",
            "+---+-------------------------+-------------------------+-----+-------+-------+------+",
        ])
    );
}

/// The session state's size is kept up to date as sessions open, merge, grow and close
/// (it is read after every batch, so it is not summed over every key then).
#[test]
fn session_state_bytes_are_tracked_exactly() {
    let spec = Arc::new(spec(
        &int_schema(),
        1,
        &session_aggs(),
        WindowKind::Session { gap_ms: 10 },
        EmitMode::Final,
    ));
    let mut op = super::SessionAggregate::new(spec, String::new()).unwrap();
    let mut out = Vec::new();
    let batches = [
        rows(&[
            (Some("a"), Some(1), 0),
            (Some("a"), Some(2), 15),
            (Some("b"), Some(5), 3),
        ]),
        rows(&[(Some("a"), Some(40), 40), (Some("a"), Some(4), 8)]),
        rows(&[(Some("b"), Some(6), 9), (Some("c"), Some(7), 50)]),
    ];
    for b in &batches {
        op.process_batch(b, &mut out).unwrap();
        assert_eq!(op.bytes_tracked(), op.bytes_recomputed());
        assert!(op.bytes_tracked() > 0);
    }
    op.process_watermark(30, &mut out).unwrap();
    assert_eq!(op.bytes_tracked(), op.bytes_recomputed());
    op.finish(&mut out).unwrap();
    assert_eq!(op.bytes_tracked(), 0);
}

/// The same for unwindowed and tumbling aggregation (with a TTL forgetting groups).
#[test]
fn window_state_bytes_are_tracked_exactly() {
    for (window, ttl) in [
        (WindowKind::Global, None),
        (WindowKind::Global, Some(10)),
        (WindowKind::Tumbling { size_ms: 10 }, None),
    ] {
        let mut spec = spec(&int_schema(), 1, &session_aggs(), window, EmitMode::Changes);
        spec.ttl_ms = ttl;
        let mut op = super::WindowAggregate::new(Arc::new(spec), String::new()).unwrap();
        let mut out = Vec::new();
        let batches = [
            rows(&[(Some("a"), Some(1), 0), (Some("b"), Some(5), 3)]),
            rows(&[(Some("a"), Some(40), 40), (Some("a"), Some(4), 8)]),
            rows(&[(Some("b"), Some(6), 45), (Some("c"), Some(7), 50)]),
        ];
        for (i, b) in batches.iter().enumerate() {
            op.process_batch(b, &mut out).unwrap();
            assert_eq!(op.bytes_tracked(), op.bytes_recomputed(), "{window:?}");
            op.process_watermark(i as i64 * 20, &mut out).unwrap();
            assert_eq!(op.bytes_tracked(), op.bytes_recomputed(), "{window:?}");
        }
        op.finish(&mut out).unwrap();
        assert_eq!(op.bytes_tracked(), 0);
    }
}

#[test]
fn session_changes() {
    let mut op = operator(
        &count_sum(),
        WindowKind::Session { gap_ms: 10 },
        EmitMode::Changes,
    );
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(rows(&[(Some("a"), Some(1), 0), (Some("a"), Some(2), 15)])),
            Step::Batch(rows(&[(Some("a"), Some(4), 8), (Some("b"), Some(5), 9)])),
            Step::Watermark(30),
            Step::Finish,
        ],
    );
    assert_eq!(
        out[0],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 1   | 1     |",
            "| a | 1970-01-01T00:00:00.015 | 1970-01-01T00:00:00.025 | 1   | 2     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(
        out[1],
        table(&[
            "+---+-------------------------+-------------------------+-----+-------+",
            "| k | _window_start           | _window_end             | cnt | total |",
            "+---+-------------------------+-------------------------+-----+-------+",
            "| b | 1970-01-01T00:00:00.009 | 1970-01-01T00:00:00.019 | 1   | 5     |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.025 | 3   | 7     |",
            "+---+-------------------------+-------------------------+-----+-------+",
        ])
    );
    assert_eq!(out[2..], ["", ""]);
    assert_eq!(op.state_size(), StateSize::default());
}

/// Feeds `input` once as one batch and once one row per batch (both then finish) and
/// returns both outputs.
fn one_batch_vs_row_by_row(
    aggs: fn() -> Vec<Agg>,
    window: WindowKind,
    input: &[(Option<&str>, Option<i64>, i64)],
) -> (String, String) {
    let mut op = operator(&aggs(), window, EmitMode::Final);
    let whole = run(op.as_mut(), vec![Step::Batch(rows(input)), Step::Finish]).concat();
    let mut op = operator(&aggs(), window, EmitMode::Final);
    let mut out = Vec::new();
    for r in input {
        op.process_batch(&rows(&[*r]), &mut out).unwrap();
    }
    op.finish(&mut out).unwrap();
    let schema = op.schema();
    let merged = concat_batches(&schema, &out).unwrap();
    (whole, pretty(&[merged]))
}

#[test]
fn one_batch_equals_row_by_row() {
    let (input, _) = random_steps(200, 1000, 42);
    let windows = [
        WindowKind::Tumbling { size_ms: 10 },
        WindowKind::Sliding {
            size_ms: 12,
            advance_ms: 4,
        },
        WindowKind::Session { gap_ms: 3 },
        WindowKind::Global,
    ];
    for window in windows {
        let (whole, row_by_row) = one_batch_vs_row_by_row(session_aggs, window, &input);
        assert!(whole.lines().count() >= 7, "{window:?}");
        assert_eq!(whole, row_by_row, "{window:?}");
    }
}

#[test]
fn float_results_and_errors() {
    let schema = schema_with(DataType::Float64);
    let s = spec(
        &schema,
        1,
        &[agg(avg_udaf(), "mean")],
        WindowKind::Tumbling { size_ms: 10 },
        EmitMode::Changes,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let v: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 2.0]));
    let b = batch_of(&schema, vec![(Some("x"), 1), (Some("x"), 2)], v);
    let mut out = Vec::new();
    op.process_batch(&b, &mut out).unwrap();
    assert_eq!(
        out[0]
            .column(3)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0),
        1.75
    );
    // A time column of the wrong type is an error, not a panic.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
            Field::new("ts", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    assert!(op.process_batch(&bad, &mut out).is_err());
}

/// count, sum, min, max per session (end, start, key) by brute force.
fn brute_sessions(
    input: &[(Option<&str>, Option<i64>, i64)],
    gap: i64,
) -> BTreeMap<WindowRow, Values> {
    let mut per_key: BTreeMap<Option<String>, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    for r in input {
        per_key
            .entry(r.0.map(str::to_string))
            .or_default()
            .push((r.2, r.1));
    }
    let mut out = BTreeMap::new();
    for (key, mut rows) in per_key {
        rows.sort_by_key(|r| r.0);
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            // Inclusive: a row exactly one gap after the previous one joins its session.
            while j < rows.len() && rows[j].0 <= rows[j - 1].0 + gap {
                j += 1;
            }
            let values: Vec<i64> = rows[i..j].iter().filter_map(|r| r.1).collect();
            out.insert(
                (rows[j - 1].0 + gap, rows[i].0, key.clone()),
                (
                    values.len() as i64,
                    (!values.is_empty()).then(|| values.iter().sum()),
                    values.iter().min().copied(),
                    values.iter().max().copied(),
                ),
            );
            i = j;
        }
    }
    out
}

#[test]
fn session_final_matches_brute_force() {
    for gap in [1, 2, 3, 8] {
        for batch in [1, 5, 40] {
            let (input, steps) = random_steps(300, batch, gap as u64 * 7 + batch as u64);
            let mut op = operator(
                &sliding_aggs(),
                WindowKind::Session { gap_ms: gap },
                EmitMode::Final,
            );
            let got = collect_windows(op.as_mut(), steps, true);
            assert_eq!(got, brute_sessions(&input, gap), "gap {gap} batch {batch}");
        }
    }
}

#[test]
fn state_size_tracks_open_state() {
    let mut op = operator(
        &[agg(median_udaf(), "med")],
        WindowKind::Sliding {
            size_ms: 10,
            advance_ms: 5,
        },
        EmitMode::Final,
    );
    let mut out = Vec::new();
    op.process_batch(
        &rows(&[
            (Some("a"), Some(1), 1),
            (Some("b"), Some(2), 2),
            (Some("a"), Some(3), 6),
        ]),
        &mut out,
    )
    .unwrap();
    let live = op.state_size();
    assert_eq!(live.rows, 3);
    assert!(live.bytes > 0);
    op.process_watermark(5, &mut out).unwrap();
    assert_eq!(op.state_size().rows, 3); // pane [0, 5) frozen, still needed by [0, 10)
    op.process_watermark(10, &mut out).unwrap();
    assert_eq!(op.state_size().rows, 1);
    op.process_watermark(15, &mut out).unwrap();
    assert_eq!(op.state_size(), StateSize::default());
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
}

#[test]
fn list_states_merge_across_panes_and_sessions() {
    let schema = schema_with(DataType::Float64);
    let aggs = || {
        vec![
            Agg {
                fun: count_udaf(),
                name: "distinct_v",
                distinct: true,
            },
            agg(median_udaf(), "med"),
        ]
    };
    let batch = |rows: &[(f64, i64)]| {
        let v: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.0)));
        batch_of(&schema, rows.iter().map(|r| (Some("a"), r.1)).collect(), v)
    };
    let sliding = WindowKind::Sliding {
        size_ms: 10,
        advance_ms: 5,
    };
    let s = spec(&schema, 1, &aggs(), sliding, EmitMode::Final);
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(batch(&[(1.0, 1), (1.0, 2), (2.0, 6)])),
            Step::Batch(batch(&[(3.0, 7)])),
            Step::Finish,
        ],
    );
    assert_eq!(
        out[2],
        table(&[
            "+---+-------------------------+-------------------------+------------+-----+",
            "| k | _window_start           | _window_end             | distinct_v | med |",
            "+---+-------------------------+-------------------------+------------+-----+",
            "| a | 1969-12-31T23:59:59.995 | 1970-01-01T00:00:00.005 | 1          | 1.0 |",
            "| a | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.010 | 3          | 1.5 |",
            "| a | 1970-01-01T00:00:00.005 | 1970-01-01T00:00:00.015 | 2          | 2.5 |",
            "+---+-------------------------+-------------------------+------------+-----+",
        ])
    );
    let s = spec(
        &schema,
        1,
        &aggs(),
        WindowKind::Session { gap_ms: 10 },
        EmitMode::Final,
    );
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(batch(&[(1.0, 0), (1.0, 15)])),
            Step::Batch(batch(&[(2.0, 8)])),
            Step::Finish,
        ],
    );
    assert_eq!(
        out[2],
        table(&[
            "+---+---------------------+-------------------------+------------+-----+",
            "| k | _window_start       | _window_end             | distinct_v | med |",
            "+---+---------------------+-------------------------+------------+-----+",
            "| a | 1970-01-01T00:00:00 | 1970-01-01T00:00:00.025 | 2          | 1.0 |",
            "+---+---------------------+-------------------------+------------+-----+",
        ])
    );
}

/// Input `k, v, ts, __retract`: rows of a changelog.
fn changelog_rows(rows: &[(&str, i64, bool)]) -> RecordBatch {
    let schema = changelog_schema();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Int64Array>()),
            Arc::new(TimestampMillisecondArray::from(vec![0; rows.len()])),
            Arc::new(arrow::array::BooleanArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn changelog_schema() -> SchemaRef {
    let mut fields: Vec<Field> = int_schema()
        .fields()
        .iter()
        .map(|f| (**f).clone())
        .collect();
    fields.push(Field::new(
        ferris_runtime::RETRACT_COLUMN,
        DataType::Boolean,
        false,
    ));
    Arc::new(Schema::new(fields))
}

#[test]
fn a_changelog_input_takes_back_the_rows_it_retracts() {
    let schema = changelog_schema();
    // (AVG is planned over DOUBLE, whose accumulator takes values back: retractions.slt.)
    let aggs = [agg(count_udaf(), "cnt"), agg(sum_udaf(), "total")];
    let mut s = spec(&schema, 1, &aggs, WindowKind::Global, EmitMode::Changes);
    s.time_column = None;
    s.retract_column = Some(3);
    let mut op = aggregate_operator(Arc::new(s)).unwrap();
    assert!(op.describe().ends_with(" retracting"), "{}", op.describe());
    let out = run(
        op.as_mut(),
        vec![
            Step::Batch(changelog_rows(&[("a", 10, false), ("b", 1, false)])),
            // a's 10 becomes 30; b's 1 becomes 2 and then 5, in one batch.
            Step::Batch(changelog_rows(&[
                ("a", 10, true),
                ("a", 30, false),
                ("b", 1, true),
                ("b", 2, false),
                ("b", 2, true),
                ("b", 5, false),
            ])),
        ],
    );
    assert_eq!(
        out,
        vec![
            table(&[
                "+---+-----+-------+",
                "| k | cnt | total |",
                "+---+-----+-------+",
                "| a | 1   | 10    |",
                "| b | 1   | 1     |",
                "+---+-----+-------+",
            ]),
            table(&[
                "+---+-----+-------+",
                "| k | cnt | total |",
                "+---+-----+-------+",
                "| a | 1   | 30    |",
                "| b | 1   | 5     |",
                "+---+-----+-------+",
            ]),
        ]
    );
}

#[test]
fn min_and_max_refuse_a_changelog_input() {
    let schema = changelog_schema();
    let mut s = spec(
        &schema,
        1,
        &[agg(max_udaf(), "hi")],
        WindowKind::Global,
        EmitMode::Changes,
    );
    s.time_column = None;
    s.retract_column = Some(3);
    let err = aggregate_operator(Arc::new(s)).err().unwrap();
    assert!(err.starts_with("MAX() cannot take a value back"), "{err}");
}
