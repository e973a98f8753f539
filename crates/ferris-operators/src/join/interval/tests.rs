use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use ferris_runtime::{Operator, StateSize};

use super::{IntervalJoinSpec, JoinKind, interval_join_operator};

const MIN: i64 = 60_000;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn side_schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}_id"), DataType::Int64, true),
        Field::new(format!("{prefix}_ts"), ts_type(), false),
        Field::new(format!("{prefix}_v"), DataType::Utf8, true),
    ]))
}

fn spec(kind: JoinKind, lower_ms: i64, upper_ms: i64) -> Arc<IntervalJoinSpec> {
    let (l, r) = (side_schema("o"), side_schema("s"));
    let right_nullable = kind.pads_left();
    let left_nullable = kind.pads_right();
    let fields: Vec<Field> = l
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_nullable(left_nullable || f.is_nullable())
        })
        .chain(r.fields().iter().map(|f| {
            f.as_ref()
                .clone()
                .with_nullable(right_nullable || f.is_nullable())
        }))
        .collect();
    Arc::new(IntervalJoinSpec {
        kind,
        left_schema: l,
        right_schema: r,
        left_keys: vec![0],
        right_keys: vec![0],
        left_time: 1,
        right_time: 1,
        lower_ms,
        upper_ms,
        output_schema: Arc::new(Schema::new(fields)),
        left_out: 3,
        right_out: 3,
    })
}

fn op(kind: JoinKind, lower_ms: i64, upper_ms: i64) -> Box<dyn Operator> {
    interval_join_operator(spec(kind, lower_ms, upper_ms)).expect("valid spec")
}

/// A batch of (id, ts ms, v) rows for side `prefix` ("o" = left, "s" = right).
fn batch(prefix: &str, rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        side_schema(prefix),
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

fn left(rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
    batch("o", rows)
}

fn right(rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
    batch("s", rows)
}

/// The output rows sorted by every column, rendered as a table ("" when empty).
fn render(op: &dyn Operator, batches: &[RecordBatch]) -> String {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return String::new();
    }
    let all = concat_batches(&op.schema(), batches).expect("concat");
    let sort: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    let idx = lexsort_to_indices(&sort, None).expect("sort");
    let sorted = take_record_batch(&all, &idx).expect("take");
    pretty_format_batches(&[sorted])
        .expect("pretty")
        .to_string()
}

/// One step of feeding an operator.
enum Step {
    L(RecordBatch),
    R(RecordBatch),
    Wm(i64),
    Finish,
}

/// Runs `steps` and renders all the output.
fn run(op: &mut dyn Operator, steps: Vec<Step>) -> String {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::L(b) => op.process_side(0, &b, &mut out),
            Step::R(b) => op.process_side(1, &b, &mut out),
            Step::Wm(w) => op.process_watermark(w, &mut out),
            Step::Finish => op.finish(&mut out),
        }
        .expect("step");
    }
    render(op, &out)
}

fn lines(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_table(actual: &str, expected: &str) {
    assert_eq!(lines(actual), lines(expected), "\nactual:\n{actual}");
}

#[test]
fn inner_matches_at_both_ends_inclusive() {
    let mut j = op(JoinKind::Inner, 0, 60 * MIN);
    let out = run(
        j.as_mut(),
        vec![
            Step::L(left(&[(Some(1), 10 * MIN, "a")])),
            Step::R(right(&[
                (Some(1), 10 * MIN - 1, "before"),
                (Some(1), 10 * MIN, "lo"),
                (Some(1), 70 * MIN, "hi"),
                (Some(1), 70 * MIN + 1, "after"),
                (Some(2), 30 * MIN, "other key"),
            ])),
            Step::Finish,
        ],
    );
    assert_table(
        &out,
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 1    | 1970-01-01T00:10:00 | a   | 1    | 1970-01-01T00:10:00 | lo  |
        | 1    | 1970-01-01T00:10:00 | a   | 1    | 1970-01-01T01:10:00 | hi  |
        +------+---------------------+-----+------+---------------------+-----+",
    );
    assert_eq!(j.state_size(), StateSize::default());
}

#[test]
fn right_before_left_is_emitted_when_left_arrives() {
    let mut j = op(JoinKind::Inner, 0, 60 * MIN);
    let mut out = Vec::new();
    j.process_side(1, &right(&[(Some(7), 20 * MIN, "r")]), &mut out)
        .unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    assert_eq!(j.state_size().rows, 1);
    j.process_side(0, &left(&[(Some(7), 0, "l")]), &mut out)
        .unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 7    | 1970-01-01T00:00:00 | l   | 7    | 1970-01-01T00:20:00 | r   |
        +------+---------------------+-----+------+---------------------+-----+",
    );
    // Nothing is emitted twice.
    out.clear();
    j.process_watermark(i64::MAX, &mut out).unwrap();
    j.finish(&mut out).unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    assert_eq!(j.state_size(), StateSize::default());
}

#[test]
fn several_matches_per_key() {
    let mut j = op(JoinKind::Inner, 0, 10 * MIN);
    let out = run(
        j.as_mut(),
        vec![
            Step::L(left(&[
                (Some(1), 0, "a"),
                (Some(1), 5 * MIN, "b"),
                (Some(2), 0, "c"),
            ])),
            Step::R(right(&[
                (Some(1), 5 * MIN, "x"),
                (Some(1), 12 * MIN, "y"),
                (Some(2), 11 * MIN, "z"),
            ])),
            Step::L(left(&[(Some(1), 4 * MIN, "d")])),
        ],
    );
    assert_table(
        &out,
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 1    | 1970-01-01T00:00:00 | a   | 1    | 1970-01-01T00:05:00 | x   |
        | 1    | 1970-01-01T00:04:00 | d   | 1    | 1970-01-01T00:05:00 | x   |
        | 1    | 1970-01-01T00:04:00 | d   | 1    | 1970-01-01T00:12:00 | y   |
        | 1    | 1970-01-01T00:05:00 | b   | 1    | 1970-01-01T00:05:00 | x   |
        | 1    | 1970-01-01T00:05:00 | b   | 1    | 1970-01-01T00:12:00 | y   |
        +------+---------------------+-----+------+---------------------+-----+",
    );
}

#[test]
fn null_keys_never_match() {
    let steps = || {
        vec![
            Step::L(left(&[(None, 0, "null-l"), (Some(1), 0, "one")])),
            Step::R(right(&[(None, 0, "null-r"), (Some(1), 0, "one-r")])),
        ]
    };
    let mut inner = op(JoinKind::Inner, 0, 0);
    assert_table(
        &run(inner.as_mut(), steps()),
        "
        +------+---------------------+-----+------+---------------------+-------+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v   |
        +------+---------------------+-----+------+---------------------+-------+
        | 1    | 1970-01-01T00:00:00 | one | 1    | 1970-01-01T00:00:00 | one-r |
        +------+---------------------+-----+------+---------------------+-------+",
    );
    // Only the keyed rows are buffered.
    assert_eq!(inner.state_size().rows, 2);

    let mut left_join = op(JoinKind::Left, 0, 0);
    let mut out = Vec::new();
    left_join
        .process_side(
            0,
            &left(&[(None, 0, "null-l"), (Some(1), 0, "one")]),
            &mut out,
        )
        .unwrap();
    // The NULL-key left row can never match: it is emitted with NULLs right away.
    assert_table(
        &render(left_join.as_ref(), &out),
        "
        +------+---------------------+--------+------+------+-----+
        | o_id | o_ts                | o_v    | s_id | s_ts | s_v |
        +------+---------------------+--------+------+------+-----+
        |      | 1970-01-01T00:00:00 | null-l |      |      |     |
        +------+---------------------+--------+------+------+-----+",
    );
    assert_eq!(left_join.state_size().rows, 1);
    let rest = run(
        left_join.as_mut(),
        vec![
            Step::R(right(&[(None, 0, "null-r"), (Some(1), 0, "one-r")])),
            Step::Finish,
        ],
    );
    assert_table(
        &rest,
        "
        +------+---------------------+-----+------+---------------------+-------+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v   |
        +------+---------------------+-----+------+---------------------+-------+
        | 1    | 1970-01-01T00:00:00 | one | 1    | 1970-01-01T00:00:00 | one-r |
        +------+---------------------+-----+------+---------------------+-------+",
    );
    assert_eq!(left_join.state_size(), StateSize::default());
}

#[test]
fn negative_lower_bound() {
    // s.ts BETWEEN o.ts - INTERVAL '5' MINUTE AND o.ts
    let mut j = op(JoinKind::Inner, -5 * MIN, 0);
    let out = run(
        j.as_mut(),
        vec![
            Step::R(right(&[
                (Some(1), 5 * MIN - 1, "too early"),
                (Some(1), 5 * MIN, "lo"),
            ])),
            Step::L(left(&[(Some(1), 10 * MIN, "a")])),
            Step::R(right(&[
                (Some(1), 10 * MIN, "hi"),
                (Some(1), 10 * MIN + 1, "too late"),
            ])),
        ],
    );
    assert_table(
        &out,
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 1    | 1970-01-01T00:10:00 | a   | 1    | 1970-01-01T00:05:00 | lo  |
        | 1    | 1970-01-01T00:10:00 | a   | 1    | 1970-01-01T00:10:00 | hi  |
        +------+---------------------+-----+------+---------------------+-----+",
    );
    // Right rows go once wm > r.ts - lower = r.ts + 5 min; left rows once wm > l.ts.
    let mut out = Vec::new();
    j.process_watermark(10 * MIN, &mut out).unwrap();
    // Left 10:00 stays (10:00 is not < 10:00); right 04:59.999 goes (09:59.999 < 10:00),
    // right 05:00 stays (10:00 is not < 10:00).
    assert_eq!(j.state_size().rows, 4);
    j.process_watermark(10 * MIN + 1, &mut out).unwrap();
    // Left 10:00 < 10:00.001 goes; right 05:00 goes; 10:00 and 10:00.001 stay.
    assert_eq!(j.state_size().rows, 2);
    j.process_watermark(15 * MIN + 2, &mut out).unwrap();
    assert_eq!(j.state_size(), StateSize::default());
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
}

#[test]
fn left_unmatched_emitted_exactly_at_eviction() {
    let mut j = op(JoinKind::Left, 0, 60 * MIN);
    let mut out = Vec::new();
    j.process_side(
        0,
        &left(&[(Some(1), 10 * MIN, "lonely"), (Some(2), 10 * MIN, "paired")]),
        &mut out,
    )
    .unwrap();
    j.process_side(1, &right(&[(Some(2), 20 * MIN, "r")]), &mut out)
        .unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+--------+------+---------------------+-----+
        | o_id | o_ts                | o_v    | s_id | s_ts                | s_v |
        +------+---------------------+--------+------+---------------------+-----+
        | 2    | 1970-01-01T00:10:00 | paired | 2    | 1970-01-01T00:20:00 | r   |
        +------+---------------------+--------+------+---------------------+-----+",
    );
    assert_eq!(j.state_size().rows, 3);
    let full_bytes = j.state_size().bytes;
    assert!(full_bytes > 0);

    out.clear();
    // wm 20:00 evicts nothing (right row goes once wm > 20:00).
    j.process_watermark(20 * MIN, &mut out).unwrap();
    assert_eq!(j.state_size().rows, 3);
    // wm 20:00.001 evicts the right row only.
    j.process_watermark(20 * MIN + 1, &mut out).unwrap();
    assert_eq!(j.state_size().rows, 2);
    // wm 70:00 = l.ts + upper: the left rows can still match a right row at 70:00.
    j.process_watermark(70 * MIN, &mut out).unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    assert_eq!(j.state_size().rows, 2);

    j.process_watermark(70 * MIN + 1, &mut out).unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+--------+------+------+-----+
        | o_id | o_ts                | o_v    | s_id | s_ts | s_v |
        +------+---------------------+--------+------+------+-----+
        | 1    | 1970-01-01T00:10:00 | lonely |      |      |     |
        +------+---------------------+--------+------+------+-----+",
    );
    assert_eq!(j.state_size(), StateSize::default());
    out.clear();
    j.finish(&mut out).unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
}

#[test]
fn full_join_pads_both_sides_when_their_rows_are_evicted() {
    let mut j = op(JoinKind::Full, 0, 60 * MIN);
    let mut out = Vec::new();
    j.process_side(
        0,
        &left(&[(Some(1), 10 * MIN, "lonely"), (Some(2), 10 * MIN, "paired")]),
        &mut out,
    )
    .unwrap();
    j.process_side(
        1,
        &right(&[
            (Some(2), 20 * MIN, "r"),
            (Some(3), 30 * MIN, "orphan"),
            (None, 5 * MIN, "nokey"),
        ]),
        &mut out,
    )
    .unwrap();
    // The pair at once; a right row without key can never match: at once with NULLs.
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+--------+------+---------------------+-------+
        | o_id | o_ts                | o_v    | s_id | s_ts                | s_v   |
        +------+---------------------+--------+------+---------------------+-------+
        |      |                     |        |      | 1970-01-01T00:05:00 | nokey |
        | 2    | 1970-01-01T00:10:00 | paired | 2    | 1970-01-01T00:20:00 | r     |
        +------+---------------------+--------+------+---------------------+-------+",
    );
    out.clear();
    // A right row is done once the watermark is past r.ts - lower: 30:00 keeps the orphan.
    j.process_watermark(30 * MIN, &mut out).unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    j.process_watermark(30 * MIN + 1, &mut out).unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+------+-----+------+---------------------+--------+
        | o_id | o_ts | o_v | s_id | s_ts                | s_v    |
        +------+------+-----+------+---------------------+--------+
        |      |      |     | 3    | 1970-01-01T00:30:00 | orphan |
        +------+------+-----+------+---------------------+--------+",
    );
    out.clear();
    j.finish(&mut out).unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+--------+------+------+-----+
        | o_id | o_ts                | o_v    | s_id | s_ts | s_v |
        +------+---------------------+--------+------+------+-----+
        | 1    | 1970-01-01T00:10:00 | lonely |      |      |     |
        +------+---------------------+--------+------+------+-----+",
    );
    assert_eq!(j.state_size(), StateSize::default());
    // RIGHT pads only the right side; the oldest left row a held right row may have matched
    // (r.ts - upper) holds back commits.
    let mut r = op(JoinKind::Right, 0, 60 * MIN);
    r.process_side(1, &right(&[(Some(3), 90 * MIN, "x")]), &mut out)
        .unwrap();
    assert_eq!(r.oldest_held(), Some(30 * MIN));
}

#[test]
fn inner_eviction_emits_nothing_and_frees_state() {
    let mut j = op(JoinKind::Inner, 0, 60 * MIN);
    let mut out = Vec::new();
    j.process_side(0, &left(&[(Some(1), 0, "a"), (Some(2), 0, "b")]), &mut out)
        .unwrap();
    j.process_side(1, &right(&[(Some(3), 0, "c")]), &mut out)
        .unwrap();
    assert_eq!(j.state_size().rows, 3);
    j.process_watermark(1, &mut out).unwrap();
    assert_eq!(j.state_size().rows, 2);
    j.process_watermark(60 * MIN + 1, &mut out).unwrap();
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    assert_eq!(j.state_size(), StateSize::default());
}

#[test]
fn finish_emits_remaining_unmatched() {
    let mut j = op(JoinKind::Left, 0, 60 * MIN);
    let out = run(
        j.as_mut(),
        vec![
            Step::L(left(&[
                (Some(1), 0, "a"),
                (Some(1), 30 * MIN, "b"),
                (Some(2), 0, "c"),
            ])),
            Step::R(right(&[(Some(1), 61 * MIN, "x")])),
            Step::Wm(0),
            Step::Finish,
        ],
    );
    assert_table(
        &out,
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 1    | 1970-01-01T00:00:00 | a   |      |                     |     |
        | 1    | 1970-01-01T00:30:00 | b   | 1    | 1970-01-01T01:01:00 | x   |
        | 2    | 1970-01-01T00:00:00 | c   |      |                     |     |
        +------+---------------------+-----+------+---------------------+-----+",
    );
    assert_eq!(j.state_size(), StateSize::default());

    let mut inner = op(JoinKind::Inner, 0, 60 * MIN);
    let out = run(
        inner.as_mut(),
        vec![Step::L(left(&[(Some(1), 0, "a")])), Step::Finish],
    );
    assert_eq!(out, "");
    assert_eq!(inner.state_size(), StateSize::default());
}

#[test]
fn equal_timestamps() {
    let mut j = op(JoinKind::Inner, 0, 0);
    let out = run(
        j.as_mut(),
        vec![
            Step::L(left(&[
                (Some(1), 5, "a"),
                (Some(1), 5, "b"),
                (Some(1), 6, "c"),
            ])),
            Step::R(right(&[(Some(1), 5, "x"), (Some(1), 4, "y")])),
        ],
    );
    assert_table(
        &out,
        "
        +------+-------------------------+-----+------+-------------------------+-----+
        | o_id | o_ts                    | o_v | s_id | s_ts                    | s_v |
        +------+-------------------------+-----+------+-------------------------+-----+
        | 1    | 1970-01-01T00:00:00.005 | a   | 1    | 1970-01-01T00:00:00.005 | x   |
        | 1    | 1970-01-01T00:00:00.005 | b   | 1    | 1970-01-01T00:00:00.005 | x   |
        +------+-------------------------+-----+------+-------------------------+-----+",
    );
}

/// Rows of one side: (id, ts ms, v).
type SideRows = Vec<(Option<i64>, i64, &'static str)>;

/// A data set over a few keys, in arrival order per side.
fn mixed_data() -> (SideRows, SideRows) {
    let l = vec![
        (Some(1), 0, "l1"),
        (Some(2), 3 * MIN, "l2"),
        (Some(1), 10 * MIN, "l3"),
        (None, 4 * MIN, "l4"),
        (Some(3), 2 * MIN, "l5"),
        (Some(2), 20 * MIN, "l6"),
    ];
    let r = vec![
        (Some(1), 5 * MIN, "r1"),
        (Some(2), 25 * MIN, "r2"),
        (Some(1), 15 * MIN, "r3"),
        (None, 5 * MIN, "r4"),
        (Some(2), 3 * MIN, "r5"),
        (Some(4), 3 * MIN, "r6"),
    ];
    (l, r)
}

#[test]
fn interleavings_and_batchings_agree() {
    let (l, r) = mixed_data();
    let expected = "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        |      | 1970-01-01T00:04:00 | l4  |      |                     |     |
        | 1    | 1970-01-01T00:00:00 | l1  | 1    | 1970-01-01T00:05:00 | r1  |
        | 1    | 1970-01-01T00:10:00 | l3  | 1    | 1970-01-01T00:15:00 | r3  |
        | 2    | 1970-01-01T00:03:00 | l2  | 2    | 1970-01-01T00:03:00 | r5  |
        | 2    | 1970-01-01T00:20:00 | l6  | 2    | 1970-01-01T00:25:00 | r2  |
        | 3    | 1970-01-01T00:02:00 | l5  |      |                     |     |
        +------+---------------------+-----+------+---------------------+-----+";
    let one = |rows: &[(Option<i64>, i64, &str)], is_left: bool| {
        if is_left {
            Step::L(left(rows))
        } else {
            Step::R(right(rows))
        }
    };
    let mut variants: Vec<(&str, Vec<Step>)> = Vec::new();
    variants.push((
        "left first",
        vec![one(&l, true), one(&r, false), Step::Finish],
    ));
    variants.push((
        "right first",
        vec![one(&r, false), one(&l, true), Step::Finish],
    ));
    let mut alternating = Vec::new();
    for (a, b) in l.iter().zip(&r) {
        alternating.push(one(std::slice::from_ref(a), true));
        alternating.push(one(std::slice::from_ref(b), false));
    }
    alternating.push(Step::Finish);
    variants.push(("row by row, left first", alternating));
    let mut alternating = Vec::new();
    for (a, b) in l.iter().zip(&r) {
        alternating.push(one(std::slice::from_ref(b), false));
        alternating.push(one(std::slice::from_ref(a), true));
    }
    alternating.push(Step::Finish);
    variants.push(("row by row, right first", alternating));
    variants.push((
        "split batches",
        vec![
            one(&r[..2], false),
            one(&l[..4], true),
            one(&r[2..], false),
            one(&l[4..], true),
            Step::Finish,
        ],
    ));
    for (name, steps) in variants {
        let mut j = op(JoinKind::Left, 0, 10 * MIN);
        let out = run(j.as_mut(), steps);
        assert_eq!(lines(&out), lines(expected), "{name}:\n{out}");
        assert_eq!(j.state_size(), StateSize::default(), "{name}");
    }
}

#[test]
fn compaction_frees_memory_and_keeps_rows_addressable() {
    let mut j = op(JoinKind::Left, 0, 10 * MIN);
    let mut out = Vec::new();
    // 100 left rows at minutes 0..100, keys 0..4, in 10 batches.
    for chunk in 0..10 {
        let rows: Vec<(Option<i64>, i64, String)> = (0..10)
            .map(|i| {
                let n = chunk * 10 + i;
                (Some(n % 5), n * MIN, format!("l{n}"))
            })
            .collect();
        let rows: Vec<(Option<i64>, i64, &str)> =
            rows.iter().map(|(k, t, v)| (*k, *t, v.as_str())).collect();
        j.process_side(0, &left(&rows), &mut out).unwrap();
    }
    assert_eq!(out, Vec::<RecordBatch>::new(), "no batch at all");
    let before = j.state_size();
    assert_eq!(before.rows, 100);
    // Evicts left rows with ts + 10 min < 80 min: minutes 0..69.
    j.process_watermark(80 * MIN, &mut out).unwrap();
    let after = j.state_size();
    assert_eq!(after.rows, 30);
    assert!(after.bytes < before.bytes / 2, "{before:?} -> {after:?}");
    let evicted: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(evicted, 70);
    // The surviving (compacted) rows still join correctly.
    out.clear();
    j.process_side(1, &right(&[(Some(3), 85 * MIN, "r")]), &mut out)
        .unwrap();
    assert_table(
        &render(j.as_ref(), &out),
        "
        +------+---------------------+-----+------+---------------------+-----+
        | o_id | o_ts                | o_v | s_id | s_ts                | s_v |
        +------+---------------------+-----+------+---------------------+-----+
        | 3    | 1970-01-01T01:18:00 | l78 | 3    | 1970-01-01T01:25:00 | r   |
        | 3    | 1970-01-01T01:23:00 | l83 | 3    | 1970-01-01T01:25:00 | r   |
        +------+---------------------+-----+------+---------------------+-----+",
    );
    out.clear();
    j.finish(&mut out).unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 28);
    assert_eq!(j.state_size(), StateSize::default());
}

#[test]
fn describe_and_metadata() {
    let j = op(JoinKind::Left, 0, 60 * MIN);
    assert_eq!(j.name(), "interval_join");
    assert!(!j.is_stateless());
    assert_eq!(
        j.describe(),
        "IntervalJoin: LEFT keys=[0]=[0] right.s_ts BETWEEN left.o_ts + 0ms AND left.o_ts + 3600000ms"
    );
    assert_eq!(j.schema().fields().len(), 6);
    let j = op(JoinKind::Inner, -5 * MIN, 0);
    assert_eq!(
        j.describe(),
        "IntervalJoin: INNER keys=[0]=[0] right.s_ts BETWEEN left.o_ts - 300000ms AND left.o_ts + 0ms"
    );
}

#[test]
fn invalid_specs_and_batches_are_errors() {
    let bad = |f: &dyn Fn(&mut IntervalJoinSpec)| {
        let mut s = spec(JoinKind::Inner, 0, 1).as_ref().clone();
        f(&mut s);
        interval_join_operator(Arc::new(s)).err()
    };
    assert!(bad(&|s| s.right_keys = vec![2]).is_some()); // Int64 vs Utf8
    assert!(bad(&|s| s.right_keys = vec![]).is_some());
    assert!(bad(&|s| s.left_time = 0).is_some()); // not a timestamp
    assert!(bad(&|s| s.right_time = 9).is_some());
    assert!(bad(&|s| s.lower_ms = 2).is_some());
    assert!(bad(&|s| s.kind = JoinKind::Left).is_some()); // right output fields not nullable
    assert!(bad(&|_| {}).is_none());

    let mut j = op(JoinKind::Inner, 0, 1);
    let mut out = Vec::new();
    // A right-shaped batch with the wrong types on the left side, and an unknown side.
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["a"]))],
    )
    .unwrap();
    assert!(j.process_side(0, &wrong, &mut out).is_err());
    assert!(
        j.process_side(2, &left(&[(Some(1), 0, "a")]), &mut out)
            .is_err()
    );
}

/// A tiny deterministic pseudo-random generator (no dependency needed).
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

/// (left v, right v or None) of every output row, sorted.
fn pairs(batches: &[RecordBatch]) -> Vec<(String, Option<String>)> {
    let mut v = Vec::new();
    for b in batches {
        let l = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        let r = b.column(5).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let rv = (!r.is_null(i)).then(|| r.value(i).to_string());
            v.push((l.value(i).to_string(), rv));
        }
    }
    v.sort();
    v
}

#[test]
fn random_streams_with_watermarks_match_nested_loop() {
    const BOUND: i64 = 7_000; // max out-of-orderness per side, ms
    for seed in 0..20u64 {
        let mut rng = Lcg(seed);
        let (lower, upper) = match seed % 3 {
            0 => (0, 5_000),
            1 => (-4_000, 2_000),
            _ => (-3_000, -1_000),
        };
        let kind = if seed % 2 == 0 {
            JoinKind::Left
        } else {
            JoinKind::Inner
        };
        // Per side: times = a rising base plus jitter below BOUND, so none is late.
        let gen_side = |rng: &mut Lcg, prefix: &str, n: usize| {
            let mut base = 0i64;
            (0..n)
                .map(|i| {
                    base += rng.next(1_500) as i64;
                    let key = match rng.next(6) {
                        0 => None,
                        k => Some(k as i64),
                    };
                    let t = base + rng.next(BOUND as u64) as i64;
                    (key, t, format!("{prefix}{i}"))
                })
                .collect::<Vec<_>>()
        };
        let ls = gen_side(&mut rng, "l", 60);
        let rs = gen_side(&mut rng, "r", 60);

        // Nested-loop reference.
        let mut expected = Vec::new();
        for l in &ls {
            let mut matched = false;
            for r in &rs {
                if l.0.is_some() && l.0 == r.0 && r.1 - l.1 >= lower && r.1 - l.1 <= upper {
                    matched = true;
                    expected.push((l.2.clone(), Some(r.2.clone())));
                }
            }
            if !matched && kind == JoinKind::Left {
                expected.push((l.2.clone(), None));
            }
        }
        expected.sort();

        // Feed in random interleavings and batch sizes, with the watermark after each batch.
        let mut j = op(kind, lower, upper);
        let mut out = Vec::new();
        let (mut li, mut ri) = (0, 0);
        let (mut lmax, mut rmax) = (i64::MIN, i64::MIN);
        let mut max_rows = 0;
        while li < ls.len() || ri < rs.len() {
            let take_left = ri == rs.len() || (li < ls.len() && rng.next(2) == 0);
            let n = 1 + rng.next(5) as usize;
            let (src, idx, max) = if take_left {
                (&ls, &mut li, &mut lmax)
            } else {
                (&rs, &mut ri, &mut rmax)
            };
            let end = (*idx + n).min(src.len());
            let rows: Vec<(Option<i64>, i64, &str)> = src[*idx..end]
                .iter()
                .map(|(k, t, v)| (*k, *t, v.as_str()))
                .collect();
            *idx = end;
            *max = rows.iter().map(|r| r.1).fold(*max, i64::max);
            let b = if take_left { left(&rows) } else { right(&rows) };
            j.process_side(if take_left { 0 } else { 1 }, &b, &mut out)
                .unwrap();
            // A side that ended counts as +inf.
            let lw = if li == ls.len() {
                i64::MAX
            } else {
                lmax.saturating_sub(BOUND)
            };
            let rw = if ri == rs.len() {
                i64::MAX
            } else {
                rmax.saturating_sub(BOUND)
            };
            j.process_watermark(lw.min(rw), &mut out).unwrap();
            max_rows = max_rows.max(j.state_size().rows);
        }
        j.finish(&mut out).unwrap();
        assert_eq!(pairs(&out), expected, "seed {seed}");
        assert!(out.iter().all(|b| b.num_rows() > 0));
        // ~100 keyed rows in all; eviction keeps far fewer buffered at any time.
        assert!(
            max_rows <= 60,
            "seed {seed}: state peaked at {max_rows} rows"
        );
        assert_eq!(j.state_size(), StateSize::default());
    }
}

#[test]
fn multi_column_string_keys() {
    let schema = |p: &str| {
        Arc::new(Schema::new(vec![
            Field::new(format!("{p}_a"), DataType::Utf8, true),
            Field::new(format!("{p}_ts"), ts_type(), false),
            Field::new(format!("{p}_b"), DataType::Int64, true),
        ]))
    };
    let (l, r) = (schema("o"), schema("s"));
    let fields: Vec<Field> = l
        .fields()
        .iter()
        .chain(r.fields().iter())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let spec = Arc::new(IntervalJoinSpec {
        kind: JoinKind::Left,
        left_schema: Arc::clone(&l),
        right_schema: Arc::clone(&r),
        left_keys: vec![0, 2],
        right_keys: vec![0, 2],
        left_time: 1,
        right_time: 1,
        lower_ms: -10,
        upper_ms: 10,
        output_schema: Arc::new(Schema::new(fields)),
        left_out: l.fields().len(),
        right_out: r.fields().len(),
    });
    let mut j = interval_join_operator(spec).unwrap();
    let mk = |s: &SchemaRef, a: Vec<Option<&str>>, b: Vec<Option<i64>>| {
        let n = a.len() as i64;
        RecordBatch::try_new(
            Arc::clone(s),
            vec![
                Arc::new(StringArray::from(a)),
                Arc::new(TimestampMillisecondArray::from_iter_values(0..n)),
                Arc::new(Int64Array::from(b)),
            ],
        )
        .unwrap()
    };
    let out = run(
        j.as_mut(),
        vec![
            Step::L(mk(
                &l,
                vec![Some("x"), Some("x"), Some("y"), None],
                vec![Some(1), Some(2), Some(1), Some(1)],
            )),
            Step::R(mk(
                &r,
                vec![Some("x"), Some("x"), None, Some("y")],
                vec![Some(2), None, Some(1), Some(1)],
            )),
            Step::Finish,
        ],
    );
    assert_table(
        &out,
        "
        +-----+-------------------------+-----+-----+-------------------------+-----+
        | o_a | o_ts                    | o_b | s_a | s_ts                    | s_b |
        +-----+-------------------------+-----+-----+-------------------------+-----+
        |     | 1970-01-01T00:00:00.003 | 1   |     |                         |     |
        | x   | 1970-01-01T00:00:00     | 1   |     |                         |     |
        | x   | 1970-01-01T00:00:00.001 | 2   | x   | 1970-01-01T00:00:00     | 2   |
        | y   | 1970-01-01T00:00:00.002 | 1   | y   | 1970-01-01T00:00:00.003 | 1   |
        +-----+-------------------------+-----+-----+-------------------------+-----+",
    );
}

/// Left rows, right rows and a watermark fed before a restart at 20:00, or after it (the
/// rows read again from committed offsets).
fn around_a_restart(resumed: Option<i64>) -> String {
    let mut j = op(JoinKind::Left, 0, 10 * MIN);
    if let Some(w) = resumed {
        j.resume_after(w);
    }
    run(
        j.as_mut(),
        vec![
            Step::L(left(&[
                (Some(1), 5 * MIN, "both before"),
                (Some(2), 15 * MIN, "straddles"),
                (Some(3), 25 * MIN, "after"),
                (Some(4), 8 * MIN, "lonely, done before"),
                (Some(5), 12 * MIN, "lonely, open at 20:00"),
                (None, 3 * MIN, "no key, before"),
                (None, 30 * MIN, "no key, after"),
            ])),
            Step::R(right(&[
                (Some(1), 10 * MIN, "r1"),
                (Some(2), 21 * MIN, "r2"),
                (Some(3), 30 * MIN, "r3"),
            ])),
            Step::Wm(19 * MIN),
            Step::Finish,
        ],
    )
}

/// Read again after a restart, rows before the watermark through which results were
/// written rebuild the state but emit nothing twice: not the pair of two such rows (it was
/// emitted when its second row arrived, before the watermark passed), not the left row
/// that could only match such rows (it was emitted unmatched at its eviction), not a left
/// row without key. A left row matched only by a pair not emitted again is still matched.
#[test]
fn after_a_restart_results_of_rows_before_the_written_watermark_are_not_emitted_again() {
    assert_table(
        &around_a_restart(None),
        "
        +------+---------------------+-----------------------+------+---------------------+-----+
        | o_id | o_ts                | o_v                   | s_id | s_ts                | s_v |
        +------+---------------------+-----------------------+------+---------------------+-----+
        |      | 1970-01-01T00:03:00 | no key, before        |      |                     |     |
        |      | 1970-01-01T00:30:00 | no key, after         |      |                     |     |
        | 1    | 1970-01-01T00:05:00 | both before           | 1    | 1970-01-01T00:10:00 | r1  |
        | 2    | 1970-01-01T00:15:00 | straddles             | 2    | 1970-01-01T00:21:00 | r2  |
        | 3    | 1970-01-01T00:25:00 | after                 | 3    | 1970-01-01T00:30:00 | r3  |
        | 4    | 1970-01-01T00:08:00 | lonely, done before   |      |                     |     |
        | 5    | 1970-01-01T00:12:00 | lonely, open at 20:00 |      |                     |     |
        +------+---------------------+-----------------------+------+---------------------+-----+",
    );
    assert_table(
        &around_a_restart(Some(20 * MIN)),
        "
        +------+---------------------+-----------------------+------+---------------------+-----+
        | o_id | o_ts                | o_v                   | s_id | s_ts                | s_v |
        +------+---------------------+-----------------------+------+---------------------+-----+
        |      | 1970-01-01T00:30:00 | no key, after         |      |                     |     |
        | 2    | 1970-01-01T00:15:00 | straddles             | 2    | 1970-01-01T00:21:00 | r2  |
        | 3    | 1970-01-01T00:25:00 | after                 | 3    | 1970-01-01T00:30:00 | r3  |
        | 5    | 1970-01-01T00:12:00 | lonely, open at 20:00 |      |                     |     |
        +------+---------------------+-----------------------+------+---------------------+-----+",
    );
}

/// A LEFT join with a negative lower bound: a held left row at 20:00 matched a right row
/// at 12:00 that the watermark evicts first (at 22:00.001). The right row must not be
/// committed while the left row is held: read again after a restart without it, the left
/// row would be emitted as unmatched. An inner join needs no such care.
#[test]
fn a_left_join_holds_back_the_commit_of_right_rows_a_held_left_row_matched() {
    for (kind, oldest) in [(JoinKind::Left, 10 * MIN), (JoinKind::Inner, 20 * MIN)] {
        let mut j = op(kind, -10 * MIN, 5 * MIN);
        let out = run(
            j.as_mut(),
            vec![
                Step::L(left(&[(Some(1), 20 * MIN, "l")])),
                Step::R(right(&[(Some(1), 12 * MIN, "r")])),
                Step::Wm(23 * MIN),
            ],
        );
        assert_eq!(lines(&out).lines().count(), 5, "one pair: {out}");
        assert_eq!(
            j.state_size().rows,
            1,
            "{kind:?}: only the left row is held"
        );
        assert_eq!(j.oldest_held(), Some(oldest), "{kind:?}");
    }
}

/// With a negative upper bound (right rows strictly before left ones) a left row after the
/// restart watermark can only match right rows before it, yet it arrived after the
/// watermark: whether it went out unmatched before the restart is unknown, so it goes out
/// again. A left row before the watermark does not.
#[test]
fn after_a_restart_a_left_row_after_the_written_watermark_is_emitted_whatever_its_bounds() {
    let mut j = op(JoinKind::Left, -10 * MIN, -5 * MIN);
    j.resume_after(20 * MIN);
    let out = run(
        j.as_mut(),
        vec![
            Step::L(left(&[
                (Some(1), 19 * MIN, "before"),
                (Some(2), 22 * MIN, "after, bound 17:00"),
            ])),
            Step::Wm(30 * MIN),
        ],
    );
    assert_table(
        &out,
        "
        +------+---------------------+--------------------+------+------+-----+
        | o_id | o_ts                | o_v                | s_id | s_ts | s_v |
        +------+---------------------+--------------------+------+------+-----+
        | 2    | 1970-01-01T00:22:00 | after, bound 17:00 |      |      |     |
        +------+---------------------+--------------------+------+------+-----+",
    );
}
