//! The stable ids of a running job's nodes (tasks) and edges (channels).
//!
//! `run_job` names every channel with an edge id and labels the metrics of every task with
//! its node id, and `ferris-engine`'s job graph uses the same functions, so any metric can
//! be joined to the node or edge it measures. Ids are built from the query name (the created
//! stream's name, or `select_<n>`), the input side (0 the left or only input, 1 the right
//! input of a join) and partition numbers; they do not change between runs of the same
//! application at the same parallelism.

/// The thread reading and decoding source `source`: `source/<name>`.
pub fn source_node(source: &str) -> String {
    format!("source/{source}")
}

/// The load of table `table` (read completely before the streams start): `table/<name>`.
pub fn table_node(table: &str) -> String {
    format!("table/{table}")
}

/// Worker `w` of query `query`'s stateless stage on input `side`:
/// `<query>/stateless/<w>` (side 0) or `<query>/right/stateless/<w>` (side 1).
pub fn worker_node(query: &str, side: usize, w: usize) -> String {
    match side {
        0 => format!("{query}/stateless/{w}"),
        _ => format!("{query}/right/stateless/{w}"),
    }
}

/// Keyed partition `p` of query `query`'s stateful stage: `<query>/keyed/<p>`.
pub fn keyed_node(query: &str, p: usize) -> String {
    format!("{query}/keyed/{p}")
}

/// The sink thread of query `query`: `<query>/sink`.
pub fn sink_node(query: &str) -> String {
    format!("{query}/sink")
}

/// Dead-letter writer number `i` of the job: `dead-letter/<i>`.
pub fn dead_letter_node(i: usize) -> String {
    format!("dead-letter/{i}")
}

/// The channel from a source to worker `w` of `query` on input `side`:
/// `<query>.in.<w>` or `<query>.right.in.<w>`.
pub fn input_edge(query: &str, side: usize, w: usize) -> String {
    match side {
        0 => format!("{query}.in.{w}"),
        _ => format!("{query}.right.in.{w}"),
    }
}

/// The channel from worker `w` (input `side`) to keyed partition `p`:
/// `<query>.route<side>.<w>.<p>`.
pub fn route_edge(query: &str, side: usize, w: usize, p: usize) -> String {
    format!("{query}.route{side}.{w}.{p}")
}

/// The channel from worker or keyed partition `i` to the sink: `<query>.out.<i>`.
pub fn output_edge(query: &str, i: usize) -> String {
    format!("{query}.out.{i}")
}

/// The one channel every keyed partition of a join writes to the sink through:
/// `<query>.out`.
pub fn funnel_edge(query: &str) -> String {
    format!("{query}.out")
}

/// The channel from query `query`'s tasks to its dead-letter writer: `<query>.dead-letter`.
pub fn dead_letter_edge(query: &str) -> String {
    format!("{query}.dead-letter")
}
