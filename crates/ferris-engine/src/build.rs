//! Turning a planned application into a runnable job: connectors, tables, dead-letter
//! writers and the per-query pipelines.

use crate::error::EngineError;
use crate::repartition::{Input, repartition, repartition_join, stage_name};
use crate::resolve::{self, resolve};
use ferris_plan::{Application, PlanError, SourceDecl};
use ferris_runtime::dead_letter::JsonLinesDeadLetterFile;
use ferris_runtime::{
    DeadLetterWriter, ErrorStrategy, EventTimeSpec, JobConfig, JobSpec, KeyedStage, LateRows,
    Lateness, QuerySpec, RightInput, SourceSpec, TableLoad, TableSnapshot,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Collects the job's parts while queries are added.
struct JobBuilder<'a> {
    app: &'a Application,
    base_dir: &'a Path,
    sources: Vec<SourceSpec>,
    source_index: BTreeMap<String, usize>,
    tables: Vec<TableLoad>,
    table_slots: BTreeMap<String, Arc<OnceLock<TableSnapshot>>>,
    dead_letters: Vec<Box<dyn DeadLetterWriter>>,
    dead_letter_paths: Vec<PathBuf>,
    /// Check what opening each connector would check, without opening anything
    /// ([`check_job`]).
    dry: bool,
    /// The reading ends of the derived streams queries read, until their source is made.
    derived_sources: BTreeMap<String, ferris_runtime::derived::DerivedSource>,
    /// The writing ends, until the query defining each stream is built.
    derived_sinks: BTreeMap<String, ferris_runtime::derived::DerivedSink>,
}

impl JobBuilder<'_> {
    fn connector(
        &mut self,
        decl: &SourceDecl,
    ) -> Result<Box<dyn ferris_runtime::Source>, EngineError> {
        let at = |e| EngineError::connector(format!("source '{}'", decl.name), decl.span, e);
        if decl.is_derived() {
            if self.dry {
                return Ok(Box::new(crate::dry::NoSource(decl.schema.clone())));
            }
            return match self.derived_sources.remove(&decl.name) {
                Some(s) => Ok(Box::new(s)),
                None => Err(EngineError::from(PlanError::at(
                    format!("derived stream '{}' has no query writing it", decl.name),
                    decl.span,
                ))),
            };
        }
        if self.dry {
            ferris_connectors::check_source(
                &decl.name,
                decl.schema.clone(),
                &decl.connector,
                self.base_dir,
            )
            .map_err(at)?;
            return Ok(Box::new(crate::dry::NoSource(decl.schema.clone())));
        }
        ferris_connectors::create_source(
            &decl.name,
            decl.schema.clone(),
            &decl.connector,
            self.base_dir,
        )
        .map_err(at)
    }

    /// The job's source for `decl` (one reader per source, shared by its queries).
    fn source(&mut self, decl: &SourceDecl) -> Result<usize, EngineError> {
        if let Some(i) = self.source_index.get(&decl.name) {
            return Ok(*i);
        }
        let source = self.connector(decl)?;
        let event_time = match &decl.event_time {
            Some((col, bound)) => Some(EventTimeSpec {
                column: decl.schema.index_of(col).map_err(|_| {
                    PlanError::at(
                        format!("event-time column '{col}' is not declared"),
                        decl.span,
                    )
                })?,
                name: col.clone(),
                max_out_of_orderness_ms: *bound,
            }),
            None => None,
        };
        self.sources.push(SourceSpec {
            name: decl.name.clone(),
            source,
            batch_size: decl.engine.batch_size.unwrap_or(1024),
            event_time,
            idle_timeout: decl
                .engine
                .idle_timeout_ms
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        });
        self.source_index
            .insert(decl.name.clone(), self.sources.len() - 1);
        Ok(self.sources.len() - 1)
    }

    /// The dead-letter writer for `path` (one per file).
    fn dead_letter(
        &mut self,
        path: &str,
        span: ferris_sql::ast::Span,
    ) -> Result<usize, EngineError> {
        let path = self.base_dir.join(path);
        if let Some(i) = self.dead_letter_paths.iter().position(|x| *x == path) {
            return Ok(i);
        }
        let writer: Box<dyn DeadLetterWriter> = if self.dry {
            ferris_connectors::file_sink::check_target(&path).map_err(|e| EngineError::Io {
                context: "dead-letter file".into(),
                span,
                source: Box::new(ferris_runtime::RuntimeError::DeadLetter {
                    path: path.display().to_string(),
                    reason: match e {
                        ferris_connectors::ConnectorError::Io { reason, .. } => reason,
                        other => other.to_string(),
                    },
                }),
            })?;
            Box::new(crate::dry::NoDeadLetters)
        } else {
            Box::new(
                JsonLinesDeadLetterFile::open(&path).map_err(|e| EngineError::Io {
                    context: "dead-letter file".into(),
                    span,
                    source: Box::new(e),
                })?,
            )
        };
        self.dead_letters.push(writer);
        self.dead_letter_paths.push(path);
        Ok(self.dead_letters.len() - 1)
    }

    /// The slot a table is loaded into (one load per table, shared by its queries).
    fn table(
        &mut self,
        name: &str,
        span: ferris_sql::ast::Span,
    ) -> Result<Arc<OnceLock<TableSnapshot>>, EngineError> {
        if let Some(slot) = self.table_slots.get(name) {
            return Ok(slot.clone());
        }
        let decl = resolve::decl(self.app, name, span)?.clone();
        if decl
            .connector
            .get("follow")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(EngineError::from(PlanError::at(
                format!(
                    "table '{name}' is joined to a stream, so it must be bounded: it is read \
                     completely before the stream ('follow' = 'true' is not allowed)"
                ),
                decl.span,
            )));
        }
        let key_columns = decl
            .primary_key
            .iter()
            .map(|k| decl.schema.index_of(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PlanError::at(e.to_string(), decl.span))?;
        let strategy = decl.engine.error_strategy.unwrap_or(ErrorStrategy::Fail);
        let dead_letter = match (strategy, &decl.engine.dead_letter_path) {
            (ErrorStrategy::DeadLetter, Some(p)) => Some(self.dead_letter(p, decl.span)?),
            (ErrorStrategy::DeadLetter, None) => {
                return Err(EngineError::from(PlanError::at(
                    format!(
                        "table '{name}': 'error.strategy' = 'dead_letter' needs 'dead_letter.path'"
                    ),
                    decl.span,
                )));
            }
            _ => None,
        };
        let slot: Arc<OnceLock<TableSnapshot>> = Arc::default();
        let source = self.connector(&decl)?;
        self.tables.push(TableLoad {
            name: name.to_string(),
            source,
            batch_size: decl.engine.batch_size.unwrap_or(1024),
            key_columns,
            strategy,
            dead_letter,
            target: slot.clone(),
        });
        self.table_slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }
}

/// Batches in flight between a query and the queries reading its output.
const DERIVED_CAPACITY: usize = 8;

/// Records the shares of window state `app` runs in `registry` (how many queries each shared
/// operator serves).
pub fn record_shares(app: &Application, registry: &ferris_observe::Registry) {
    for s in &app.shared {
        registry
            .gauge(
                ferris_observe::names::SHARED_STATE_QUERIES,
                &[("query", s.query.as_str()), ("share", s.name.as_str())],
            )
            .set(s.members.len() as i64);
    }
}

/// Instantiates the connectors of `app` into a runnable job. Relative paths resolve against
/// `base_dir`.
pub fn build_job(
    app: &Application,
    config: JobConfig,
    base_dir: &Path,
) -> Result<JobSpec, EngineError> {
    build(app, config, base_dir, false)
}

/// Makes every check [`build_job`] makes before the job reads data — paths, connector
/// properties, input files and their CSV headers, sink paths, dead-letter paths, tables —
/// without creating or opening anything for writing and without connecting to a broker
/// (`ferris-cli validate`).
pub fn check_job(app: &Application, config: JobConfig, base_dir: &Path) -> Result<(), EngineError> {
    build(app, config, base_dir, true).map(drop)
}

fn build(
    app: &Application,
    config: JobConfig,
    base_dir: &Path,
    dry: bool,
) -> Result<JobSpec, EngineError> {
    // Before anything is opened: a sink must not truncate a file the job reads.
    crate::paths::check_paths(app, base_dir)?;
    let mut b = JobBuilder {
        dry,
        app,
        base_dir,
        sources: Vec::new(),
        source_index: BTreeMap::new(),
        tables: Vec::new(),
        table_slots: BTreeMap::new(),
        dead_letters: Vec::new(),
        dead_letter_paths: Vec::new(),
        derived_sources: BTreeMap::new(),
        derived_sinks: BTreeMap::new(),
    };
    // The derived streams read: one channel each, from the defining query's sink.
    for decl in app.sources.iter().filter(|d| d.is_derived()) {
        let writers = ferris_plan::writers(decl);
        let (sinks, source) = ferris_runtime::derived::derived_union(
            &decl.name,
            decl.schema.clone(),
            DERIVED_CAPACITY,
            writers.len(),
        );
        for (writer, sink) in writers.into_iter().zip(sinks) {
            b.derived_sinks.insert(writer, sink);
        }
        // An updating stream is read as the changelog of its upsert key.
        let source = match decl.connector.get("upsert.key") {
            Some(key) => {
                let fields = decl.schema.fields();
                let mut written: Vec<arrow::datatypes::FieldRef> =
                    fields[..fields.len().saturating_sub(1)].to_vec();
                // The writer's rows can be deletes: they end with the flag.
                if decl.connector.get("deletes").is_some_and(|d| d == "true") {
                    written.push(Arc::new(arrow::datatypes::Field::new(
                        ferris_runtime::DELETED_COLUMN,
                        arrow::datatypes::DataType::Boolean,
                        false,
                    )));
                }
                let written = Arc::new(arrow::datatypes::Schema::new(written));
                key.split(',')
                    .filter(|k| !k.is_empty())
                    .map(|k| written.index_of(k))
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(|key| source.with_changelog(&written, key))
                    .map_err(|e| {
                        EngineError::Invalid(ferris_plan::PlanError::at(
                            format!("internal: derived stream '{}': {e}", decl.name),
                            decl.span,
                        ))
                    })?
            }
            None => source,
        };
        b.derived_sources.insert(decl.name.clone(), source);
    }
    let mut queries = Vec::new();
    for q in &app.queries {
        let settings = resolve(app, q)?;
        let decl = settings.decl.clone();
        let strategy = settings.strategy;
        let late = settings.late;
        let sink_props = settings.sink.clone();
        let index = b.source(&decl)?;
        let right = match settings.right {
            Some(rdecl) => Some((b.source(rdecl)?, rdecl.clone())),
            None => None,
        };
        let table = match &q.plan.lookup {
            Some((_, t)) => Some(b.table(t, q.span)?),
            None => None,
        };
        let dead_letter = match &settings.dead_letter {
            Some(p) => Some(b.dead_letter(p, q.span)?),
            None => None,
        };
        let sink_at = |e| EngineError::connector(format!("sink of '{}'", q.name), q.span, e);
        let feeds = b.derived_sinks.remove(&q.name);
        let sink: Box<dyn ferris_runtime::Sink> = if dry {
            // A derived stream read only in-process has no connector to check.
            if !(feeds.is_some() && q.sink.is_empty()) {
                ferris_connectors::check_sink(&q.name, &sink_props, base_dir).map_err(sink_at)?;
            }
            Box::new(ferris_connectors::BlackholeSink)
        } else {
            match feeds {
                // Read by other queries and written nowhere else: only to them.
                Some(d) if q.sink.is_empty() => Box::new(d),
                Some(d) => Box::new(ferris_runtime::derived::TeeSink::new(
                    ferris_connectors::create_sink(&q.name, &sink_props, base_dir)
                        .map_err(sink_at)?,
                    d,
                )),
                None => ferris_connectors::create_sink(&q.name, &sink_props, base_dir)
                    .map_err(sink_at)?,
            }
        };
        let plan = q.plan.clone();
        let ops_table = table.clone();
        let channel_capacity = settings.channel_capacity;
        if let Some(keyed) = q
            .plan
            .keyed
            .as_ref()
            .filter(|_| settings.repartitioned && !dry)
        {
            // Across the processes of a group: the stateless stage writes the rows to the
            // query's repartition topic, keyed by the query's key, and the keyed stage reads
            // that topic in the query's own group, one chain per repartition partition. A
            // join does so for both inputs, into two topics read alike.
            let time_of = |d: &SourceDecl| {
                d.event_time
                    .as_ref()
                    .and_then(|(c, _)| d.schema.index_of(c).ok())
            };
            let left = Input {
                decl: &decl,
                // Interval joins: the inputs reach the keyed stage as they are.
                schema: q.plan.stateless_schema(),
                key_columns: &keyed.key_columns,
                time_column: match &right {
                    Some(_) => time_of(&decl),
                    None => keyed.time_column,
                },
            };
            let (l, r) = match &right {
                None => (repartition(&q.name, &left, q.span)?, None),
                Some((source, rdecl)) => {
                    let right_in = Input {
                        decl: rdecl,
                        schema: q
                            .plan
                            .right_stateless_schema()
                            .unwrap_or_else(|| rdecl.schema.clone()),
                        key_columns: &keyed.right_key_columns,
                        time_column: time_of(rdecl),
                    };
                    let (l, r) = repartition_join(&q.name, &left, &right_in, q.span)?;
                    (l, Some((*source, r)))
                }
            };
            let batch_size = settings.batch_size;
            // Lateness is decided by the keyed part, against the watermark the topic
            // carries (the minimum over every input partition). This process alone knows
            // only its own partitions: after it took partitions over from a killed process,
            // rows it reads again would be late against the watermark its earlier
            // partitions reached, and be lost.
            queries.push(QuerySpec {
                name: stage_name(&q.name, 0),
                source: index,
                operators: Arc::new(move || Ok(plan.operators(ops_table.clone()))),
                keyed: None,
                right: None,
                late: LateRows::Keep,
                lateness: Lateness::BelowWatermark,
                sink: l.writer,
                strategy,
                dead_letter,
                channel_capacity,
                metrics: Vec::new(),
            });
            b.sources.push(SourceSpec {
                name: l.reader_name,
                source: l.reader,
                batch_size,
                event_time: l.event_time,
                idle_timeout: None,
            });
            let reader = b.sources.len() - 1;
            let right_reader = match r {
                None => None,
                Some((source, r)) => {
                    let right_plan = q.plan.clone();
                    queries.push(QuerySpec {
                        name: stage_name(&q.name, 1),
                        source,
                        operators: Arc::new(move || Ok(right_plan.right_operators())),
                        keyed: None,
                        right: None,
                        late: LateRows::Keep,
                        lateness: Lateness::BelowWatermark,
                        sink: r.writer,
                        strategy,
                        dead_letter,
                        channel_capacity,
                        metrics: Vec::new(),
                    });
                    b.sources.push(SourceSpec {
                        name: r.reader_name,
                        source: r.reader,
                        batch_size,
                        event_time: r.event_time,
                        idle_timeout: None,
                    });
                    Some(RightInput {
                        source: b.sources.len() - 1,
                        operators: Arc::new(|| Ok(Vec::new())),
                    })
                }
            };
            queries.push(QuerySpec {
                name: q.name.clone(),
                source: reader,
                operators: Arc::new(|| Ok(Vec::new())),
                keyed: Some(KeyedStage {
                    key_columns: keyed.key_columns.clone(),
                    right_key_columns: keyed.right_key_columns.clone(),
                    operators: keyed.operators.clone(),
                    order_columns: keyed.order_columns,
                    per_source_partition: true,
                    limits: settings.limits,
                }),
                right: right_reader,
                late,
                lateness: q.plan.lateness,
                sink,
                strategy,
                dead_letter,
                channel_capacity,
                metrics: q.metrics.clone(),
            });
            continue;
        }
        queries.push(QuerySpec {
            name: q.name.clone(),
            source: index,
            operators: Arc::new(move || Ok(plan.operators(ops_table.clone()))),
            keyed: q.plan.keyed.as_ref().map(|k| KeyedStage {
                key_columns: k.key_columns.clone(),
                right_key_columns: k.right_key_columns.clone(),
                operators: k.operators.clone(),
                order_columns: k.order_columns,
                per_source_partition: false,
                limits: settings.limits,
            }),
            right: right.map(|(source, _)| {
                let right_plan = q.plan.clone();
                RightInput {
                    source,
                    operators: Arc::new(move || Ok(right_plan.right_operators())),
                }
            }),
            late,
            lateness: q.plan.lateness,
            sink,
            strategy,
            dead_letter,
            channel_capacity,
            metrics: q.metrics.clone(),
        });
    }
    Ok(JobSpec {
        sources: b.sources,
        tables: b.tables,
        queries,
        dead_letters: b.dead_letters,
        config,
    })
}
