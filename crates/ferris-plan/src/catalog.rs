//! The names DataFusion's SQL planner can see: declared sources and the function library.

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DataFusionError, Result, TableReference};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};
use std::collections::HashMap;
use std::sync::Arc;

/// Sources by name plus every built-in scalar, aggregate and window function.
pub struct Catalog {
    tables: HashMap<String, Arc<dyn TableSource>>,
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
        for f in datafusion_functions::all_default_functions() {
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
        let mut windows = HashMap::new();
        for f in datafusion_functions_window::all_default_window_functions() {
            for alias in f.aliases() {
                windows.insert(alias.to_string(), f.clone());
            }
            windows.insert(f.name().to_string(), f);
        }
        Catalog {
            tables: HashMap::new(),
            scalars,
            aggregates,
            windows,
            options: ConfigOptions::default(),
            planners: vec![
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
                Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
                Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
            ],
        }
    }

    /// Declares a source (lower-cased name, as SQL identifiers are normalized).
    pub fn add_table(&mut self, name: &str, schema: SchemaRef) {
        self.tables.insert(
            name.to_ascii_lowercase(),
            Arc::new(LogicalTableSource::new(schema)),
        );
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
    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }
    fn udwf_names(&self) -> Vec<String> {
        self.windows.keys().cloned().collect()
    }
}
