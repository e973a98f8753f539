//! Typed access to connector `WITH` properties, with user-facing errors.

use crate::ConnectorError;
use std::collections::BTreeMap;

/// The properties of one connector instance, checked against the keys it accepts.
pub struct Props<'a> {
    what: String,
    valid: &'static [&'static str],
    map: &'a BTreeMap<String, String>,
}

impl<'a> Props<'a> {
    /// Checks that every key of `map` is in `valid`; `what` names the connector in errors
    /// (e.g. `file source`).
    pub fn new(
        what: impl Into<String>,
        valid: &'static [&'static str],
        map: &'a BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let what = what.into();
        if let Some(key) = map.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(ConnectorError::UnknownProperty {
                key: key.clone(),
                connector: what,
                valid: valid.join(", "),
            });
        }
        Ok(Props { what, valid, map })
    }

    /// The connector description used in errors.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        debug_assert!(self.valid.contains(&key));
        self.map.get(key).map(String::as_str)
    }

    /// The value of a required key.
    pub fn required(&self, key: &str) -> Result<&'a str, ConnectorError> {
        self.get(key)
            .ok_or_else(|| ConnectorError::MissingProperty {
                key: key.to_string(),
                connector: self.what.clone(),
            })
    }

    /// An error for a bad value of `key`.
    pub fn invalid(&self, key: &str, value: &str, expected: impl Into<String>) -> ConnectorError {
        ConnectorError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            connector: self.what.clone(),
            expected: expected.into(),
        }
    }

    /// A boolean (`true`/`false`, any case), `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConnectorError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.invalid(key, v, "'true' or 'false'")),
        }
    }

    /// A non-negative integer, if given.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.invalid(key, v, "a non-negative integer")),
        }
    }

    /// A positive number (e.g. a rate), if given.
    pub fn positive_f64(&self, key: &str) -> Result<Option<f64>, ConnectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(self.invalid(key, v, "a positive number")),
            },
        }
    }
}
