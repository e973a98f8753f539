//! A job's error keeps the chain of causes: the job error, the source's error with its
//! context, and the I/O error underneath.

mod common;

use arrow::datatypes::SchemaRef;
use common::*;
use ferris_observe::Registry;
use ferris_runtime::{
    JobConfig, JobSpec, QuerySpec, RuntimeError, Shutdown, Source, SourceError, SourcePoll,
    SourceSpec,
};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// A source whose disk fails at the first read.
struct BrokenDisk;

impl Source for BrokenDisk {
    fn location(&self) -> String {
        "trades.csv".into()
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn poll(&mut self, _max_rows: usize) -> Result<SourcePoll, SourceError> {
        let io = std::io::Error::other("input/output error");
        Err(SourceError::caused_by("trades.csv: read failed", io))
    }
}

#[test]
fn a_failing_source_stops_the_job_with_its_cause_chain() {
    let spec = JobSpec {
        sources: vec![SourceSpec {
            name: "trades".into(),
            source: Box::new(BrokenDisk),
            batch_size: 16,
            event_time: None,
            idle_timeout: None,
        }],
        tables: Vec::new(),
        queries: vec![QuerySpec {
            name: "q".into(),
            source: 0,
            operators: Arc::new(|| Ok(Vec::new())),
            keyed: None,
            right: None,
            late: Default::default(),
            lateness: Default::default(),
            sink: Box::new(CollectingSink::new(
                Arc::new(Mutex::new(Collected::default())),
                Arc::new(AtomicU64::new(0)),
            )),
            strategy: Default::default(),
            dead_letter: None,
            channel_capacity: None,
            metrics: Vec::new(),
        }],
        dead_letters: Vec::new(),
        config: JobConfig::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(ferris_runtime::run_job(
            spec,
            Registry::new(),
            Shutdown::new(),
        ))
        .expect_err("the source fails");
    assert!(matches!(err, RuntimeError::Source { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "source 'trades' failed: trades.csv: read failed: input/output error"
    );
    let source = std::error::Error::source(&err).expect("the source error");
    assert_eq!(
        source.to_string(),
        "trades.csv: read failed: input/output error"
    );
    let io = std::error::Error::source(source).expect("the I/O error");
    assert_eq!(io.to_string(), "input/output error");
    assert!(io.downcast_ref::<std::io::Error>().is_some());
}
