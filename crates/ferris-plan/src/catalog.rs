//! The names DataFusion's SQL planner can see: declared sources and the function library.

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DataFusionError, Result, TableReference};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};
use std::collections::HashMap;
use std::sync::Arc;

/// The column holding a window's start in windowed queries.
pub const WINDOW_START: &str = "_window_start";
/// The column holding a window's end in windowed queries.
pub const WINDOW_END: &str = "_window_end";

/// Sources by name plus every built-in scalar, aggregate and window function.
#[derive(Clone)]
pub struct Catalog {
    tables: HashMap<String, Arc<dyn TableSource>>,
    schemas: HashMap<String, SchemaRef>,
    event_times: HashMap<String, String>,
    /// Sources read in consumer-group mode, with their group id.
    groups: HashMap<String, String>,
    primary_keys: HashMap<String, Vec<String>>,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    windows: HashMap<String, Arc<WindowUDF>>,
    options: ConfigOptions,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// A catalog with the DataFusion function library and no tables.
    pub fn new() -> Self {
        let mut scalars = HashMap::new();
        let library = datafusion_functions::all_default_functions()
            .into_iter()
            .chain(datafusion_functions_nested::all_default_nested_functions())
            .chain(crate::functions::all());
        for f in library {
            for alias in f.aliases() {
                scalars.insert(alias.to_string(), f.clone());
            }
            scalars.insert(f.name().to_string(), f);
        }
        let mut aggregates = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for alias in f.aliases() {
                aggregates.insert(alias.to_string(), f.clone());
            }
            aggregates.insert(f.name().to_string(), f);
        }
        // Other engines' spellings: VARIANCE (PostgreSQL, Flink), APPROX_COUNT_DISTINCT (Flink,
        // Spark, Snowflake).
        for (alias, name) in [
            ("variance", "var"),
            ("approx_count_distinct", "approx_distinct"),
        ] {
            if let Some(f) = aggregates.get(name).cloned() {
                aggregates.entry(alias.to_string()).or_insert(f);
            }
        }
        let mut windows = HashMap::new();
        for f in datafusion_functions_window::all_default_window_functions() {
            for alias in f.aliases() {
                windows.insert(alias.to_string(), f.clone());
            }
            windows.insert(f.name().to_string(), f);
        }
        Catalog {
            tables: HashMap::new(),
            schemas: HashMap::new(),
            event_times: HashMap::new(),
            groups: HashMap::new(),
            primary_keys: HashMap::new(),
            scalars,
            aggregates,
            windows,
            options: ConfigOptions::default(),
            planners: vec![
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
                Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
                Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
                Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
                Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
            ],
        }
    }

    /// Declares a source (lower-cased name, as SQL identifiers are normalized).
    pub fn add_table(&mut self, name: &str, schema: SchemaRef) {
        let name = name.to_ascii_lowercase();
        self.tables.insert(
            name.clone(),
            Arc::new(LogicalTableSource::new(schema.clone())),
        );
        self.schemas.insert(name, schema);
    }

    /// Records the event-time column of a declared source.
    pub fn set_event_time(&mut self, name: &str, column: &str) {
        self.event_times
            .insert(name.to_ascii_lowercase(), column.to_ascii_lowercase());
    }

    /// The event-time column of a source, if it declares one.
    pub fn event_time(&self, name: &str) -> Option<&str> {
        self.event_times
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// Records that a source is read in consumer-group mode by group `group`.
    pub fn set_group(&mut self, name: &str, group: &str) {
        self.groups
            .insert(name.to_ascii_lowercase(), group.to_string());
    }

    /// The consumer group of a source read in group mode.
    pub fn group(&self, name: &str) -> Option<&str> {
        self.groups
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// Marks a source as a TABLE keyed by `key` (its PRIMARY KEY).
    pub fn set_primary_key(&mut self, name: &str, key: Vec<String>) {
        self.primary_keys.insert(name.to_ascii_lowercase(), key);
    }

    /// The PRIMARY KEY of a TABLE; `None` for streams.
    pub fn primary_key(&self, name: &str) -> Option<&[String]> {
        self.primary_keys
            .get(&name.to_ascii_lowercase())
            .map(|k| k.as_slice())
    }

    /// The declared schema of a source.
    pub fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.schemas.get(&name.to_ascii_lowercase()).cloned()
    }

    /// A view in which `name` also has the `_window_start` and `_window_end` columns
    /// (TIMESTAMP, after the declared ones) that a windowed query may select.
    pub fn with_window_columns(&self, name: &str) -> Catalog {
        let mut view = self.clone();
        if let Some(schema) = self.schema(name) {
            let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
            for col in [WINDOW_START, WINDOW_END] {
                fields.push(Arc::new(arrow::datatypes::Field::new(
                    col,
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                    true,
                )));
            }
            let extended = Arc::new(arrow::datatypes::Schema::new(fields));
            view.tables.insert(
                name.to_ascii_lowercase(),
                Arc::new(LogicalTableSource::new(extended)),
            );
        }
        view
    }

    /// Whether a source of that name exists.
    pub fn has_table(&self, name: &str) -> bool {
        self.tables.contains_key(&name.to_ascii_lowercase())
    }

    /// The configuration DataFusion plans with.
    pub fn config(&self) -> &ConfigOptions {
        &self.options
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        self.tables
            .get(&name.table().to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                let mut known: Vec<&String> = self.tables.keys().collect();
                known.sort();
                DataFusionError::Plan(format!(
                    "unknown stream or table '{}'; declared: {}",
                    name.table(),
                    if known.is_empty() {
                        "none (declare it with CREATE STREAM ... WITH (...))".to_string()
                    } else {
                        known
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))
            })
    }
    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }
    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(name).cloned()
    }
    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }
    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.windows.get(name).cloned()
    }
    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.options
    }
    // Sorted, so that DataFusion's "did you mean" picks the same name every run.
    fn udf_names(&self) -> Vec<String> {
        sorted(self.scalars.keys())
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udaf_names(&self) -> Vec<String> {
        sorted(self.aggregates.keys())
    }
    fn udwf_names(&self) -> Vec<String> {
        sorted(self.windows.keys())
    }
}

fn sorted<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut names: Vec<String> = names.cloned().collect();
    names.sort();
    names
}
