//! At-least-once over a real Kafka-protocol broker: a job killed with SIGKILL and restarted
//! loses no row, repeats only what was not committed, and never emits a partial window.

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `ferris-cli run -e sql extra --set commit.interval.ms=50` until `group` has committed
/// at least `threshold` offsets of `topic` (over `partitions` partitions), kills it with
/// SIGKILL and returns the committed offsets at that point.
fn run_until_committed_then_kill(
    broker: &Broker,
    sql: &str,
    extra: &[&str],
    (group, topic, partitions): (&str, &str, i32),
    threshold: i64,
) -> BTreeMap<i32, i64> {
    run_until_committed_then_stop(
        broker,
        sql,
        extra,
        (group, topic, partitions),
        threshold,
        "-KILL",
    )
}

/// Like [`run_until_committed_then_kill`], stopping the process with `signal` (`-KILL` or
/// `-TERM`) and waiting for it to exit.
fn run_until_committed_then_stop(
    broker: &Broker,
    sql: &str,
    extra: &[&str],
    (group, topic, partitions): (&str, &str, i32),
    threshold: i64,
    signal: &str,
) -> BTreeMap<i32, i64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", sql])
        .args(extra)
        .args(["--set", "commit.interval.ms=50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferris-cli starts");
    let started = Instant::now();
    loop {
        let committed: i64 = broker.committed(group, topic, partitions).values().sum();
        if committed >= threshold {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            // A stop reports what the job read and wrote (given `--stats`).
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(15));
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{committed} offsets committed after 60 s; log:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if child.try_wait().expect("status").is_some() {
            let out = child.wait_with_output().expect("output");
            panic!("exited early: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("reaped");
    if signal == "-TERM" {
        assert!(status.success(), "{status}");
    }
    broker.committed(group, topic, partitions)
}

#[test]
fn killed_mid_run_and_restarted_every_row_arrives_and_only_the_uncommitted_tail_repeats() {
    let broker = Broker::started();
    broker.create_topic("orders", 6);
    broker.create_topic("big_orders", 3);
    let n = 6000;
    broker.produce("orders", &trades(n));
    // Where each input id sits.
    let input = broker.consume_records("orders", 6);
    assert_eq!(input.len(), n);
    let position: BTreeMap<i64, (i32, i64)> = input
        .iter()
        .map(|r| (id_of(&r.value), (r.partition, r.offset)))
        .collect();
    let expected: Vec<i64> = input
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
            (id_of(&r.value), v["volume"].as_i64().expect("volume"))
        })
        .filter(|(_, volume)| *volume > 100)
        .map(|(id, _)| id)
        .collect();

    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
               ts TIMESTAMP)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
                   'group.id' = 'alo', 'format' = 'json', 'batch.size' = '100' {bounded});
             CREATE STREAM big_orders WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'big_orders', 'format' = 'json', 'key' = 'symbol',
                 'sink.rows.per.second' = '1000') AS
               SELECT id, symbol, price, volume FROM orders WHERE volume > 100;",
            b = broker.address
        )
    };
    // First run: unbounded, slowed by its sink; killed with SIGKILL once about a quarter of
    // the input is committed (the sink takes about 5 s for the whole input).
    let at_kill = run_until_committed_then_kill(
        &broker,
        &sql(""),
        &["--parallelism", "2"],
        ("alo", "orders", 6),
        (n / 4) as i64,
    );
    let committed: i64 = at_kill.values().sum();
    assert!(committed < n as i64, "killed before the end: {committed}");

    // Second run: resumes from the committed offsets and stops at the end of the topic.
    cli_ok(&sql(", 'scan.bounded' = 'latest'"), &["--parallelism", "2"]);
    // Everything is committed now.
    let done = broker.committed("alo", "orders", 6);
    // (Partitions that never held a message have nothing to commit.)
    let ends: BTreeMap<i32, i64> = (0..6)
        .map(|p| {
            let last = input.iter().filter(|r| r.partition == p).count() as i64;
            (p, last)
        })
        .filter(|(_, last)| *last > 0)
        .collect();
    assert_eq!(done, ends);

    let output = broker.consume_records("big_orders", 3);
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &output {
        *seen.entry(id_of(&r.value)).or_default() += 1;
    }
    // Every selected row is there, and nothing else.
    let mut ids: Vec<i64> = seen.keys().copied().collect();
    let mut want = expected.clone();
    want.sort();
    ids.sort();
    assert_eq!(ids, want);
    // A row appears twice only if it sat past its partition's committed offset at the kill.
    for (id, count) in &seen {
        assert!(*count <= 2, "id {id} written {count} times");
        if *count == 2 {
            let (p, offset) = position[id];
            let committed = at_kill.get(&p).copied().unwrap_or(0);
            assert!(
                offset >= committed,
                "id {id} at {p}/{offset} was committed ({committed}) yet written twice"
            );
        }
    }
    let duplicates = output.len() - expected.len();
    let uncommitted = n as i64 - committed;
    assert!(
        (duplicates as i64) <= uncommitted,
        "{duplicates} duplicates, {uncommitted} uncommitted rows"
    );
}

#[test]
fn a_windowed_query_killed_and_restarted_never_emits_a_partial_window() {
    let seen = windowed_stop_and_restart("-KILL");
    assert!(seen.values().all(|n| *n <= 2), "{seen:?}");
}

/// SIGTERM drops the open windows instead of emitting them (their rows are not committed)
/// and commits what was written: the restart writes every window exactly once. Before,
/// the stop emitted the open windows with the rows read so far.
#[test]
fn a_windowed_query_stopped_with_sigterm_and_restarted_writes_every_window_once() {
    let seen = windowed_stop_and_restart("-TERM");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

/// Runs a windowed query over 6,000 ticks, stops it with `signal` once 2,000 offsets are
/// committed, and runs it again to the end. Every window written must be whole; returns
/// how often each was written.
fn windowed_stop_and_restart(signal: &str) -> BTreeMap<(String, i64), usize> {
    let broker = Broker::started();
    broker.create_topic("ticks", 1);
    broker.create_topic("bars", 1);
    // 6000 ticks 100 ms apart (10 minutes); every 40th is 30 s behind, below the watermark:
    // late (dropped) when its minute has already closed, counted while it is open.
    let symbols = ["AAPL", "MSFT", "GOOG", "IBM"];
    let base = 1_704_067_200_000i64;
    let mut messages = Vec::new();
    // (symbol, minute) → (count, sum of cents) over the ticks that are not late.
    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    let mut max_ts = i64::MIN;
    let mut late_ticks = 0;
    for i in 0..6000i64 {
        let symbol = symbols[(i % 4) as usize];
        let cents = 10_000 + (i * 7) % 500;
        let behind = i % 40 == 39;
        let ts = base + i * 100 - if behind { 30_000 } else { 0 };
        let window_end = base + ((ts - base).div_euclid(60_000) + 1) * 60_000;
        let late = window_end <= max_ts.saturating_sub(1_000);
        max_ts = max_ts.max(ts);
        late_ticks += i64::from(late);
        messages.push((
            symbol.to_string(),
            format!(
                "{{\"symbol\":\"{symbol}\",\"price\":{}.{:02},\"ts\":{ts}}}",
                cents / 100,
                cents % 100
            ),
        ));
        if !late {
            let e = expected
                .entry((symbol.to_string(), (ts - base) / 60_000))
                .or_default();
            e.0 += 1;
            e.1 += cents;
        }
    }
    // Of the 150 ticks 30 s behind, 80 fall in a minute that is still open.
    assert_eq!(late_ticks, 70);
    broker.produce("ticks", &messages);
    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'ticks',
                   'group.id' = 'bars', 'partitions' = 'all', 'format' = 'json', 'batch.size' = '50' {bounded});
             CREATE STREAM bars WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'bars', 'format' = 'json', 'key' = 'symbol') AS
               SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total
               FROM ticks GROUP BY symbol WINDOW TUMBLING(1m);
             CREATE STREAM slow WITH ('connector' = 'blackhole',
                 'sink.rows.per.second' = '1500') AS SELECT symbol FROM ticks;",
            b = broker.address
        )
    };
    let committed: i64 =
        run_until_committed_then_stop(&broker, &sql(""), &[], ("bars", "ticks", 1), 2000, signal)
            .values()
            .sum();
    assert!(committed < 6000, "stopped before the end: {committed}");

    cli_ok(&sql(", 'scan.bounded' = 'latest'"), &[]);
    // Every window is there, and every copy of it is complete: windows emitted before the
    // kill are emitted again at most whole, never from the replayed rows alone.
    let mut seen: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in broker.consume_records("bars", 1) {
        let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
        let symbol = v["symbol"].as_str().expect("symbol").to_string();
        let ws = v["ws"].as_str().expect("ws");
        let minute = i64::from(ws[14..16].parse::<u8>().expect("minute"));
        // The JSON number is read as a float; at this size cents are exact.
        let total = (v["total"].as_f64().expect("total") * 100.0).round() as i64;
        let (count, cents) = expected[&(symbol.clone(), minute)];
        assert_eq!(
            (v["n"].as_i64().expect("n"), total),
            (count, cents),
            "window {symbol} minute {minute}: {v}"
        );
        *seen.entry((symbol, minute)).or_default() += 1;
    }
    let windows: Vec<_> = seen.keys().cloned().collect();
    let want: Vec<_> = expected.keys().cloned().collect();
    assert_eq!(windows, want);
    seen
}

#[test]
fn stopped_with_sigterm_and_restarted_every_row_arrives_exactly_once() {
    let broker = Broker::started();
    broker.create_topic("orders", 3);
    broker.create_topic("big", 3);
    let input = trades(4000);
    broker.produce("orders", &input);
    let expected = selected_ids(&input);
    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
               ts TIMESTAMP)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
                   'group.id' = 'term', 'partitions' = 'all', 'channel.capacity' = '100', 'batch.size' = '50'
                   {bounded});
             CREATE STREAM big WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'big', 'key' = 'symbol', 'sink.rows.per.second' = '500') AS
               SELECT id, symbol, volume FROM orders WHERE volume > 100;",
            b = broker.address
        )
    };
    let written = |broker: &Broker| broker.consume_records("big", 3).len();
    // First run: follows the topic; SIGTERM once 1,000 rows are out (of 3,200, written at
    // most 500 a second: 4 s before the first run could have written them all).
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("first.log");
    let mut first = spawn_cli_logged(&sql(""), &[], &log);
    let started = Instant::now();
    while written(&broker) < 1000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no output: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = first.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "{status}: {text}");
    let after_first = written(&broker);
    assert!(
        after_first < expected.len(),
        "the first run was meant to stop early ({after_first} rows)"
    );
    // Second run: from the committed offsets to the end.
    cli_ok(&sql(", 'scan.bounded' = 'latest'"), &[]);
    // A clean stop drains and commits everything it read: nothing lost, nothing twice.
    let mut ids: Vec<i64> = broker
        .consume_records("big", 3)
        .iter()
        .map(|r| id_of(&r.value))
        .collect();
    ids.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(ids, expected);
}

/// A LEFT interval join stopped with SIGTERM and run again from its committed offsets. Its
/// state holds two minutes of rows, all read again after the restart. A match of two rows
/// before the watermark through which the first run wrote its results is not written
/// again (before, every match among the rows read again was), and a matched order is never
/// written as unmatched (its fill, 40 s before it, is not committed while the order is
/// held).
#[test]
fn a_left_join_stopped_and_restarted_writes_again_only_matches_after_the_written_watermark() {
    let broker = Broker::started();
    // One partition each: commits follow event time closely (a slot of a multi-partition
    // source settles only after the slots read before it, of any partition).
    for topic in ["orders", "fills", "matched"] {
        broker.create_topic(topic, 1);
    }
    // Order i at i × 200 ms (10 minutes); two of three get a fill 40 s before to 40 s
    // after them (written in time order, so none is late).
    let base = 1_704_067_200_000i64;
    let n = 3000i64;
    let order_ts = |i: i64| base + i * 200;
    let fill_ts = |i: i64| order_ts(i) + (i % 5 - 2) * 20_000;
    let orders: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                i.to_string(),
                format!("{{\"id\":{i},\"ts\":{}}}", order_ts(i)),
            )
        })
        .collect();
    let mut fills: Vec<(i64, String, String)> = (0..n)
        .filter(|i| i % 3 != 0)
        .map(|i| {
            let v = format!("{{\"id\":{i},\"qty\":{},\"ts\":{}}}", i % 7 + 1, fill_ts(i));
            (fill_ts(i), i.to_string(), v)
        })
        .collect();
    fills.sort();
    broker.produce("orders", &orders);
    let fills: Vec<(String, String)> = fills.into_iter().map(|(_, k, v)| (k, v)).collect();
    broker.produce("fills", &fills);
    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM orders (id BIGINT, ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
                   'group.id' = 'jo', 'partitions' = 'all', 'batch.size' = '50' {bounded});
             CREATE STREAM fills (id BIGINT, qty BIGINT, ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'fills',
                   'group.id' = 'jf', 'partitions' = 'all', 'batch.size' = '50' {bounded});
             CREATE STREAM matched WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'matched', 'sink.rows.per.second' = '1000') AS
               SELECT o.id, f.qty FROM orders o LEFT JOIN fills f
                 ON o.id = f.id
                 AND f.ts BETWEEN o.ts - INTERVAL '1' MINUTE AND o.ts + INTERVAL '1' MINUTE;",
            b = broker.address
        )
    };
    let committed: i64 =
        run_until_committed_then_stop(&broker, &sql(""), &[], ("jo", "orders", 1), 1000, "-TERM")
            .values()
            .sum();
    assert!(committed < n, "stopped before the end: {committed}");
    // The watermark the second run resumes from: the largest the first one stored, through
    // either source.
    let written_through = ["jo", "jf"]
        .iter()
        .flat_map(|group| broker.consume_records(&format!("{group}.ferris-progress"), 1))
        .filter(|r| r.key == "query/matched")
        .map(|r| r.value.parse::<i64>().expect("stored watermark"))
        .max()
        .expect("a written-through watermark was stored");
    // (Past the last order once the orders went idle and the fills alone moved it on.)
    assert!(written_through > order_ts(100), "stored: {written_through}");
    cli_ok(&sql(", 'scan.bounded' = 'latest'"), &[]);

    let mut seen: BTreeMap<(i64, Option<i64>), usize> = BTreeMap::new();
    for r in broker.consume_records("matched", 1) {
        let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
        *seen
            .entry((v["id"].as_i64().expect("id"), v["qty"].as_i64()))
            .or_default() += 1;
    }
    let want: Vec<(i64, Option<i64>)> = (0..n)
        .map(|i| (i, (i % 3 != 0).then_some(i % 7 + 1)))
        .collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), want);
    // Written again: only results the first run may have written after the watermark it
    // stored (a match whose later row is at or after it; an unmatched order that could
    // still match a fill at or after it).
    let repeated: Vec<(i64, Option<i64>)> = seen
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(row, _)| *row)
        .collect();
    for &(i, qty) in &repeated {
        let last = match qty {
            Some(_) => order_ts(i).max(fill_ts(i)),
            None => order_ts(i) + 60_000,
        };
        assert!(
            last >= written_through,
            "order {i} written {} times, though done before {written_through}",
            seen[&(i, qty)]
        );
    }
    eprintln!(
        "{} of {} rows written again; written through order {}",
        repeated.len(),
        want.len(),
        (written_through - base) / 200
    );
}
