//! Kafka end to end against a real Kafka-protocol broker on loopback (see `kafka_support`):
//! round trip, windows over partitions, dead letters, errors.

mod kafka_support;

use kafka_support::*;
use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn kafka_round_trip_filter_projection_keeps_partition_order() {
    let broker = Broker::started();
    broker.create_topic("trades", 6);
    broker.create_topic("big", 6);
    let input = trades(3000);
    broker.produce("trades", &input);

    let sql = format!(
        "CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'trades',
               'group.id' = 'round-trip', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest');
         CREATE STREAM big WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'big', 'format' = 'json', 'key' = 'symbol') AS
           SELECT id, symbol, price * volume AS notional FROM trades WHERE volume > 250;",
        b = broker.address
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", &sql, "--parallelism", "2", "--stats"])
        .output()
        .expect("ferris-cli runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Expected: per input partition, the filtered rows in order; the output is keyed by
    // symbol like the input, so it lands in the same partition numbers.
    let read_back_input = broker.consume_all("trades", 6);
    let output = broker.consume_all("big", 6);
    let mut expected: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    let mut total = 0;
    for (p, rows) in &read_back_input {
        for (key, value) in rows {
            let v: serde_json::Value = serde_json::from_str(value).expect("json");
            let volume = v["volume"].as_i64().expect("volume");
            if volume > 250 {
                let price: rust_decimal_like::Dec =
                    v["price"].as_str().expect("price").parse().expect("dec");
                let notional = price.mul_int(volume);
                expected.entry(*p).or_default().push((
                    key.clone(),
                    format!(
                        "{{\"id\":{},\"symbol\":\"{}\",\"notional\":{}}}",
                        v["id"], key, notional
                    ),
                ));
                total += 1;
            }
        }
    }
    let sizes: Vec<usize> = read_back_input.values().map(|v| v.len()).collect();
    assert!(total > 1000, "{total} {sizes:?}");
    assert_eq!(output, expected);
    // Partitioned like the Java client (murmur2 of the key), so Kafka Streams, ksqlDB or
    // Flink jobs joining this topic see the keys where they expect them.
    for (p, rows) in &output {
        for (key, _) in rows {
            assert_eq!(*p, java_partition(key.as_bytes(), 6), "key {key}");
        }
    }
    let partitions: std::collections::BTreeSet<i32> =
        ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "IBM"]
            .iter()
            .map(|s| java_partition(s.as_bytes(), 6))
            .collect();
    assert_eq!(
        output
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        partitions
    );
}

#[test]
fn windowed_query_over_kafka_partitions_equals_the_file_source() {
    let broker = Broker::started();
    broker.create_topic("ticks", 6);
    // 2400 ticks, one every 250 ms, symbols spread over the partitions by key; each
    // partition is in time order, the partitions are consumed in any interleaving.
    let symbols = [
        "AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "IBM", "NFLX", "META",
    ];
    let mut messages = Vec::new();
    let mut csv = String::from("symbol,price,ts\n");
    for i in 0..2400u64 {
        let symbol = symbols[((i * 5 + i / 7) % 8) as usize];
        let price = format!("{}.{:02}", 100 + (i * 31) % 50, (i * 17) % 100);
        let ms = 1_704_067_200_000 + i * 250;
        messages.push((
            symbol.to_string(),
            format!("{{\"symbol\":\"{symbol}\",\"price\":{price},\"ts\":{ms}}}"),
        ));
        csv.push_str(&format!("{symbol},{price},{ms}\n"));
    }
    broker.produce("ticks", &messages);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ticks.csv"), csv).expect("csv");

    let query = |source: &str| {
        format!(
            "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ({source});
             SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total,
                    MAX(price) AS hi
             FROM ticks GROUP BY symbol WINDOW TUMBLING(1m);"
        )
    };
    let kafka = query(&format!(
        "'connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'ticks',
         'scan.startup.mode' = 'earliest', 'scan.bounded' = 'latest', 'format' = 'json'",
        broker.address
    ));
    let file = query(&format!(
        "'connector' = 'file', 'path' = '{}', 'format' = 'csv'",
        dir.path().join("ticks.csv").display()
    ));
    let from_kafka = run_cli(&kafka, &["--parallelism", "2", "--stats"]);
    let stderr = String::from_utf8_lossy(&from_kafka.stderr);
    assert_eq!(from_kafka.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("late 0"),
        "no row is late across partitions: {stderr}"
    );
    let from_file = run_cli(&file, &[]);
    assert_eq!(from_file.status.code(), Some(0));
    let sorted = |o: &std::process::Output| {
        let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let (a, b) = (sorted(&from_kafka), sorted(&from_file));
    // 2400 ticks x 250 ms = 10 minutes: 10 windows x 8 symbols.
    assert_eq!(b.len(), 80);
    assert_eq!(a, b);
    // The same rows whatever the batch size, parallelism and channel capacity.
    for (batch, parallelism, capacity) in [("7", "1", "16"), ("1000", "4", "100000")] {
        let sql = query(&format!(
            "'connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'ticks',
             'scan.startup.mode' = 'earliest', 'scan.bounded' = 'latest', 'format' = 'json',
             'batch.size' = '{batch}', 'channel.capacity' = '{capacity}'",
            broker.address
        ));
        let out = run_cli(&sql, &["--parallelism", parallelism]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sorted(&out), b, "batch {batch}, parallelism {parallelism}");
    }

    // Three processes, each reading two partitions ('partitions' = '0,1', ...): the topic is
    // keyed by symbol, so every symbol's rows are in one process and the union of their
    // windows is the same multiset.
    let processes: Vec<std::process::Child> = ["0,1", "2,3", "4,5"]
        .iter()
        .map(|parts| {
            let sql = query(&format!(
                "'connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'ticks',
                 'scan.startup.mode' = 'earliest', 'scan.bounded' = 'latest', 'format' = 'json',
                 'group.id' = 'split', 'partitions' = '{parts}'",
                broker.address
            ));
            Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
                .args(["run", "-e", &sql])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ferris-cli starts")
        })
        .collect();
    let mut union = Vec::new();
    for p in processes {
        let out = p.wait_with_output().expect("output");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        union.extend(sorted(&out));
    }
    union.sort();
    assert_eq!(union, b);
}

#[test]
fn malformed_messages_go_to_the_dead_letter_file_with_topic_partition_offset() {
    let broker = Broker::started();
    broker.create_topic("raw", 1);
    broker.produce(
        "raw",
        &[
            ("a".into(), "{\"id\":1,\"v\":10}".into()),
            ("a".into(), "{\"id\":2,\"v\":".into()),
            ("a".into(), "{\"id\":3,\"v\":\"x\"}".into()),
            ("a".into(), "{\"id\":4,\"v\":40}".into()),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dlq = dir.path().join("dlq.jsonl");
    let sql = format!(
        "CREATE STREAM raw (id BIGINT, v BIGINT) WITH ('connector' = 'kafka',
           'bootstrap.servers' = '{}', 'topic' = 'raw', 'scan.startup.mode' = 'earliest',
           'scan.bounded' = 'latest', 'error.strategy' = 'dead_letter',
           'dead_letter.path' = '{}');
         SELECT id, v FROM raw;",
        broker.address,
        dlq.display()
    );
    let out = cli_ok(&sql, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"id\":1,\"v\":10}\n{\"id\":4,\"v\":40}\n"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["position"], "raw/0/1");
    assert_eq!(records[0]["raw"], "{\"id\":2,\"v\":");
    assert_eq!(records[1]["position"], "raw/0/2");
    assert!(
        records[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("'v'"),
        "{}",
        records[1]
    );
}

#[test]
fn an_unknown_topic_is_a_clear_error_naming_the_topic_and_broker() {
    let broker = Broker::started();
    let sql = format!(
        "CREATE STREAM t (id BIGINT) WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}',
           'topic' = 'missing', 'scan.bounded' = 'latest');
         SELECT id FROM t;",
        broker.address
    );
    // The environment, not the SQL, is at fault: exit code 4.
    let stderr = cli_error(&sql, 4);
    assert!(
        stderr.contains(&format!(
            "source 't': topic 'missing' does not exist (or has no partitions) on {}",
            broker.address
        )),
        "{stderr}"
    );
}

#[test]
fn a_message_too_large_for_the_producer_meets_the_error_strategy_alone() {
    let broker = Broker::started();
    broker.create_topic("notes", 1);
    broker.create_topic("notes_out", 1);
    let big = "x".repeat(2000);
    let input: Vec<(String, String)> = [
        ("a", "one".to_string()),
        ("b", "two".to_string()),
        ("c", big),
        ("d", "four".to_string()),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, note))| {
        (
            k.to_string(),
            format!("{{\"id\":{},\"note\":\"{note}\"}}", i + 1),
        )
    })
    .collect();
    broker.produce("notes", &input);
    let dir = tempfile::tempdir().expect("tempdir");
    let dlq = dir.path().join("dlq.jsonl");
    let sql = |strategy: &str| {
        format!(
            "CREATE STREAM notes (id BIGINT, note VARCHAR) WITH ('connector' = 'kafka',
               'bootstrap.servers' = '{b}', 'topic' = 'notes', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'group.id' = 'notes-{strategy}');
             CREATE STREAM notes_out WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'notes_out', 'kafka.message.max.bytes' = '1000',
                 'error.strategy' = '{strategy}', 'dead_letter.path' = '{d}') AS
               SELECT id, note FROM notes;",
            b = broker.address,
            d = dlq.display()
        )
    };
    // dead_letter: the other rows are written once, the large one is a dead letter.
    let out = run_cli(&sql("dead_letter"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let written: Vec<i64> = broker
        .consume_records("notes_out", 1)
        .iter()
        .map(|r| id_of(&r.value))
        .collect();
    assert_eq!(written, vec![1, 2, 4]);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["position"], "notes/0/2");
    assert_eq!(records[0]["stage"], "sink");
    assert_eq!(
        records[0]["error"],
        "sink write failed after 1 attempt(s): kafka topic notes_out: a message of 2018 bytes \
         is larger than the producer accepts (kafka.message.max.bytes)"
    );
    // fail: the job stops naming the row.
    let out = run_cli(&sql("fail"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "sink 'kafka topic notes_out' of query 'notes_out' failed after 1 attempt(s): the \
             row at notes/0/2: kafka topic notes_out: a message of 2018 bytes is larger than \
             the producer accepts"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_broker_at_start_is_a_clear_error_with_the_clients_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let sql = format!(
        "CREATE STREAM t (id BIGINT) WITH ('connector' = 'kafka',
           'bootstrap.servers' = '127.0.0.1:{port}', 'topic' = 'x', 'scan.bounded' = 'latest');
         SELECT id FROM t;"
    );
    // The environment, not the SQL, is at fault: exit code 4.
    let stderr = cli_error(&sql, 4);
    assert!(
        stderr.contains(&format!(
            "source 't': cannot read the metadata of topic 'x' from 127.0.0.1:{port}: Meta data \
             fetch error: BrokerTransportFailure (Local: Broker transport failure); the client \
             said: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "Connect to ipv4#127.0.0.1:{port} failed: Connection refused"
        )),
        "{stderr}"
    );
}

#[test]
fn an_authentication_failure_is_a_clear_error_with_the_clients_reason() {
    let broker = Broker::started();
    let sql = format!(
        "CREATE STREAM t (id BIGINT) WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}',
           'topic' = 'x', 'scan.bounded' = 'latest',
           'kafka.security.protocol' = 'SASL_PLAINTEXT', 'kafka.sasl.mechanisms' = 'PLAIN',
           'kafka.sasl.username' = 'u', 'kafka.sasl.password' = 'p');
         SELECT id FROM t;",
        broker.address
    );
    // The environment, not the SQL, is at fault: exit code 4.
    let stderr = cli_error(&sql, 4);
    assert!(
        stderr.contains(&format!(
            "source 't': cannot read the metadata of topic 'x' from {}",
            broker.address
        )),
        "{stderr}"
    );
    // tansu 0.6 answers the SASL handshake with "unsupported mechanism".
    assert!(
        stderr.contains("SASL PLAIN mechanism handshake failed"),
        "{stderr}"
    );
}

#[test]
fn startup_by_timestamp_reads_from_the_first_message_at_or_after_it() {
    let broker = Broker::started();
    broker.create_topic("ticks", 2);
    // Ten messages with timestamps 1 000 .. 10 000 ms, keys alternating between two.
    let messages: Vec<(String, Vec<u8>, Option<i64>)> = (1..=10)
        .map(|i| {
            (
                format!("k{}", i % 2),
                format!("{{\"id\":{i}}}").into_bytes(),
                Some(i * 1000),
            )
        })
        .collect();
    broker.produce_raw("ticks", &messages);
    let sql = |at: &str| {
        format!(
            "CREATE STREAM ticks (id BIGINT) WITH ('connector' = 'kafka',
               'bootstrap.servers' = '{}', 'topic' = 'ticks', 'scan.bounded' = 'latest',
               'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{at}');
             SELECT id FROM ticks;",
            broker.address
        )
    };
    let ids = |at: &str| {
        let out = run_cli(&sql(at), &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ids: Vec<i64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(id_of)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("5500"), vec![6, 7, 8, 9, 10]);
    assert_eq!(ids("7000"), vec![7, 8, 9, 10]);
    assert_eq!(ids("0"), (1..=10).collect::<Vec<_>>());
    // (A timestamp after the last message is not checked: tansu 0.6 answers it with offset
    // 0 instead of the end, so the whole partition would be read.)
    // A bad timestamp is a clear error.
    let stderr = cli_error(&sql("soon"), 2);
    assert!(
        stderr.contains("'scan.startup.timestamp-millis'") && stderr.contains("'soon'"),
        "{stderr}"
    );
}

#[test]
fn an_explicit_partition_list_is_checked_against_the_topic() {
    let broker = Broker::started();
    broker.create_topic("six", 6);
    let sql = |parts: &str| {
        format!(
            "CREATE STREAM t (id BIGINT) WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}',
               'topic' = 'six', 'scan.bounded' = 'latest', 'partitions' = '{parts}');
             SELECT id FROM t;",
            broker.address
        )
    };
    // The environment, not the SQL, is at fault: exit code 4.
    let stderr = cli_error(&sql("4, 7"), 4);
    assert!(
        stderr.contains("topic 'six' has no partition 7 (it has 6 partitions)"),
        "{stderr}"
    );
    let stderr = cli_error(&sql("first"), 2);
    assert!(
        stderr.contains("'all', 'group' or a list of partition numbers such as '0,2,4'"),
        "{stderr}"
    );
    // An empty topic read through two of its partitions ends at once with nothing.
    let out = cli_ok(&sql("1,3"), &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// HAVING under EMIT CHANGES into a keyed topic: a group that stops passing is a tombstone
/// (the key with no value), as a compacted topic or ksqlDB table expects.
#[test]
fn having_under_emit_changes_writes_tombstones_to_a_keyed_topic() {
    let broker = Broker::started();
    broker.create_topic("readings", 1);
    broker.create_topic("hot", 1);
    let input: Vec<(String, String)> = [("a", 50), ("b", 10), ("a", 10), ("a", 15), ("b", 60)]
        .iter()
        .map(|(k, v)| (k.to_string(), format!("{{\"sensor\":\"{k}\",\"v\":{v}}}")))
        .collect();
    broker.produce("readings", &input);
    let sql = format!(
        "CREATE STREAM readings (sensor VARCHAR, v BIGINT)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'readings',
               'group.id' = 'tombstones', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'partitions' = 'all', 'batch.size' = '1');
         CREATE STREAM hot WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'hot', 'format' = 'json', 'key' = 'sensor') AS
           SELECT sensor, AVG(v) AS avg_v FROM readings GROUP BY sensor
           HAVING AVG(v) > 26 EMIT CHANGES;",
        b = broker.address
    );
    let out = cli_ok(&sql, &[]);
    assert_eq!(out.status.code(), Some(0));
    let got: Vec<(String, String, bool)> = broker
        .consume_records("hot", 1)
        .into_iter()
        .map(|r| (r.key, r.value, r.bytes.is_empty()))
        .collect();
    let row = |k: &str, v: &str| (k.to_string(), v.to_string(), false);
    assert_eq!(
        got,
        vec![
            row("a", "{\"sensor\":\"a\",\"avg_v\":50}"),
            row("a", "{\"sensor\":\"a\",\"avg_v\":30}"),
            ("a".to_string(), String::new(), true),
            row("b", "{\"sensor\":\"b\",\"avg_v\":35}"),
        ]
    );
}

/// A TABLE read from a Kafka changelog topic (the latest row per key is the table, each row
/// a version from its event time on) joined as of event time: each order joins the rate
/// current at its own time, not the latest one read.
#[test]
fn a_stream_joins_a_kafka_changelog_table_as_of_event_time() {
    let broker = Broker::started();
    broker.create_topic("rates", 1);
    broker.create_topic("orders", 1);
    let at = |s: i64| 1_704_067_200_000i64 + s * 1000;
    let rates: Vec<(String, String)> = [
        ("EUR", 110, 0),
        ("EUR", 112, 10),
        ("GBP", 130, 5),
        ("EUR", 115, 20),
    ]
    .iter()
    .map(|(k, r, s)| {
        (
            k.to_string(),
            format!("{{\"cur\":\"{k}\",\"rate\":{r},\"ts\":{}}}", at(*s)),
        )
    })
    .collect();
    broker.produce("rates", &rates);
    let orders: Vec<(String, String)> =
        [(1, "EUR", 9), (2, "EUR", 10), (3, "GBP", 4), (4, "EUR", 25)]
            .iter()
            .map(|(id, c, s)| {
                (
                    id.to_string(),
                    format!("{{\"id\":{id},\"cur\":\"{c}\",\"ts\":{}}}", at(*s)),
                )
            })
            .collect();
    broker.produce("orders", &orders);
    let sql = format!(
        "CREATE TABLE rates (cur VARCHAR PRIMARY KEY, rate BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'rates',
               'group.id' = 'asof-rates', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'partitions' = 'all');
         CREATE STREAM orders (id BIGINT, cur VARCHAR, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'asof-orders', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'partitions' = 'all');
         SELECT o.id, r.rate FROM orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r
           ON o.cur = r.cur;",
        b = broker.address
    );
    for parallelism in ["1", "2"] {
        let out = cli_ok(&sql, &["--parallelism", parallelism]);
        let rows = sorted_lines(&out);
        assert_eq!(
            rows,
            vec![
                "{\"id\":1,\"rate\":110}",
                "{\"id\":2,\"rate\":112}",
                "{\"id\":3,\"rate\":null}",
                "{\"id\":4,\"rate\":115}",
            ],
            "parallelism {parallelism}"
        );
    }
}

/// A compacted changelog topic's tombstone (a key without a value) deletes the key from the
/// table from its message time on: a stream row after it joins no version. The table's
/// event time is the message timestamp (`'timestamp.field'`), its key the message key
/// (`'key.field'`).
#[test]
fn a_tombstone_deletes_a_key_of_a_kafka_table_from_its_time_on() {
    let broker = Broker::started();
    broker.create_topic("fx", 1);
    broker.create_topic("payments", 1);
    let at = |s: i64| 1_704_067_200_000i64 + s * 1000;
    let fx: Vec<(String, Vec<u8>, Option<i64>)> = [
        ("EUR", Some(110), 0),
        ("EUR", Some(112), 10),
        ("GBP", Some(130), 5),
        ("EUR", None, 15),
        ("EUR", Some(115), 20),
    ]
    .iter()
    .map(|(k, r, s)| {
        let value = r.map_or(Vec::new(), |r| {
            format!("{{\"cur\":\"{k}\",\"rate\":{r}}}").into_bytes()
        });
        (k.to_string(), value, Some(at(*s)))
    })
    .collect();
    broker.produce_raw("fx", &fx);
    let payments: Vec<(String, String)> = [
        (1, "EUR", 9),
        (2, "EUR", 10),
        (3, "GBP", 4),
        (4, "EUR", 25),
        (5, "EUR", 17),
    ]
    .iter()
    .map(|(id, c, s)| {
        (
            id.to_string(),
            format!("{{\"id\":{id},\"cur\":\"{c}\",\"ts\":{}}}", at(*s)),
        )
    })
    .collect();
    broker.produce("payments", &payments);
    let sql = format!(
        "CREATE TABLE fx (cur VARCHAR PRIMARY KEY, rate BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'fx',
               'group.id' = 'fx', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'partitions' = 'all',
               'timestamp.field' = 'ts', 'key.field' = 'cur');
         CREATE STREAM payments (id BIGINT, cur VARCHAR, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'payments',
               'group.id' = 'payments', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest', 'partitions' = 'all');
         SELECT p.id, f.rate FROM payments p LEFT JOIN fx f ON p.cur = f.cur;",
        b = broker.address
    );
    let out = cli_ok(&sql, &["--parallelism", "2"]);
    let rows = sorted_lines(&out);
    assert_eq!(
        rows,
        vec![
            "{\"id\":1,\"rate\":110}",
            "{\"id\":2,\"rate\":112}",
            "{\"id\":3,\"rate\":null}",
            "{\"id\":4,\"rate\":115}",
            "{\"id\":5,\"rate\":null}",
        ]
    );
    // Read as loaded (the latest row per key), the deleted key's later version counts and
    // GBP is there.
    let loaded = sql.replace(
        "LEFT JOIN fx f",
        "LEFT JOIN fx FOR SYSTEM_TIME AS OF PROCTIME() AS f",
    );
    let out = cli_ok(&loaded, &[]);
    let rows = sorted_lines(&out);
    assert_eq!(
        rows,
        vec![
            "{\"id\":1,\"rate\":115}",
            "{\"id\":2,\"rate\":115}",
            "{\"id\":3,\"rate\":130}",
            "{\"id\":4,\"rate\":115}",
            "{\"id\":5,\"rate\":115}",
        ]
    );
}

/// The lines a run printed, sorted.
fn sorted_lines(out: &std::process::Output) -> Vec<String> {
    let mut rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}
