//! The deployed applications, kept in an embedded SQLite database (`DATA_DIR/ferris.db`) so
//! that a restarted server brings its jobs back.

use crate::error::ServerError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// What the server should do with a stored job when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// Run it (it was running when the server stopped).
    Running,
    /// Leave it: it was stopped through the API, finished its bounded input, or failed.
    Ended,
}

impl Desired {
    fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Ended => "ended",
        }
    }
}

/// One stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// The job's name.
    pub name: String,
    /// The application text.
    pub sql: String,
    /// Directory relative paths in the SQL resolve against.
    pub base_dir: PathBuf,
    /// `key=value` job settings.
    pub settings: Vec<String>,
    /// When it was deployed (RFC 3339).
    pub deployed_at: String,
    /// Times the server started it again after an unclean stop (crash, kill).
    pub restarts: u64,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::Store {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    name        TEXT PRIMARY KEY,
    sql         TEXT NOT NULL,
    base_dir    TEXT NOT NULL,
    settings    TEXT NOT NULL,
    desired     TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    restarts    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS server (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

impl Store {
    /// Opens (creating) `dir/ferris.db`.
    pub fn open(dir: &Path) -> Result<Store, ServerError> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        let path = dir.join("ferris.db");
        let conn = Connection::open(&path).map_err(|e| store_err(&path, e))?;
        conn.execute_batch(SCHEMA)
            .and_then(|_| conn.execute_batch(crate::registry::SCHEMA))
            .map_err(|e| store_err(&path, e))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn err(&self, e: impl std::fmt::Display) -> ServerError {
        store_err(&self.path, e)
    }

    /// Marks the server as running and returns whether its previous run ended cleanly
    /// (`true` on a new store).
    pub fn begin(&self) -> Result<bool, ServerError> {
        let conn = self.conn();
        let previous: Option<String> = conn
            .query_row("SELECT value FROM server WHERE key = 'clean'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        conn.execute(
            "INSERT INTO server (key, value) VALUES ('clean', 'false')
             ON CONFLICT(key) DO UPDATE SET value = 'false'",
            [],
        )
        .map_err(|e| self.err(e))?;
        Ok(previous.as_deref() != Some("false"))
    }

    /// Records that the server stopped cleanly (every job drained and committed).
    pub fn end(&self) -> Result<(), ServerError> {
        self.conn()
            .execute("UPDATE server SET value = 'true' WHERE key = 'clean'", [])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores a deployed job (replacing an ended one of the same name) as running.
    pub fn put(&self, job: &StoredJob) -> Result<(), ServerError> {
        let settings = serde_json::to_string(&job.settings).map_err(|e| self.err(e))?;
        self.conn()
            .execute(
                "INSERT INTO jobs (name, sql, base_dir, settings, desired, deployed_at, restarts)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET sql = ?2, base_dir = ?3, settings = ?4,
                     desired = 'running', deployed_at = ?5, restarts = ?6",
                params![
                    job.name,
                    job.sql,
                    job.base_dir.to_string_lossy(),
                    settings,
                    job.deployed_at,
                    job.restarts as i64
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Sets what the server does with job `name` at its next start.
    pub fn set_desired(&self, name: &str, desired: Desired) -> Result<(), ServerError> {
        self.conn()
            .execute(
                "UPDATE jobs SET desired = ?2 WHERE name = ?1",
                params![name, desired.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The jobs to start again, in name order.
    pub fn running(&self) -> Result<Vec<StoredJob>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT name, sql, base_dir, settings, deployed_at, restarts FROM jobs
                 WHERE desired = 'running' ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, sql, base_dir, settings, deployed_at, restarts) =
                row.map_err(|e| self.err(e))?;
            let settings: Vec<String> = serde_json::from_str(&settings)
                .map_err(|e| self.err(format!("job '{name}': settings: {e}")))?;
            out.push(StoredJob {
                name,
                sql,
                base_dir: PathBuf::from(base_dir),
                settings,
                deployed_at,
                restarts: restarts.max(0) as u64,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_survive_reopening_and_clean_flag_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.begin().unwrap());
        let job = StoredJob {
            name: "a".into(),
            sql: "SELECT 1;".into(),
            base_dir: "/tmp".into(),
            settings: vec!["parallelism=2".into()],
            deployed_at: "2026-12-06T00:00:00Z".into(),
            restarts: 0,
        };
        store.put(&job).unwrap();
        store
            .put(&StoredJob {
                name: "b".into(),
                ..job.clone()
            })
            .unwrap();
        store.set_desired("b", Desired::Ended).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.begin().unwrap(), "the first run never ended cleanly");
        assert_eq!(store.running().unwrap(), vec![job]);
        store.end().unwrap();
        assert!(store.begin().unwrap());
    }
}
