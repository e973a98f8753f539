//! Every EXPLAIN / WINDOW / EMIT fragment of the seed (shared/seed/FR-058.md) parses into the
//! expected AST.

use ferris_sql::ast::{EmitMode, Explain, ExplainTarget, Statement, StreamingQuery, WindowKind};
use ferris_sql::parse_statements;

fn explain(sql: &str) -> Explain {
    let mut v = parse_statements(sql).unwrap_or_else(|e| panic!("{}", e.render(sql)));
    assert_eq!(v.len(), 1);
    match v.remove(0) {
        Statement::Explain(e) => e,
        other => panic!("not an explain: {other:?}"),
    }
}

fn opts(e: &Explain) -> Vec<(&str, &str)> {
    e.options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn plan(e: &Explain) -> &StreamingQuery {
    match &e.target {
        ExplainTarget::Plan(q) => q,
        other => panic!("not a plan: {other:?}"),
    }
}

fn topology(e: &Explain) -> &StreamingQuery {
    match &e.target {
        ExplainTarget::Topology(q) => q,
        other => panic!("not a topology: {other:?}"),
    }
}

const TUMBLING_5M: WindowKind = WindowKind::Tumbling { size_ms: 300_000 };
const SLIDING_1H_5M: WindowKind = WindowKind::Sliding {
    size_ms: 3_600_000,
    advance_ms: 300_000,
};
const JOIN_QUERY: &str = "SELECT t1.symbol, t1.price, t2.volume FROM trades t1 JOIN volumes t2 ON t1.symbol = t2.symbol WHERE t1.price > 100";

#[test]
fn traditional_plans() {
    let e = explain(
        "-- Basic logical and physical query plan
EXPLAIN 
SELECT symbol, AVG(price) as avg_price 
FROM trades 
WHERE price > 100
WINDOW TUMBLING(5m) 
GROUP BY symbol;",
    );
    assert_eq!(e.options, Vec::<(String, String)>::new());
    let q = plan(&e);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, AVG(price) AS avg_price FROM trades WHERE price > 100 GROUP BY symbol"
    );
    assert_eq!(q.window.unwrap().kind, TUMBLING_5M);
    assert_eq!(q.emit, None);
    assert_eq!(
        q.text,
        "SELECT symbol, AVG(price) as avg_price \nFROM trades \nWHERE price > 100\nWINDOW TUMBLING(5m) \nGROUP BY symbol"
    );

    let e = explain(
        "EXPLAIN (ANALYZE true, COSTS true, BUFFERS true, TIMING true)
SELECT t1.symbol, t1.price, t2.volume
FROM trades t1 
JOIN volumes t2 ON t1.symbol = t2.symbol
WHERE t1.price > 100;",
    );
    assert_eq!(
        opts(&e),
        vec![
            ("ANALYZE", "true"),
            ("COSTS", "true"),
            ("BUFFERS", "true"),
            ("TIMING", "true")
        ]
    );
    assert_eq!(plan(&e).query.to_string(), JOIN_QUERY);

    let e = explain(
        "EXPLAIN (FORMAT JSON, ANALYZE true)
SELECT symbol, COUNT(*) as trade_count
FROM trades
GROUP BY symbol;",
    );
    assert_eq!(opts(&e), vec![("FORMAT", "JSON"), ("ANALYZE", "true")]);
    assert_eq!(
        plan(&e).query.to_string(),
        "SELECT symbol, COUNT(*) AS trade_count FROM trades GROUP BY symbol"
    );

    let e = explain(
        "EXPLAIN (VERBOSE true, COSTS true)
SELECT symbol, 
       AVG(price) as avg_price,
       MAX(price) as max_price,
       MIN(price) as min_price,
       STDDEV(price) as price_volatility
FROM trades
WINDOW SLIDING(1h, 5m)
GROUP BY symbol;",
    );
    assert_eq!(opts(&e), vec![("VERBOSE", "true"), ("COSTS", "true")]);
    let q = plan(&e);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, AVG(price) AS avg_price, MAX(price) AS max_price, MIN(price) AS min_price, \
         STDDEV(price) AS price_volatility FROM trades GROUP BY symbol"
    );
    assert_eq!(q.window.unwrap().kind, SLIDING_1H_5M);

    // Lower-case option keys are upper-cased; a key alone means true.
    let e = explain("explain (analyze, format json) select 1");
    assert_eq!(opts(&e), vec![("ANALYZE", "true"), ("FORMAT", "json")]);
    // A parenthesised query is not an option list.
    let e = explain("EXPLAIN (SELECT a FROM t)");
    assert_eq!(e.options, Vec::<(String, String)>::new());
    assert_eq!(plan(&e).query.to_string(), "(SELECT a FROM t)");
}

#[test]
fn topologies() {
    let e = explain(
        "EXPLAIN TOPOLOGY 
SELECT symbol, AVG(price) as avg_price 
FROM trades 
WINDOW TUMBLING(5m) 
GROUP BY symbol;",
    );
    assert_eq!(e.options, Vec::<(String, String)>::new());
    let q = topology(&e);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, AVG(price) AS avg_price FROM trades GROUP BY symbol"
    );
    assert_eq!(q.window.unwrap().kind, TUMBLING_5M);

    let e = explain(
        "EXPLAIN TOPOLOGY (LIVE true, METRICS true)
SELECT symbol, COUNT(*) as trade_count
FROM trades
GROUP BY symbol
EMIT CHANGES;",
    );
    assert_eq!(opts(&e), vec![("LIVE", "true"), ("METRICS", "true")]);
    let q = topology(&e);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, COUNT(*) AS trade_count FROM trades GROUP BY symbol"
    );
    assert_eq!(q.emit.unwrap().mode, EmitMode::Changes);
    assert_eq!(q.window, None);

    let e = explain(
        "EXPLAIN TOPOLOGY (ANALYZE true, PERFORMANCE true, BOTTLENECKS true)
SELECT symbol, 
       AVG(price) as avg_price,
       MAX(price) as max_price,
       COUNT(*) as trade_count
FROM trades
WINDOW SLIDING(1h, 5m)
GROUP BY symbol;",
    );
    assert_eq!(
        opts(&e),
        vec![
            ("ANALYZE", "true"),
            ("PERFORMANCE", "true"),
            ("BOTTLENECKS", "true")
        ]
    );
    let q = topology(&e);
    assert_eq!(q.window.unwrap().kind, SLIDING_1H_5M);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, AVG(price) AS avg_price, MAX(price) AS max_price, COUNT(*) AS trade_count FROM trades GROUP BY symbol"
    );

    let e = explain(
        "EXPLAIN (PLAN true, TOPOLOGY true, ANALYZE true)
SELECT t1.symbol, t1.price, t2.volume
FROM trades t1 
JOIN volumes t2 ON t1.symbol = t2.symbol
WHERE t1.price > 100;",
    );
    assert_eq!(
        opts(&e),
        vec![("PLAN", "true"), ("TOPOLOGY", "true"), ("ANALYZE", "true")]
    );
    assert_eq!(plan(&e).query.to_string(), JOIN_QUERY);

    let e = explain(
        "EXPLAIN TOPOLOGY (METADATA true, HISTORY true)
SELECT symbol, AVG(price) FROM trades WINDOW TUMBLING(5m) GROUP BY symbol;",
    );
    assert_eq!(opts(&e), vec![("METADATA", "true"), ("HISTORY", "true")]);
    let q = topology(&e);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, AVG(price) FROM trades GROUP BY symbol"
    );
    assert_eq!(q.window.unwrap().kind, TUMBLING_5M);
}

#[test]
fn multi_query() {
    let sql = "-- Analyze relationships between multiple queries
EXPLAIN MULTI_QUERY 
WITH QUERIES (
  'query1' AS (SELECT symbol, AVG(price) FROM trades WINDOW TUMBLING(5m) GROUP BY symbol),
  'query2' AS (SELECT symbol, MAX(price) FROM trades WINDOW TUMBLING(5m) GROUP BY symbol),
  'query3' AS (SELECT symbol, COUNT(*) FROM trades WHERE price > 100 GROUP BY symbol)
);";
    let e = explain(sql);
    assert_eq!(e.options, Vec::<(String, String)>::new());
    let ExplainTarget::MultiQuery(qs) = &e.target else {
        panic!("{:?}", e.target)
    };
    let got: Vec<_> = qs
        .iter()
        .map(|(n, q)| (n.as_str(), q.query.to_string(), q.window.map(|w| w.kind)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "query1",
                "SELECT symbol, AVG(price) FROM trades GROUP BY symbol".to_string(),
                Some(TUMBLING_5M)
            ),
            (
                "query2",
                "SELECT symbol, MAX(price) FROM trades GROUP BY symbol".to_string(),
                Some(TUMBLING_5M)
            ),
            (
                "query3",
                "SELECT symbol, COUNT(*) FROM trades WHERE price > 100 GROUP BY symbol".to_string(),
                None
            ),
        ]
    );
    assert_eq!(
        qs[0].1.text,
        "SELECT symbol, AVG(price) FROM trades WINDOW TUMBLING(5m) GROUP BY symbol"
    );
    assert_eq!(qs[0].1.span.start.line, 4);
    assert_eq!(qs[0].1.span.start.column, 16);

    let e = explain(
        "EXPLAIN MULTI_QUERY (METADATA true, OWNERSHIP true, COMPLIANCE true)
WITH QUERIES ('a' AS (SELECT 1), 'b' AS (SELECT x FROM t EMIT CHANGES))",
    );
    assert_eq!(
        opts(&e),
        vec![
            ("METADATA", "true"),
            ("OWNERSHIP", "true"),
            ("COMPLIANCE", "true")
        ]
    );
    let ExplainTarget::MultiQuery(qs) = &e.target else {
        panic!("{:?}", e.target)
    };
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[1].1.emit.unwrap().mode, EmitMode::Changes);
}

#[test]
fn multi_query_placeholders_are_a_clear_error() {
    let sql = "EXPLAIN MULTI_QUERY (METADATA true, OWNERSHIP true, COMPLIANCE true)
WITH QUERIES (
  'portfolio_risk_calculator' AS (...),
  'real_time_price_alerts' AS (...),  
  'compliance_audit_trail' AS (...)
);";
    let e = parse_statements(sql).unwrap_err();
    assert_eq!(
        e.message,
        "'portfolio_risk_calculator' AS (...) is a placeholder: write the query inside the parentheses"
    );
    assert_eq!((e.line, e.column, e.len), (3, 35, 3));
}

#[test]
fn resource_lineage_impact_and_groups() {
    let e = explain(
        "EXPLAIN SHARED_RESOURCES
FOR QUERIES ('portfolio_risk_query', 'trading_analytics_query', 'compliance_report_query');",
    );
    assert_eq!(
        e.target,
        ExplainTarget::SharedResources(vec![
            "portfolio_risk_query".into(),
            "trading_analytics_query".into(),
            "compliance_report_query".into()
        ])
    );
    let e = explain(
        "EXPLAIN LINEAGE
FROM SOURCE 'kafka://trades/trade_12345'
THROUGH QUERIES ('risk_calculation', 'portfolio_update', 'audit_log');",
    );
    assert_eq!(
        e.target,
        ExplainTarget::Lineage {
            source: "kafka://trades/trade_12345".into(),
            queries: vec![
                "risk_calculation".into(),
                "portfolio_update".into(),
                "audit_log".into()
            ],
        }
    );
    let e = explain(
        "EXPLAIN IMPACT 
FOR QUERY 'portfolio_risk_query'
CHANGE TYPE 'schema_evolution';",
    );
    assert_eq!(e.options, Vec::<(String, String)>::new());
    assert_eq!(
        e.target,
        ExplainTarget::Impact {
            query: "portfolio_risk_query".into(),
            change_type: "schema_evolution".into(),
            description: None,
        }
    );
    let e = explain(
        "EXPLAIN IMPACT (METADATA true, APPROVALS true, ROLLBACK_PLAN true)
FOR QUERY 'portfolio_risk_calculator'
CHANGE TYPE 'sql_update'
CHANGE DESCRIPTION 'Add new volatility calculation';",
    );
    assert_eq!(
        opts(&e),
        vec![
            ("METADATA", "true"),
            ("APPROVALS", "true"),
            ("ROLLBACK_PLAN", "true")
        ]
    );
    assert_eq!(
        e.target,
        ExplainTarget::Impact {
            query: "portfolio_risk_calculator".into(),
            change_type: "sql_update".into(),
            description: Some("Add new volatility calculation".into()),
        }
    );
    let e = explain(
        "EXPLAIN OPTIMIZATION_OPPORTUNITIES
FOR QUERY_GROUP 'financial_analytics_suite';",
    );
    assert_eq!(
        e.target,
        ExplainTarget::OptimizationOpportunities("financial_analytics_suite".into())
    );
    let e = explain(
        "EXPLAIN DIFF (METADATA true, VERSIONS true)
QUERY 'portfolio_risk_calculator'
BETWEEN ENVIRONMENTS ('staging', 'production');",
    );
    assert_eq!(opts(&e), vec![("METADATA", "true"), ("VERSIONS", "true")]);
    assert_eq!(
        e.target,
        ExplainTarget::Diff {
            query: "portfolio_risk_calculator".into(),
            environments: vec!["staging".into(), "production".into()],
        }
    );
    assert_eq!(e.span.start.line, 1);
    assert_eq!(e.span.end.line, 3);
    assert_eq!(e.span.end.column, 47);
}
