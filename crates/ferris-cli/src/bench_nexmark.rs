//! `ferris-cli bench --case nexmark`: the queries of `examples/nexmark/` over the built-in
//! generator (bounded to `--rows` events of the three tables together, Nexmark's 1:3:46 mix of
//! people, auctions and bids), each at parallelism 1 and 2, beside the generator drained alone
//! in the same run (the baseline: a query cannot read faster than the events are made).
//! Each query's final `SELECT` writes to a blackhole sink.

use crate::bench::{rate, report, run_app};
use ferris_observe::names;
use std::path::Path;
use std::time::Duration;

/// The queries that run, with their text (compiled in, so the bench runs anywhere).
const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../../../examples/nexmark/q0.sql")),
    ("q1", include_str!("../../../examples/nexmark/q1.sql")),
    ("q2", include_str!("../../../examples/nexmark/q2.sql")),
    ("q3", include_str!("../../../examples/nexmark/q3.sql")),
    ("q4", include_str!("../../../examples/nexmark/q4.sql")),
    ("q5", include_str!("../../../examples/nexmark/q5.sql")),
    ("q7", include_str!("../../../examples/nexmark/q7.sql")),
    ("q8", include_str!("../../../examples/nexmark/q8.sql")),
    ("q9", include_str!("../../../examples/nexmark/q9.sql")),
    ("q10", include_str!("../../../examples/nexmark/q10.sql")),
    ("q11", include_str!("../../../examples/nexmark/q11.sql")),
    ("q13", include_str!("../../../examples/nexmark/q13.sql")),
    ("q14", include_str!("../../../examples/nexmark/q14.sql")),
    ("q15", include_str!("../../../examples/nexmark/q15.sql")),
    ("q16", include_str!("../../../examples/nexmark/q16.sql")),
    ("q17", include_str!("../../../examples/nexmark/q17.sql")),
    ("q18", include_str!("../../../examples/nexmark/q18.sql")),
    ("q19", include_str!("../../../examples/nexmark/q19.sql")),
    ("q20", include_str!("../../../examples/nexmark/q20.sql")),
    ("q21", include_str!("../../../examples/nexmark/q21.sql")),
    ("q22", include_str!("../../../examples/nexmark/q22.sql")),
];

const DATAGEN: &str = include_str!("../../../examples/nexmark/datagen.sql");
const SIDE_INPUT: &str = include_str!("../../../examples/nexmark/side_input.csv");

/// The generator declarations bounded to `events` events in all, in batches of `batch`.
fn sources(events: u64, batch: usize) -> String {
    let count = |share: u64| (events * share / 50).max(1);
    let mut sql = String::new();
    for (table, share) in [("person", 1), ("auction", 3), ("bid", 46)] {
        let needle = format!("'table' = '{table}')");
        let bounded = format!(
            "'table' = '{table}', 'events' = '{}', 'batch.size' = '{batch}')",
            count(share)
        );
        sql = if sql.is_empty() {
            DATAGEN.replace(&needle, &bounded)
        } else {
            sql.replace(&needle, &bounded)
        };
    }
    sql
}

/// `query` with its last statement (a bare SELECT or WITH … SELECT, or a CREATE STREAM …
/// WITH (…) AS SELECT that names no connector) written to a blackhole.
fn to_blackhole(query: &str) -> String {
    let body: Vec<&str> = query
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let text = body.join("\n");
    let trimmed = text.trim_end().trim_end_matches(';');
    let last_start = trimmed.rfind(";\n").map_or(0, |i| i + 2);
    let (before, last) = (&trimmed[..last_start], trimmed[last_start..].trim());
    if last.starts_with("CREATE STREAM") {
        let sunk = last.replacen("WITH (", "WITH ('connector' = 'blackhole', ", 1);
        return format!("{before}\n{sunk};");
    }
    format!("{before}\nCREATE STREAM nexmark_out WITH ('connector' = 'blackhole') AS\n{last};")
}

/// Drains the bid generator alone: `bids` rows in batches of `batch`.
fn generator_time(bids: u64, batch: usize) -> anyhow::Result<Duration> {
    let sql = sources(bids * 50 / 46, batch);
    let app = ferris_plan::plan_application(&sql).map_err(|e| anyhow::anyhow!(e.render(&sql)))?;
    let decl = app
        .sources
        .iter()
        .find(|s| s.name == "bid")
        .ok_or_else(|| anyhow::anyhow!("datagen.sql declares no bid"))?;
    crate::bench::drain(decl, batch)
}

/// The case.
pub(crate) fn nexmark_case(events: u64, batch: usize, base: &Path) -> anyhow::Result<()> {
    std::fs::write(base.join("side_input.csv"), SIDE_INPUT)?;
    let bids = (events * 46 / 50).max(1);
    let generator = generator_time(bids, batch)?;
    report(&format!(
        "nexmark: {events} events ({bids} bids); batch {batch}\n\
         baseline  bid generator alone        {:>12.0} events/s",
        rate(bids, generator)
    ));
    for (name, query) in QUERIES {
        let sql = format!("{}\n{}", sources(events, batch), to_blackhole(query));
        for p in [1, 2] {
            let (d, registry) = run_app(&sql, p, base)?;
            // Events: the generator's rows (not a derived stream's, not the side table's).
            let events_read: u64 = ["person", "auction", "bid"]
                .iter()
                .map(|t| registry.counter_sum(names::SOURCE_ROWS_READ, &[("source", t)]))
                .sum();
            report(&format!(
                "{name:<5} p={p} {:>12.0} events/s  ({:.2}x the generator's time per event)",
                rate(events_read, d),
                (d.as_secs_f64() / events_read.max(1) as f64)
                    / (generator.as_secs_f64() / bids as f64)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_plans_with_a_blackhole_sink_over_the_generator() {
        for (name, query) in QUERIES {
            let sql = format!("{}\n{}", sources(1000, 64), to_blackhole(query));
            let app = ferris_plan::plan_application(&sql)
                .unwrap_or_else(|e| panic!("{name}: {}", e.render(&sql)));
            let last = app.queries.last().expect("a query");
            assert!(last.name.starts_with("nexmark_"), "{name}: {}", last.name);
            assert_eq!(
                last.sink.get("connector").map(String::as_str),
                Some("blackhole"),
                "{name}"
            );
        }
    }

    #[test]
    fn the_events_keep_nexmarks_mix() {
        let sql = sources(5000, 64);
        assert!(
            sql.contains("'table' = 'person', 'events' = '100'"),
            "{sql}"
        );
        assert!(
            sql.contains("'table' = 'auction', 'events' = '300'"),
            "{sql}"
        );
        assert!(sql.contains("'table' = 'bid', 'events' = '4600'"), "{sql}");
    }
}
