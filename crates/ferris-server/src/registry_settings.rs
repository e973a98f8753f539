//! The job settings each environment of a query group runs with (`multi-query scale`):
//! parallelism, channel capacity and the other `--set` keys of `ferris-cli run`, recorded
//! as `scaling` changes and compared between environments by the drift report.

use crate::error::ServerError;
use crate::registry::ChangeType;
use crate::store::Store;
use rusqlite::params;
use std::collections::BTreeMap;

impl Store {
    /// The job settings `environment` of `group` runs with (empty when none were set).
    pub fn job_settings(
        &self,
        group: &str,
        environment: &str,
    ) -> Result<BTreeMap<String, String>, ServerError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT settings FROM registry_job_settings WHERE grp = ?1 AND environment = ?2",
                params![group, environment],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(self.err(e)),
            })?;
        match text {
            Some(t) => serde_json::from_str(&t).map_err(|e| self.err(e)),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Sets `settings` (merged over what `environment` had; an empty value removes a key)
    /// and records a `scaling` change; returns the settings now.
    pub fn scale(
        &self,
        group: &str,
        environment: &str,
        settings: &[(String, String)],
        author: &str,
        now: &str,
    ) -> Result<BTreeMap<String, String>, ServerError> {
        self.releases(group)?;
        let before = self.job_settings(group, environment)?;
        let mut after = before.clone();
        for (k, v) in settings {
            if v.is_empty() {
                after.remove(k);
            } else {
                after.insert(k.clone(), v.clone());
            }
        }
        let text = serde_json::to_string(&after).map_err(|e| self.err(e))?;
        self.conn()
            .execute(
                "INSERT INTO registry_job_settings (grp, environment, settings)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT(grp, environment) DO UPDATE SET settings = ?3",
                params![group, environment, text],
            )
            .map_err(|e| self.err(e))?;
        let mut changed = Vec::new();
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for k in keys {
            let show = |m: &BTreeMap<String, String>| {
                m.get(k).cloned().unwrap_or_else(|| "(unset)".to_string())
            };
            if before.get(k) != after.get(k) {
                changed.push(format!("{k} {} → {}", show(&before), show(&after)));
            }
        }
        let description = match changed.is_empty() {
            true => format!("job settings of {environment} unchanged"),
            false => format!("job settings of {environment}: {}", changed.join(", ")),
        };
        self.conn()
            .execute(
                "INSERT INTO registry_changes
                   (grp, query, environment, change_type, author, description, diff, at)
                 VALUES (?1, NULL, ?2, ?3, ?4, ?5, '', ?6)",
                params![
                    group,
                    environment,
                    ChangeType::Scaling.as_str(),
                    author,
                    description,
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(after)
    }
}
