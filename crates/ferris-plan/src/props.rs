//! Engine-wide `WITH` properties (the rest go to the connector).

use crate::error::PlanError;
use ferris_runtime::ErrorStrategy;
use ferris_sql::ast::{Property, Span};
use std::collections::BTreeMap;

/// Keys the engine reads itself; every other key belongs to the connector.
pub const ENGINE_KEYS: &[&str] = &[
    "error.strategy",
    "dead_letter.path",
    "batch.size",
    "channel.capacity",
    "event.time.field",
    "watermark.max_out_of_orderness",
    "watermark.idle_timeout",
    "late.data.strategy",
    "state.ttl",
    "state.max.rows",
    "state.max.bytes",
    "window.allowed.lateness",
    "state.share",
];

/// Keys under this prefix belong to the engine's internal repartition topics; SQL may not
/// set them.
pub const RESERVED_PREFIX: &str = "repartition.";

/// Engine settings from one `WITH` list; `None` where not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineProps {
    /// `'error.strategy'`.
    pub error_strategy: Option<ErrorStrategy>,
    /// `'dead_letter.path'` as written.
    pub dead_letter_path: Option<String>,
    /// `'batch.size'` (rows per source batch, default 1024).
    pub batch_size: Option<usize>,
    /// `'channel.capacity'` (rows per channel).
    pub channel_capacity: Option<usize>,
    /// `'event.time.field'`.
    pub event_time_field: Option<String>,
    /// `'watermark.max_out_of_orderness'` in ms.
    pub max_out_of_orderness_ms: Option<i64>,
    /// `'watermark.idle_timeout'` in ms.
    pub idle_timeout_ms: Option<i64>,
    /// `'late.data.strategy'` (`drop` or `dead_letter`).
    pub late_data_dead_letter: Option<bool>,
    /// `'state.ttl'` in ms: an unwindowed GROUP BY forgets a group once the watermark is
    /// this far past the group's last row.
    pub state_ttl_ms: Option<i64>,
    /// The TTL came from the statement around a subquery: it applies where the subquery's
    /// shape takes one (an unwindowed GROUP BY, a regular join) and is ignored elsewhere.
    pub state_ttl_inherited: bool,
    /// `'window.allowed.lateness'` in ms: the grace period of the query's window when its
    /// `WINDOW` clause gives none (a window table function has no place for one).
    pub allowed_lateness_ms: Option<i64>,
    /// `'state.max.rows'`: entries one keyed partition of the query's stateful operator may
    /// hold.
    pub state_max_rows: Option<usize>,
    /// `'state.max.bytes'`: approximate bytes one keyed partition of the query's stateful
    /// operator may hold.
    pub state_max_bytes: Option<usize>,
    /// `'metric.NAME.ATTR'` keys (business metrics of a query): full key → value and where
    /// it was written; checked against the query's output by [`crate::metrics::declared`].
    pub metrics: BTreeMap<String, (String, Span)>,
    /// `'state.share'`: the share of window state the query computes in (see
    /// [`crate::share`]).
    pub share: Option<String>,
    /// Where each engine key was written (for errors about its value).
    pub spans: BTreeMap<String, Span>,
}

impl EngineProps {
    /// Where `key` was written, or `fallback`.
    pub fn span_of(&self, key: &str, fallback: Span) -> Span {
        self.spans.get(key).copied().unwrap_or(fallback)
    }
}

/// Splits a `WITH` list into engine settings and connector properties. Duplicate keys are
/// an error at the second occurrence.
pub fn split(
    props: &[Property],
    fallback: Span,
) -> Result<(EngineProps, BTreeMap<String, String>), PlanError> {
    let mut engine = EngineProps::default();
    let mut connector = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for p in props {
        let span = if p.span.start.line > 0 {
            p.span
        } else {
            fallback
        };
        if seen.insert(p.key.clone(), ()).is_some() {
            return Err(PlanError::at(
                format!("property '{}' is given twice", p.key),
                span,
            ));
        }
        let bad = |what: &str| {
            PlanError::at(
                format!("property '{}' = '{}': {what}", p.key, p.value),
                span,
            )
        };
        match p.key.as_str() {
            "error.strategy" => {
                engine.error_strategy = Some(p.value.parse().map_err(|e: String| bad(&e))?)
            }
            "dead_letter.path" => engine.dead_letter_path = Some(p.value.clone()),
            "batch.size" => engine.batch_size = Some(positive(&p.value).map_err(|e| bad(&e))?),
            "channel.capacity" => {
                engine.channel_capacity = Some(positive(&p.value).map_err(|e| bad(&e))?)
            }
            "event.time.field" => engine.event_time_field = Some(p.value.clone()),
            "watermark.max_out_of_orderness" => {
                engine.max_out_of_orderness_ms =
                    Some(parse_duration_ms(&p.value).map_err(|e| bad(&e))?)
            }
            "watermark.idle_timeout" => {
                engine.idle_timeout_ms = Some(parse_duration_ms(&p.value).map_err(|e| bad(&e))?)
            }
            "late.data.strategy" => {
                engine.late_data_dead_letter = Some(match p.value.to_ascii_lowercase().as_str() {
                    "drop" => false,
                    "dead_letter" => true,
                    _ => return Err(bad("expected 'drop' or 'dead_letter'")),
                })
            }
            "state.ttl" => {
                let ms = parse_duration_ms(&p.value).map_err(|e| bad(&e))?;
                if ms <= 0 {
                    return Err(bad("expected a positive duration"));
                }
                engine.state_ttl_ms = Some(ms)
            }
            "window.allowed.lateness" => {
                engine.allowed_lateness_ms = Some(parse_duration_ms(&p.value).map_err(|e| bad(&e))?)
            }
            "state.max.rows" => {
                engine.state_max_rows = Some(positive(&p.value).map_err(|e| bad(&e))?)
            }
            "state.max.bytes" => {
                engine.state_max_bytes = Some(parse_bytes(&p.value).map_err(|e| bad(&e))?)
            }
            "state.share" => {
                let ok = !p.value.is_empty()
                    && p.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(bad("expected a name of letters, digits and '_'"));
                }
                engine.share = Some(p.value.to_ascii_lowercase())
            }
            key if key.starts_with(crate::metrics::PREFIX) => {
                engine
                    .metrics
                    .insert(key.to_string(), (p.value.clone(), span));
            }
            key if key.starts_with(RESERVED_PREFIX) => {
                return Err(PlanError::at(
                    format!(
                        "property '{key}' is reserved: the engine sets 'repartition.*' on the \
                         repartition topics it creates for keyed queries over consumer groups, \
                         and SQL may not set it"
                    ),
                    span,
                ));
            }
            _ => {
                connector.insert(p.key.clone(), p.value.clone());
                continue;
            }
        }
        engine.spans.insert(p.key.clone(), span);
    }
    Ok((engine, connector))
}

fn positive(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a positive integer".into()),
    }
}

/// Parses a positive byte count: `1048576`, `512KB`, `64MB`, `2GB` (powers of 1024; `KiB`,
/// `MiB`, `GiB` are accepted too).
pub fn parse_bytes(v: &str) -> Result<usize, String> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("expected a size like 1048576, 512KB, 64MB or 2GB, found '{v}'"))?;
    let factor: usize = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" | "K" => 1 << 10,
        "MB" | "MIB" | "M" => 1 << 20,
        "GB" | "GIB" | "G" => 1 << 30,
        "TB" | "TIB" | "T" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}': use B, KB, MB, GB or TB"
            ));
        }
    };
    match n.checked_mul(factor) {
        Some(0) => Err("expected a positive size".into()),
        Some(b) => Ok(b),
        None => Err(format!("size '{v}' is too large")),
    }
}

/// Parses `5s`, `500ms`, `1m`, `2h`, `1d` or a plain number of milliseconds.
pub fn parse_duration_ms(v: &str) -> Result<i64, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 5s, 500ms, 1m, 2h or 1d, found '{v}'"))?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit '{other}': use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("duration '{v}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5s"), Ok(5_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("7"), Ok(7));
        assert!(parse_duration_ms("5 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512KB"), Ok(512 << 10));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert_eq!(parse_bytes("0"), Err("expected a positive size".into()));
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
