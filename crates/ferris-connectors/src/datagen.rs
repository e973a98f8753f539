//! `'connector'='datagen'`: built-in generators.
//!
//! `'generator'='trades'` (default) produces stock trades, deterministic for a `'seed'`.
//! Declared columns are taken by name from:
//!
//! | column | type | value |
//! | --- | --- | --- |
//! | `symbol` | VARCHAR | uniform among `'symbols'` |
//! | `price` | DECIMAL(p,s) or DOUBLE | a random walk per symbol, at the declared scale, always > 0 |
//! | `volume` | BIGINT or INT | 1..=1000 |
//! | `ts` | TIMESTAMP | `'start'` + (row - 1) * `'interval.ms'` |
//! | `side` | VARCHAR | `BUY` or `SELL` |
//! | `id` | BIGINT or INT | the row number (1-based) |
//!
//! Properties: `'seed'` (42), `'symbols'` (`AAPL,MSFT,GOOG,AMZN,TSLA`), `'events'` (total
//! rows; default unbounded), `'rate'` (rows per second; default unlimited: when set, the
//! source is idle until the next rows are due by the wall clock), `'start'` (a timestamp,
//! default `2024-01-01T00:00:00Z`), `'interval.ms'` (1000). The values drawn for a row do not
//! depend on which columns are declared. Positions are row numbers (1-based); the location is
//! `datagen(trades)`. For `'generator'='nexmark'` see [`crate::nexmark_source`].

use crate::ConnectorError;
use crate::formats::convert::{parse_timestamp_millis, sql_type_name, timestamp_in_unit};
use crate::props::Props;
use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, StringBuilder,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use ferris_runtime::{Source, SourceError, SourcePoll};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// 2024-01-01T00:00:00Z in epoch milliseconds: the default `'start'`.
pub const DEFAULT_START_MS: i64 = 1_704_067_200_000;

/// Creates a datagen source from its properties (`'generator'` selects the generator).
pub fn create(
    schema: SchemaRef,
    props: &BTreeMap<String, String>,
) -> Result<Box<dyn Source>, ConnectorError> {
    let generator = props.get("generator").map_or("trades", String::as_str);
    match generator.to_ascii_lowercase().as_str() {
        "trades" => Ok(Box::new(TradesSource::new(
            schema,
            TradesConfig::from_props(props)?,
        )?)),
        "nexmark" => {
            let config = crate::nexmark_source::NexmarkConfig::from_props(props)?;
            Ok(Box::new(crate::nexmark_source::NexmarkSource::new(
                schema, config,
            )?))
        }
        other => Err(ConnectorError::InvalidValue {
            key: "generator".into(),
            value: other.to_string(),
            connector: "datagen source".into(),
            expected: "'trades' or 'nexmark'".into(),
        }),
    }
}

/// Row limits shared by the generators: a total and a wall-clock rate.
#[derive(Debug, Clone)]
pub struct Limits {
    events: Option<u64>,
    rate: Option<f64>,
    started: Option<Instant>,
    produced: u64,
}

/// What a generator may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Produce this many rows (> 0).
    Rows(usize),
    /// Nothing is due yet.
    Idle,
    /// The total is reached.
    End,
}

impl Limits {
    /// `events` rows in total (None: unbounded), at most `rate` rows per second.
    pub fn new(events: Option<u64>, rate: Option<f64>) -> Self {
        Limits {
            events,
            rate,
            started: None,
            produced: 0,
        }
    }

    /// Rows produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// How many rows may be produced now, at most `max_rows`.
    pub fn allow(&mut self, max_rows: usize) -> Allowed {
        let mut n = max_rows.max(1) as u64;
        if let Some(total) = self.events {
            if self.produced >= total {
                return Allowed::End;
            }
            n = n.min(total - self.produced);
        }
        if let Some(rate) = self.rate {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
            if self.produced >= due {
                return Allowed::Idle;
            }
            n = n.min(due - self.produced);
        }
        Allowed::Rows(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Records that `n` rows were produced.
    pub fn advance(&mut self, n: usize) {
        self.produced += n as u64;
    }
}

/// Properties of the trades generator.
#[derive(Debug, Clone, PartialEq)]
pub struct TradesConfig {
    /// `'seed'` (default 42).
    pub seed: u64,
    /// `'symbols'`: comma-separated (default `AAPL,MSFT,GOOG,AMZN,TSLA`).
    pub symbols: Vec<String>,
    /// `'events'`: total rows (default unbounded).
    pub events: Option<u64>,
    /// `'rate'`: rows per second (default unlimited).
    pub rate: Option<f64>,
    /// `'start'`: timestamp of the first row, epoch ms (default 2024-01-01T00:00:00Z).
    pub start_ms: i64,
    /// `'interval.ms'`: event-time step between rows (default 1000).
    pub interval_ms: i64,
}

/// The keys the trades generator accepts.
pub const TRADES_KEYS: &[&str] = &[
    "connector",
    "generator",
    "seed",
    "symbols",
    "events",
    "rate",
    "start",
    "interval.ms",
];

impl Default for TradesConfig {
    fn default() -> Self {
        TradesConfig {
            seed: 42,
            symbols: ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA"]
                .map(String::from)
                .to_vec(),
            events: None,
            rate: None,
            start_ms: DEFAULT_START_MS,
            interval_ms: 1000,
        }
    }
}

/// Parses `'start'` (any accepted timestamp form).
pub(crate) fn start_ms(p: &Props<'_>) -> Result<i64, ConnectorError> {
    match p.get("start") {
        None => Ok(DEFAULT_START_MS),
        Some(v) => parse_timestamp_millis(v.as_bytes())
            .ok_or_else(|| p.invalid("start", v, "a timestamp such as 2024-01-01T00:00:00Z")),
    }
}

impl TradesConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("datagen source (generator 'trades')", TRADES_KEYS, props)?;
        let mut c = TradesConfig::default();
        if let Some(seed) = p.u64("seed")? {
            c.seed = seed;
        }
        if let Some(s) = p.get("symbols") {
            let symbols: Vec<String> = s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect();
            if symbols.is_empty() {
                return Err(p.invalid("symbols", s, "a comma-separated list of symbols"));
            }
            c.symbols = symbols;
        }
        c.events = p.u64("events")?;
        c.rate = p.positive_f64("rate")?;
        c.start_ms = start_ms(&p)?;
        if let Some(v) = p.get("interval.ms") {
            c.interval_ms = v
                .trim()
                .parse()
                .map_err(|_| p.invalid("interval.ms", v, "an integer number of milliseconds"))?;
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, Copy)]
enum TradeColumn {
    Symbol,
    PriceDecimal(u8, i8),
    PriceDouble,
    Volume(bool),
    Ts(TimeUnit),
    Side,
    Id(bool),
}

/// Generates trades (see the module documentation).
pub struct TradesSource {
    schema: SchemaRef,
    columns: Vec<TradeColumn>,
    config: TradesConfig,
    rng: StdRng,
    prices: Vec<f64>,
    limits: Limits,
}

const TRADE_COLUMNS: &str = "symbol, price, volume, ts, side, id";

fn wrong_type(column: &str, expected: &str, dt: &DataType) -> ConnectorError {
    ConnectorError::Schema(format!(
        "column '{column}' of generator 'trades' must be {expected}, not {}",
        sql_type_name(dt)
    ))
}

impl TradesSource {
    /// A generator of the declared columns; fails naming columns it does not know.
    pub fn new(schema: SchemaRef, config: TradesConfig) -> Result<Self, ConnectorError> {
        let mut columns = Vec::new();
        let mut unknown = Vec::new();
        for f in schema.fields() {
            let dt = f.data_type();
            let int = |expected: &str| match dt {
                DataType::Int64 => Ok(false),
                DataType::Int32 => Ok(true),
                _ => Err(wrong_type(f.name(), expected, dt)),
            };
            let col = match f.name().to_ascii_lowercase().as_str() {
                "symbol" | "side" if *dt != DataType::Utf8 => {
                    return Err(wrong_type(f.name(), "VARCHAR", dt));
                }
                "symbol" => TradeColumn::Symbol,
                "side" => TradeColumn::Side,
                "price" => match dt {
                    DataType::Decimal128(p, s) => TradeColumn::PriceDecimal(*p, *s),
                    DataType::Float64 => TradeColumn::PriceDouble,
                    _ => return Err(wrong_type(f.name(), "DECIMAL or DOUBLE", dt)),
                },
                "volume" => TradeColumn::Volume(int("BIGINT or INT")?),
                "id" => TradeColumn::Id(int("BIGINT or INT")?),
                "ts" => match dt {
                    DataType::Timestamp(unit, _) => TradeColumn::Ts(*unit),
                    _ => return Err(wrong_type(f.name(), "TIMESTAMP", dt)),
                },
                _ => {
                    unknown.push(format!("'{}'", f.name()));
                    continue;
                }
            };
            columns.push(col);
        }
        if !unknown.is_empty() {
            return Err(ConnectorError::Schema(format!(
                "generator 'trades' has no column {} (it generates: {TRADE_COLUMNS})",
                unknown.join(", ")
            )));
        }
        let mut rng = StdRng::seed_from_u64(config.seed);
        let prices = config
            .symbols
            .iter()
            .map(|_| rng.random_range(50.0..500.0))
            .collect();
        let limits = Limits::new(config.events, config.rate);
        Ok(TradesSource {
            schema,
            columns,
            config,
            rng,
            prices,
            limits,
        })
    }

    fn generate(&mut self, n: usize) -> Result<RecordBatch, SourceError> {
        let first = self.limits.produced() + 1;
        let mut sym = Vec::with_capacity(n);
        let mut price = Vec::with_capacity(n);
        let mut volume = Vec::with_capacity(n);
        let mut buy = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.rng.random_range(0..self.prices.len());
            let step: f64 = self.rng.random_range(-0.002..0.002);
            let p = (self.prices[s] * (1.0 + step)).max(0.01);
            self.prices[s] = p;
            sym.push(s);
            price.push(p);
            volume.push(self.rng.random_range(1..=1000i64));
            buy.push(self.rng.random_bool(0.5));
        }
        let rows = first..first + n as u64;
        let ts_ms = |row: u64| {
            self.config
                .start_ms
                .saturating_add((row as i64 - 1).saturating_mul(self.config.interval_ms))
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let a: ArrayRef = match *col {
                TradeColumn::Symbol | TradeColumn::Side => {
                    let mut b = StringBuilder::with_capacity(n, n * 4);
                    for i in 0..n {
                        match col {
                            TradeColumn::Symbol => b.append_value(&self.config.symbols[sym[i]]),
                            _ => b.append_value(if buy[i] { "BUY" } else { "SELL" }),
                        }
                    }
                    Arc::new(b.finish())
                }
                TradeColumn::PriceDecimal(p, s) => {
                    let factor = 10f64.powi(i32::from(s));
                    let max = 10f64.powi(i32::from(p)) - 1.0;
                    let v: Vec<i128> = price
                        .iter()
                        .map(|x| (x * factor).round().clamp(1.0, max) as i128)
                        .collect();
                    Arc::new(
                        Decimal128Array::from(v)
                            .with_precision_and_scale(p, s)
                            .map_err(SourceError::from_cause)?,
                    )
                }
                TradeColumn::PriceDouble => Arc::new(Float64Array::from(
                    price
                        .iter()
                        .map(|x| (x * 10_000.0).round() / 10_000.0)
                        .collect::<Vec<_>>(),
                )),
                TradeColumn::Volume(false) => Arc::new(Int64Array::from(volume.clone())),
                TradeColumn::Volume(true) => Arc::new(Int32Array::from(
                    volume.iter().map(|v| *v as i32).collect::<Vec<_>>(),
                )),
                TradeColumn::Id(false) => {
                    Arc::new(Int64Array::from_iter_values(rows.clone().map(|r| r as i64)))
                }
                TradeColumn::Id(true) => Arc::new(Int32Array::from_iter_values(
                    rows.clone().map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
                )),
                TradeColumn::Ts(unit) => timestamp_array_from_millis(rows.clone().map(ts_ms), unit),
            };
            arrays.push(a);
        }
        finish_batch(&self.schema, arrays, n)
    }
}

/// A timestamp array of `unit` from epoch milliseconds (values a unit cannot hold saturate).
pub(crate) fn timestamp_array_from_millis(
    millis: impl Iterator<Item = i64>,
    unit: TimeUnit,
) -> ArrayRef {
    let v = millis.map(|ms| {
        let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
        timestamp_in_unit(ms.div_euclid(1000), nanos, &unit).unwrap_or(if ms < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    });
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from_iter_values(v)),
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from_iter_values(v)),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from_iter_values(v)),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from_iter_values(v)),
    }
}

/// Builds a batch of `schema` from `arrays` (which must be of the declared types, apart from
/// timezone metadata, which is taken from the schema).
pub(crate) fn finish_batch(
    schema: &SchemaRef,
    arrays: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, SourceError> {
    let arrays = arrays
        .into_iter()
        .zip(schema.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                Ok(a)
            } else {
                arrow::compute::cast(&a, f.data_type()).map_err(SourceError::from_cause)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
        .map_err(SourceError::from_cause)
}

impl Source for TradesSource {
    fn location(&self) -> String {
        "datagen(trades)".into()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        match self.limits.allow(max_rows) {
            Allowed::End => Ok(SourcePoll::End),
            Allowed::Idle => Ok(SourcePoll::Idle),
            Allowed::Rows(n) => {
                let first = self.limits.produced() + 1;
                let records = self.generate(n)?;
                self.limits.advance(n);
                Ok(SourcePoll::Batch {
                    records,
                    positions: (first..first + n as u64).collect(),
                    rejects: Vec::new(),
                })
            }
        }
    }
}
