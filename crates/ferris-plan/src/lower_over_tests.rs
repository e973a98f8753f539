use super::{OverPlan, lower_over};
use crate::{Catalog, PlanError};
use arrow::array::{AsArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion_expr::LogicalPlan;
use datafusion_expr::logical_plan::Window;
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use ferris_sql::ast::Span;
use std::sync::Arc;

const MIN: i64 = 60_000;

fn trades_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("price", DataType::Decimal128(18, 4), true),
        Field::new("qty", DataType::Int64, true),
    ]))
}

/// Plans `sql` the way query.rs does and returns its (topmost) Window node.
fn window_node(sql: &str) -> Window {
    let mut catalog = Catalog::new();
    catalog.add_table("trades", trades_schema());
    let options = ParserOptions {
        parse_float_as_decimal: true,
        enable_ident_normalization: true,
        support_varchar_with_length: true,
        enable_options_value_normalization: false,
        collect_spans: true,
        map_string_types_to_utf8view: false,
        default_null_ordering: ParserOptions::new().default_null_ordering,
    };
    let planner = SqlToRel::new_with_options(&catalog, options);
    let statement =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, sql)
            .expect("parses")
            .remove(0);
    let plan = planner.sql_statement_to_plan(statement).expect("plans");
    let plan = datafusion_optimizer::Analyzer::new()
        .execute_and_check(plan, catalog.config(), |_, _| {})
        .expect("analyzes");
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::Window(w) = node {
            found = Some(w.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walks");
    found.expect("a Window node")
}

fn lower(sql: &str) -> Result<OverPlan, PlanError> {
    let window = window_node(sql);
    let input: SchemaRef = Arc::new(window.input.schema().as_arrow().clone());
    let time = input.index_of("ts").expect("ts");
    lower_over(&window, &input, time, Span::default())
}

fn over(select: &str) -> OverPlan {
    lower(&format!("SELECT {select} FROM trades")).expect("lowers")
}

fn error(select: &str) -> String {
    match lower(&format!("SELECT {select} FROM trades")) {
        Ok(p) => panic!("expected an error, got {}", p.describe),
        Err(e) => e.message,
    }
}

/// Rows (symbol, event time in ms, price, qty).
fn rows(rows: &[(&str, i64, &str, i64)]) -> RecordBatch {
    let symbol = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
    let ts = TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let price = StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
    let price = cast(&price, &DataType::Decimal128(18, 4)).expect("decimal");
    let qty = Int64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>());
    RecordBatch::try_new(
        trades_schema(),
        vec![Arc::new(symbol), Arc::new(ts), price, Arc::new(qty)],
    )
    .expect("batch")
}

/// The output with the window columns renamed to `names`.
fn show(plan: &OverPlan, names: &[&str], batches: &[RecordBatch]) -> String {
    let schema = &plan.output_schema;
    let n_in = schema.fields().len() - names.len();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.as_ref().clone();
            if i >= n_in {
                f.with_name(names[i - n_in])
            } else {
                f
            }
        })
        .collect();
    let renamed = Arc::new(Schema::new(fields));
    let batches: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let columns = b.columns()[..renamed.fields().len()].to_vec();
            RecordBatch::try_new(renamed.clone(), columns).expect("rename")
        })
        .collect();
    pretty_format_batches(&batches)
        .expect("formats")
        .to_string()
}

fn table(lines: &[&str]) -> String {
    lines.join("\n")
}

/// Feeds the whole input as one batch and finishes.
fn run_all(plan: &OverPlan, input: RecordBatch) -> Vec<RecordBatch> {
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    op.process_batch(&input, &mut out).expect("batch");
    assert_eq!(out.len(), 0, "process_batch only buffers");
    op.finish(&mut out).expect("finish");
    assert_eq!(op.state_size().rows, 0);
    out
}

/// Sorts rows by (event time, symbol), stably: the order the runtime merges partitions in.
fn runtime_order(plan: &OverPlan, batches: &[RecordBatch]) -> RecordBatch {
    let width = plan.output_schema.fields().len();
    let batches: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            RecordBatch::try_new(plan.output_schema.clone(), b.columns()[..width].to_vec())
                .expect("strip the emit-time column")
        })
        .collect();
    let all = arrow::compute::concat_batches(&plan.output_schema, &batches).expect("concat");
    let ts = all.column(1).as_primitive::<TimestampMillisecondType>();
    let sym = all.column(0).as_string::<i32>();
    let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
    idx.sort_by_key(|&i| (ts.value(i as usize), sym.value(i as usize).to_string()));
    take_record_batch(&all, &arrow::array::UInt32Array::from(idx)).expect("take")
}

#[test]
fn lag_lead_with_defaults_and_row_number() {
    let plan = over(
        "symbol, ts, price, \
         LAG(price, 1, 0) OVER (PARTITION BY symbol ORDER BY ts), \
         LEAD(price, 2) OVER (PARTITION BY symbol ORDER BY ts), \
         LEAD(price, 1, -1) OVER (PARTITION BY symbol ORDER BY ts), \
         LAG(qty) OVER (PARTITION BY symbol ORDER BY ts), \
         ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts)",
    );
    let input = rows(&[
        ("A", MIN, "10.5", 1),
        ("A", 2 * MIN, "11", 2),
        ("A", 3 * MIN, "12.25", 3),
        ("A", 4 * MIN, "9", 4),
    ]);
    let out = run_all(&plan, input);
    assert_eq!(
        show(&plan, &["lag", "lead2", "lead", "lag_qty", "n"], &out),
        table(&[
            "+--------+---------------------+---------+-----+---------+---------+---------+---------+---+",
            "| symbol | ts                  | price   | qty | lag     | lead2   | lead    | lag_qty | n |",
            "+--------+---------------------+---------+-----+---------+---------+---------+---------+---+",
            "| A      | 1970-01-01T00:01:00 | 10.5000 | 1   | 0.0000  | 12.2500 | 11.0000 |         | 1 |",
            "| A      | 1970-01-01T00:02:00 | 11.0000 | 2   | 10.5000 | 9.0000  | 12.2500 | 1       | 2 |",
            "| A      | 1970-01-01T00:03:00 | 12.2500 | 3   | 11.0000 |         | 9.0000  | 2       | 3 |",
            "| A      | 1970-01-01T00:04:00 | 9.0000  | 4   | 12.2500 |         | -1.0000 | 3       | 4 |",
            "+--------+---------------------+---------+-----+---------+---------+---------+---------+---+",
        ])
    );
}

#[test]
fn rank_and_dense_rank_share_ranks_between_equal_times() {
    let plan = over(
        "symbol, ts, price, \
         ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts), \
         RANK() OVER (PARTITION BY symbol ORDER BY ts), \
         DENSE_RANK() OVER (PARTITION BY symbol ORDER BY ts)",
    );
    let input = rows(&[
        ("A", MIN, "1", 1),
        ("A", MIN, "2", 2),
        ("A", 2 * MIN, "3", 3),
        ("A", 3 * MIN, "4", 4),
        ("A", 3 * MIN, "5", 5),
        ("A", 3 * MIN, "6", 6),
        ("A", 4 * MIN, "7", 7),
    ]);
    // Fed one row per batch with watermarks in between, as well as in one batch.
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    for i in 0..input.num_rows() {
        op.process_batch(&input.slice(i, 1), &mut out)
            .expect("batch");
        let ts = input.column(1).as_primitive::<TimestampMillisecondType>();
        op.process_watermark(ts.value(i), &mut out).expect("wm");
    }
    op.finish(&mut out).expect("finish");
    let expected = table(&[
        "+--------+---------------------+--------+-----+---+------+-------+",
        "| symbol | ts                  | price  | qty | n | rank | dense |",
        "+--------+---------------------+--------+-----+---+------+-------+",
        "| A      | 1970-01-01T00:01:00 | 1.0000 | 1   | 1 | 1    | 1     |",
        "| A      | 1970-01-01T00:01:00 | 2.0000 | 2   | 2 | 1    | 1     |",
        "| A      | 1970-01-01T00:02:00 | 3.0000 | 3   | 3 | 3    | 2     |",
        "| A      | 1970-01-01T00:03:00 | 4.0000 | 4   | 4 | 4    | 3     |",
        "| A      | 1970-01-01T00:03:00 | 5.0000 | 5   | 5 | 4    | 3     |",
        "| A      | 1970-01-01T00:03:00 | 6.0000 | 6   | 6 | 4    | 3     |",
        "| A      | 1970-01-01T00:04:00 | 7.0000 | 7   | 7 | 7    | 4     |",
        "+--------+---------------------+--------+-----+---+------+-------+",
    ]);
    assert_eq!(show(&plan, &["n", "rank", "dense"], &out), expected);
    assert_eq!(
        show(&plan, &["n", "rank", "dense"], &run_all(&plan, input)),
        expected
    );
}

#[test]
fn first_and_last_value_over_their_frames() {
    let plan = over(
        "symbol, ts, price, \
         FIRST_VALUE(price) OVER (PARTITION BY symbol ORDER BY ts), \
         LAST_VALUE(price) OVER (PARTITION BY symbol ORDER BY ts), \
         FIRST_VALUE(price) OVER (PARTITION BY symbol ORDER BY ts ROWS 1 PRECEDING), \
         LAST_VALUE(price) OVER (PARTITION BY symbol ORDER BY ts \
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)",
    );
    let input = rows(&[
        ("A", MIN, "1", 1),
        ("A", 2 * MIN, "2", 2),
        ("A", 2 * MIN, "3", 3),
        ("A", 3 * MIN, "4", 4),
    ]);
    // LAST_VALUE over the default RANGE frame sees the current row's peers.
    assert_eq!(
        show(
            &plan,
            &["first", "last", "first_1p", "last_prev"],
            &run_all(&plan, input)
        ),
        table(&[
            "+--------+---------------------+--------+-----+--------+--------+----------+-----------+",
            "| symbol | ts                  | price  | qty | first  | last   | first_1p | last_prev |",
            "+--------+---------------------+--------+-----+--------+--------+----------+-----------+",
            "| A      | 1970-01-01T00:01:00 | 1.0000 | 1   | 1.0000 | 1.0000 | 1.0000   |           |",
            "| A      | 1970-01-01T00:02:00 | 2.0000 | 2   | 1.0000 | 3.0000 | 1.0000   | 1.0000    |",
            "| A      | 1970-01-01T00:02:00 | 3.0000 | 3   | 1.0000 | 3.0000 | 2.0000   | 2.0000    |",
            "| A      | 1970-01-01T00:03:00 | 4.0000 | 4   | 1.0000 | 4.0000 | 3.0000   | 3.0000    |",
            "+--------+---------------------+--------+-----+--------+--------+----------+-----------+",
        ])
    );
}

const MA_15M: &str = "symbol, ts, price, \
     AVG(price) OVER (PARTITION BY symbol ORDER BY ts \
                      RANGE BETWEEN INTERVAL '15' MINUTE PRECEDING AND CURRENT ROW), \
     SUM(price) OVER (PARTITION BY symbol ORDER BY ts \
                      RANGE BETWEEN INTERVAL '15' MINUTE PRECEDING AND CURRENT ROW)";

fn ma_input() -> RecordBatch {
    rows(&[
        ("A", 0, "100", 1),
        ("A", 5 * MIN, "101.5", 1),
        ("A", 10 * MIN, "99.25", 1),
        ("A", 15 * MIN, "102", 1),
        ("A", 16 * MIN, "100.1234", 1),
        ("A", 31 * MIN, "98", 1),
    ])
}

#[test]
fn avg_and_sum_over_a_15_minute_range_are_exact_decimals() {
    let plan = over(MA_15M);
    assert_eq!(
        plan.output_schema.field(4).data_type(),
        &DataType::Decimal128(22, 8)
    );
    assert_eq!(
        show(&plan, &["avg", "sum"], &run_all(&plan, ma_input())),
        table(&[
            "+--------+---------------------+----------+-----+--------------+----------+",
            "| symbol | ts                  | price    | qty | avg          | sum      |",
            "+--------+---------------------+----------+-----+--------------+----------+",
            "| A      | 1970-01-01T00:00:00 | 100.0000 | 1   | 100.00000000 | 100.0000 |",
            "| A      | 1970-01-01T00:05:00 | 101.5000 | 1   | 100.75000000 | 201.5000 |",
            "| A      | 1970-01-01T00:10:00 | 99.2500  | 1   | 100.25000000 | 300.7500 |",
            "| A      | 1970-01-01T00:15:00 | 102.0000 | 1   | 100.68750000 | 402.7500 |",
            "| A      | 1970-01-01T00:16:00 | 100.1234 | 1   | 100.71835000 | 402.8734 |",
            "| A      | 1970-01-01T00:31:00 | 98.0000  | 1   | 99.06170000  | 198.1234 |",
            "+--------+---------------------+----------+-----+--------------+----------+",
        ])
    );
    assert_eq!(
        plan.describe,
        "Over: PARTITION BY symbol ORDER BY ts [avg(price) RANGE 900000ms PRECEDING, \
         sum(price) RANGE 900000ms PRECEDING]"
    );
}

#[test]
fn state_shrinks_as_the_watermark_passes_the_range() {
    let plan = over(MA_15M);
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    let input = ma_input();
    op.process_batch(&input, &mut out).expect("batch");
    assert_eq!(op.state_size().rows, 6);
    let full = op.state_size().bytes;
    assert!(full > 0);
    // Rows at 0, 5 and 10 minutes are final; all are still inside someone's frame.
    op.process_watermark(11 * MIN, &mut out).expect("wm");
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_eq!(op.state_size().rows, 6);
    // Rows up to 16 minutes are final; the next row is at or after 17 minutes, so rows
    // before 2 minutes (the one at 0) leave every future frame.
    op.process_watermark(17 * MIN, &mut out).expect("wm");
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    assert_eq!(op.state_size().rows, 5);
    // At 40 minutes: only the row at 31 minutes can still be in a frame.
    op.process_watermark(40 * MIN, &mut out).expect("wm");
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
    assert_eq!(op.state_size().rows, 1);
    // Nothing left in any future frame.
    op.process_watermark(50 * MIN, &mut out).expect("wm");
    assert_eq!(op.state_size().rows, 0);
    assert!(op.state_size().bytes < full);
    op.finish(&mut out).expect("finish");
    assert_eq!(op.state_size(), Default::default());
    assert_eq!(
        show(&plan, &["avg", "sum"], &out),
        show(&plan, &["avg", "sum"], &run_all(&plan, ma_input()))
    );
}

#[test]
fn count_over_rows_2_preceding_and_bounded_state() {
    let plan = over(
        "symbol, ts, price, \
         COUNT(*) OVER (PARTITION BY symbol ORDER BY ts ROWS 2 PRECEDING), \
         SUM(qty) OVER (PARTITION BY symbol ORDER BY ts ROWS 2 PRECEDING), \
         MAX(price) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 2 PRECEDING AND 1 PRECEDING), \
         STRING_AGG(symbol, ',') OVER (PARTITION BY symbol ORDER BY ts ROWS 1 PRECEDING)",
    );
    let input = rows(&[
        ("A", MIN, "5", 1),
        ("A", 2 * MIN, "3", 2),
        ("A", 3 * MIN, "4", 4),
        ("A", 4 * MIN, "1", 8),
        ("A", 5 * MIN, "2", 16),
    ]);
    let expected = table(&[
        "+--------+---------------------+--------+-----+---+----+--------+-----+",
        "| symbol | ts                  | price  | qty | c | s  | m      | agg |",
        "+--------+---------------------+--------+-----+---+----+--------+-----+",
        "| A      | 1970-01-01T00:01:00 | 5.0000 | 1   | 1 | 1  |        | A   |",
        "| A      | 1970-01-01T00:02:00 | 3.0000 | 2   | 2 | 3  | 5.0000 | A,A |",
        "| A      | 1970-01-01T00:03:00 | 4.0000 | 4   | 3 | 7  | 5.0000 | A,A |",
        "| A      | 1970-01-01T00:04:00 | 1.0000 | 8   | 3 | 14 | 4.0000 | A,A |",
        "| A      | 1970-01-01T00:05:00 | 2.0000 | 16  | 3 | 28 | 4.0000 | A,A |",
        "+--------+---------------------+--------+-----+---+----+--------+-----+",
    ]);
    assert_eq!(
        show(
            &plan,
            &["c", "s", "m", "agg"],
            &run_all(&plan, input.clone())
        ),
        expected
    );
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    for i in 0..input.num_rows() {
        op.process_batch(&input.slice(i, 1), &mut out)
            .expect("batch");
        op.process_watermark((i as i64 + 1) * MIN + 1, &mut out)
            .expect("wm");
        // Every row is emitted at once; at most the 2 rows the next frame needs are kept.
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), i + 1);
        assert_eq!(op.state_size().rows, (i + 1).min(2));
    }
    op.finish(&mut out).expect("finish");
    assert_eq!(show(&plan, &["c", "s", "m", "agg"], &out), expected);
}

#[test]
fn following_frames_wait_for_the_rows_after() {
    let plan = over(
        "symbol, ts, price, \
         SUM(qty) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING), \
         COUNT(qty) OVER (PARTITION BY symbol ORDER BY ts \
                          RANGE BETWEEN CURRENT ROW AND INTERVAL '5' MINUTE FOLLOWING)",
    );
    let input = rows(&[
        ("A", MIN, "1", 1),
        ("A", 3 * MIN, "1", 2),
        ("A", 6 * MIN, "1", 4),
        ("A", 20 * MIN, "1", 8),
    ]);
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    op.process_batch(&input.slice(0, 2), &mut out)
        .expect("batch");
    // Both rows are settled, but the second one's following row has not arrived, and the
    // first one's 5-minute range is still open.
    op.process_watermark(4 * MIN, &mut out).expect("wm");
    assert_eq!(out.len(), 0, "no row is final at 4 minutes");
    // The range of the first row (to 6 minutes, inclusive) closes only after 6 minutes.
    op.process_watermark(6 * MIN, &mut out).expect("wm");
    assert_eq!(out.len(), 0, "no row is final at 6 minutes");
    op.process_batch(&input.slice(2, 1), &mut out)
        .expect("batch");
    op.process_watermark(6 * MIN + 1, &mut out).expect("wm");
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    op.process_batch(&input.slice(3, 1), &mut out)
        .expect("batch");
    op.process_watermark(30 * MIN, &mut out).expect("wm");
    // The last row still waits for a following row: only the end of input settles it.
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    op.finish(&mut out).expect("finish");
    let expected = table(&[
        "+--------+---------------------+--------+-----+----+---+",
        "| symbol | ts                  | price  | qty | s  | c |",
        "+--------+---------------------+--------+-----+----+---+",
        "| A      | 1970-01-01T00:01:00 | 1.0000 | 1   | 3  | 3 |",
        "| A      | 1970-01-01T00:03:00 | 1.0000 | 2   | 6  | 2 |",
        "| A      | 1970-01-01T00:06:00 | 1.0000 | 4   | 12 | 1 |",
        "| A      | 1970-01-01T00:20:00 | 1.0000 | 8   | 8  | 1 |",
        "+--------+---------------------+--------+-----+----+---+",
    ]);
    assert_eq!(show(&plan, &["s", "c"], &out), expected);
    assert_eq!(show(&plan, &["s", "c"], &run_all(&plan, input)), expected);
}

const TWO: &str = "symbol, ts, price, \
     ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts), \
     LAG(price) OVER (PARTITION BY symbol ORDER BY ts), \
     SUM(qty) OVER (PARTITION BY symbol ORDER BY ts)";

fn two_input() -> RecordBatch {
    rows(&[
        ("B", MIN, "20", 1),
        ("A", MIN, "10", 2),
        ("A", 2 * MIN, "11", 3),
        ("B", 3 * MIN, "21", 4),
        ("B", 3 * MIN, "22", 5),
        ("A", 4 * MIN, "12", 6),
        ("B", 5 * MIN, "23", 7),
    ])
}

const TWO_EXPECTED: &[&str] = &[
    "+--------+---------------------+---------+-----+---+---------+----+",
    "| symbol | ts                  | price   | qty | n | lag     | s  |",
    "+--------+---------------------+---------+-----+---+---------+----+",
    "| A      | 1970-01-01T00:01:00 | 10.0000 | 2   | 1 |         | 2  |",
    "| B      | 1970-01-01T00:01:00 | 20.0000 | 1   | 1 |         | 1  |",
    "| A      | 1970-01-01T00:02:00 | 11.0000 | 3   | 2 | 10.0000 | 5  |",
    "| B      | 1970-01-01T00:03:00 | 21.0000 | 4   | 2 | 20.0000 | 10 |",
    "| B      | 1970-01-01T00:03:00 | 22.0000 | 5   | 3 | 21.0000 | 10 |",
    "| A      | 1970-01-01T00:04:00 | 12.0000 | 6   | 3 | 11.0000 | 11 |",
    "| B      | 1970-01-01T00:05:00 | 23.0000 | 7   | 4 | 22.0000 | 17 |",
    "+--------+---------------------+---------+-----+---+---------+----+",
];

#[test]
fn two_partitions_interleaved() {
    let plan = over(TWO);
    assert_eq!(plan.partition_columns, vec![0]);
    let out = run_all(&plan, two_input());
    assert_eq!(
        show(&plan, &["n", "lag", "s"], &[runtime_order(&plan, &out)]),
        table(TWO_EXPECTED)
    );
}

#[test]
fn one_batch_and_one_row_per_batch_give_the_same_rows() {
    let plan = over(TWO);
    let input = two_input();
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    let ts = input.column(1).as_primitive::<TimestampMillisecondType>();
    let mut max = i64::MIN;
    for i in 0..input.num_rows() {
        op.process_batch(&input.slice(i, 1), &mut out)
            .expect("batch");
        max = max.max(ts.value(i));
        // A source with a bound of one minute.
        op.process_watermark(max - MIN, &mut out).expect("wm");
    }
    op.finish(&mut out).expect("finish");
    assert_eq!(
        show(&plan, &["n", "lag", "s"], &[runtime_order(&plan, &out)]),
        table(TWO_EXPECTED)
    );
}

#[test]
fn out_of_order_rows_are_sorted_and_emitted_after_the_watermark() {
    let plan = over(
        "symbol, ts, price, \
         ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts), \
         LAG(qty) OVER (PARTITION BY symbol ORDER BY ts)",
    );
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    op.process_batch(
        &rows(&[("A", 3 * MIN, "3", 3), ("A", MIN, "1", 1)]),
        &mut out,
    )
    .expect("batch");
    op.process_watermark(MIN, &mut out).expect("wm");
    // The row at the watermark is still on time: nothing is final yet.
    assert_eq!(out.len(), 0);
    op.process_batch(
        &rows(&[("A", 2 * MIN, "2", 2), ("A", MIN, "1.5", 4)]),
        &mut out,
    )
    .expect("batch");
    op.process_watermark(2 * MIN + 1, &mut out).expect("wm");
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    // A row below the watermark breaks the runtime's contract.
    assert!(
        op.process_batch(&rows(&[("A", MIN, "0", 0)]), &mut out)
            .is_err()
    );
    op.finish(&mut out).expect("finish");
    assert_eq!(
        show(&plan, &["n", "lag"], &out),
        table(&[
            "+--------+---------------------+--------+-----+---+-----+",
            "| symbol | ts                  | price  | qty | n | lag |",
            "+--------+---------------------+--------+-----+---+-----+",
            "| A      | 1970-01-01T00:01:00 | 1.0000 | 1   | 1 |     |",
            "| A      | 1970-01-01T00:01:00 | 1.5000 | 4   | 2 | 1   |",
            "| A      | 1970-01-01T00:02:00 | 2.0000 | 2   | 3 | 4   |",
            "| A      | 1970-01-01T00:03:00 | 3.0000 | 3   | 4 | 2   |",
            "+--------+---------------------+--------+-----+---+-----+",
        ])
    );
}

#[test]
fn without_partition_by_everything_is_one_partition() {
    let plan = over("symbol, ts, price, SUM(qty) OVER (ORDER BY ts ROWS 1 PRECEDING)");
    assert_eq!(plan.partition_columns, Vec::<usize>::new());
    assert_eq!(
        plan.describe,
        "Over: ORDER BY ts [sum(qty) ROWS 1 PRECEDING]"
    );
    let out = run_all(&plan, two_input());
    assert_eq!(
        show(&plan, &["s"], &out),
        table(&[
            "+--------+---------------------+---------+-----+----+",
            "| symbol | ts                  | price   | qty | s  |",
            "+--------+---------------------+---------+-----+----+",
            "| B      | 1970-01-01T00:01:00 | 20.0000 | 1   | 1  |",
            "| A      | 1970-01-01T00:01:00 | 10.0000 | 2   | 3  |",
            "| A      | 1970-01-01T00:02:00 | 11.0000 | 3   | 5  |",
            "| B      | 1970-01-01T00:03:00 | 21.0000 | 4   | 7  |",
            "| B      | 1970-01-01T00:03:00 | 22.0000 | 5   | 9  |",
            "| A      | 1970-01-01T00:04:00 | 12.0000 | 6   | 11 |",
            "| B      | 1970-01-01T00:05:00 | 23.0000 | 7   | 13 |",
            "+--------+---------------------+---------+-----+----+",
        ])
    );
}

#[test]
fn describe_names_the_functions() {
    let plan = over(
        "symbol, LAG(price, 1) OVER (PARTITION BY symbol ORDER BY ts), \
         AVG(price) OVER (PARTITION BY symbol ORDER BY ts \
                          RANGE BETWEEN INTERVAL '15' MINUTE PRECEDING AND CURRENT ROW)",
    );
    assert_eq!(
        plan.describe,
        "Over: PARTITION BY symbol ORDER BY ts [lag(price,1), avg(price) RANGE 900000ms PRECEDING]"
    );
    let op = (plan.factory)();
    assert_eq!(op.describe(), plan.describe);
    assert!(!op.is_stateless());
}

#[test]
fn planning_errors() {
    assert_eq!(
        error("ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY price)"),
        "OVER (... ORDER BY ...) must order by the event-time column 'ts'"
    );
    assert_eq!(
        error("SUM(qty) OVER (PARTITION BY symbol ORDER BY ts DESC)"),
        "OVER (... ORDER BY ...) must order by the event-time column 'ts'"
    );
    assert_eq!(
        error("COUNT(*) OVER (PARTITION BY symbol)"),
        "OVER (... ORDER BY ...) must order by the event-time column 'ts'"
    );
    // RANGE over another column.
    assert_eq!(
        error("SUM(qty) OVER (ORDER BY qty RANGE BETWEEN 2 PRECEDING AND CURRENT ROW)"),
        "OVER (... ORDER BY ...) must order by the event-time column 'ts'"
    );
    assert!(
        error(
            "SUM(qty) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        )
        .contains("UNBOUNDED FOLLOWING never becomes final")
    );
    assert!(
        error("SUM(qty) OVER (ORDER BY ts RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)")
            .contains("UNBOUNDED FOLLOWING never becomes final")
    );
    assert!(
        error("SUM(qty) OVER (ORDER BY ts GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW)")
            .contains("GROUPS")
    );
    assert!(
        error("NTILE(4) OVER (ORDER BY ts)").contains("NTILE is not supported in OVER windows")
    );
    assert!(
        error(
            "SUM(qty) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '1' MONTH PRECEDING AND CURRENT ROW)"
        )
        .contains("months")
    );
    assert!(
        error("SUM(qty) OVER (PARTITION BY upper(symbol) ORDER BY ts)")
            .contains("plain columns only")
    );
}

/// A small deterministic generator (no external crates).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn int_column(batch: &RecordBatch, i: usize) -> Vec<Option<i64>> {
    let c = cast(batch.column(i), &DataType::Int64).expect("int");
    c.as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .collect()
}

#[test]
fn matches_a_naive_evaluation_whatever_the_batches() {
    const SEC: i64 = 1000;
    let w = "PARTITION BY symbol ORDER BY ts";
    let plan = over(&format!(
        "symbol, ts, price, \
         ROW_NUMBER() OVER ({w}), \
         LAG(qty, 2) OVER ({w}), \
         SUM(qty) OVER ({w} RANGE BETWEEN INTERVAL '5' MINUTE PRECEDING AND CURRENT ROW), \
         COUNT(qty) OVER ({w} ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING), \
         MIN(qty) OVER ({w} RANGE BETWEEN INTERVAL '2' MINUTE PRECEDING \
                        AND INTERVAL '2' MINUTE FOLLOWING), \
         LAST_VALUE(qty) OVER ({w} RANGE BETWEEN UNBOUNDED PRECEDING \
                               AND INTERVAL '1' MINUTE PRECEDING), \
         LEAD(qty) OVER ({w}), \
         SUM(qty) OVER ({w}), \
         SUM(qty) OVER ({w} RANGE BETWEEN INTERVAL '30' MINUTE PRECEDING AND CURRENT ROW)"
    ));
    // 600 rows of 3 symbols, out of order by up to a minute.
    let mut rng = Lcg(7);
    let mut data: Vec<(String, i64, Option<i64>)> = Vec::new();
    for i in 0..600i64 {
        let symbol = ["A", "B", "C"][rng.next(3) as usize].to_string();
        let ts = i * 10 * SEC + rng.next(60) as i64 * SEC;
        let qty = if i % 7 == 0 {
            None
        } else {
            Some(rng.next(100) as i64)
        };
        data.push((symbol, ts, qty));
    }
    let batch_of = rows_batch;

    // The operator, fed in batches of 1 to 6 rows with a one-minute watermark bound.
    let mut op = (plan.factory)();
    let mut out = Vec::new();
    let mut max_ts = i64::MIN;
    let mut max_rows = 0;
    let mut at = 0;
    while at < data.len() {
        let n = (1 + rng.next(6) as usize).min(data.len() - at);
        let chunk = &data[at..at + n];
        op.process_batch(&batch_of(chunk), &mut out).expect("batch");
        max_ts = max_ts.max(chunk.iter().map(|r| r.1).max().unwrap_or(i64::MIN));
        op.process_watermark(max_ts - 60 * SEC, &mut out)
            .expect("wm");
        max_rows = max_rows.max(op.state_size().rows);
        at += n;
    }
    op.finish(&mut out).expect("finish");
    assert_eq!(op.state_size().rows, 0);
    assert!(max_rows < 300, "state grew to {max_rows} rows");
    let got = runtime_order(&plan, &out);
    assert_eq!(got.num_rows(), data.len());

    // The same in one batch.
    let all = runtime_order(&plan, &run_all(&plan, batch_of(&data)));
    assert_eq!(
        pretty_format_batches(std::slice::from_ref(&got))
            .expect("fmt")
            .to_string(),
        pretty_format_batches(&[all]).expect("fmt").to_string()
    );

    // Naively: per symbol, rows sorted by (ts, arrival); every frame scanned in full.
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| (data[i].1, data[i].0.clone(), i));
    let mut expected: Vec<Vec<Option<i64>>> = vec![Vec::new(); 9];
    for &i in &order {
        let (sym, t, _) = &data[i];
        let part: Vec<usize> = {
            let mut p: Vec<usize> = (0..data.len()).filter(|&j| &data[j].0 == sym).collect();
            p.sort_by_key(|&j| (data[j].1, j));
            p
        };
        let k = part.iter().position(|&j| j == i).expect("row") as i64;
        let q = |r: i64| data[part[r as usize]].2;
        let ts_of = |r: usize| data[part[r]].1;
        let n = part.len() as i64;
        let range = |lo: i64, hi: i64| -> Vec<usize> {
            (0..part.len())
                .filter(|&r| ts_of(r) >= lo && ts_of(r) <= hi)
                .collect()
        };
        let sum = |rows: &[usize]| -> Option<i64> {
            let v: Vec<i64> = rows.iter().filter_map(|&r| q(r as i64)).collect();
            if v.is_empty() {
                None
            } else {
                Some(v.iter().sum())
            }
        };
        expected[0].push(Some(k + 1));
        expected[1].push(if k >= 2 { q(k - 2) } else { None });
        expected[2].push(sum(&range(t - 5 * 60 * SEC, *t)));
        let rows: Vec<usize> = ((k - 3).max(0)..(k + 2).min(n))
            .map(|r| r as usize)
            .collect();
        expected[3].push(Some(
            rows.iter().filter(|&&r| q(r as i64).is_some()).count() as i64,
        ));
        expected[4].push(
            range(t - 2 * 60 * SEC, t + 2 * 60 * SEC)
                .iter()
                .filter_map(|&r| q(r as i64))
                .min(),
        );
        expected[5].push(
            range(i64::MIN, t - 60 * SEC)
                .last()
                .and_then(|&r| q(r as i64)),
        );
        expected[6].push(if k + 1 < n { q(k + 1) } else { None });
        expected[7].push(sum(&range(i64::MIN, *t)));
        expected[8].push(sum(&range(t - 30 * 60 * SEC, *t)));
    }
    for (f, want) in expected.iter().enumerate() {
        assert_eq!(&int_column(&got, 4 + f), want, "function {f}");
    }
}

fn rows_batch(rows: &[(String, i64, Option<i64>)]) -> RecordBatch {
    let symbol = StringArray::from(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>());
    let ts = TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let price = cast(
        &Int64Array::from(vec![1; rows.len()]),
        &DataType::Decimal128(18, 4),
    )
    .expect("decimal");
    let qty = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
    RecordBatch::try_new(
        trades_schema(),
        vec![Arc::new(symbol), Arc::new(ts), price, Arc::new(qty)],
    )
    .expect("batch")
}

#[test]
fn filter_distinct_and_negative_offsets() {
    let plan = over(
        "symbol, ts, price, \
         COUNT(qty) FILTER (WHERE qty > 2) OVER (ORDER BY ts ROWS 2 PRECEDING), \
         COUNT(DISTINCT qty) OVER (ORDER BY ts ROWS 2 PRECEDING), \
         SUM(DISTINCT qty) OVER (ORDER BY ts), \
         LAG(qty, -1, 0) OVER (ORDER BY ts)",
    );
    let input = rows(&[
        ("A", MIN, "1", 1),
        ("A", 2 * MIN, "1", 3),
        ("A", 3 * MIN, "1", 3),
        ("A", 4 * MIN, "1", 5),
        ("A", 5 * MIN, "1", 1),
    ]);
    assert_eq!(
        show(
            &plan,
            &["big", "distinct", "dsum", "next"],
            &run_all(&plan, input)
        ),
        table(&[
            "+--------+---------------------+--------+-----+-----+----------+------+------+",
            "| symbol | ts                  | price  | qty | big | distinct | dsum | next |",
            "+--------+---------------------+--------+-----+-----+----------+------+------+",
            "| A      | 1970-01-01T00:01:00 | 1.0000 | 1   | 0   | 1        | 1    | 3    |",
            "| A      | 1970-01-01T00:02:00 | 1.0000 | 3   | 1   | 2        | 4    | 3    |",
            "| A      | 1970-01-01T00:03:00 | 1.0000 | 3   | 2   | 2        | 4    | 5    |",
            "| A      | 1970-01-01T00:04:00 | 1.0000 | 5   | 3   | 2        | 9    | 1    |",
            "| A      | 1970-01-01T00:05:00 | 1.0000 | 1   | 2   | 3        | 9    | 0    |",
            "+--------+---------------------+--------+-----+-----+----------+------+------+",
        ])
    );
}
