//! `ferris-cli run --openlineage TARGET`: the job's OpenLineage run events (START, RUNNING
//! every `--openlineage-interval`, then COMPLETE or FAIL), appended as JSON lines to a file
//! or POSTed to an HTTP endpoint (Marquez's `/api/v1/lineage`, for instance).

use ferris_engine::openlineage::{EventType, RunDescription};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Where events go.
enum Target {
    File(PathBuf),
    Http(String),
}

/// Sends one run's events.
pub struct Emitter {
    target: Target,
    run: RunDescription,
    warned: AtomicBool,
}

/// A random (version 4) UUID.
pub fn run_id() -> String {
    let mut b = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !filled {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Emitter {
    /// Events of `run` to `target`: an `http://` or `https://` URL, else a file path.
    pub fn new(target: &str, run: RunDescription) -> Self {
        let target = if target.starts_with("http://") || target.starts_with("https://") {
            Target::Http(target.to_string())
        } else {
            Target::File(PathBuf::from(target))
        };
        Emitter {
            target,
            run,
            warned: AtomicBool::new(false),
        }
    }

    /// Sends the event `kind` (with the error of a failed run); a failure to send is said
    /// once on stderr and does not stop the job.
    pub fn emit(&self, kind: EventType, error: Option<&str>) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = self.run.event(kind, &time, error);
        if let Err(e) = self.send(&event.to_string())
            && !self.warned.swap(true, Ordering::SeqCst)
        {
            eprintln!("warning: OpenLineage: {e} (later failures are not reported)");
        }
    }

    fn send(&self, body: &str) -> Result<(), String> {
        match &self.target {
            Target::File(path) => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                writeln!(f, "{body}").map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            Target::Http(url) => {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let response = agent
                    .post(url)
                    .header("content-type", "application/json")
                    .send(body)
                    .map_err(|e| format!("cannot reach {url}: {e}"))?;
                let status = response.status().as_u16();
                if status >= 300 {
                    return Err(format!("{url} answered HTTP {status}"));
                }
                Ok(())
            }
        }
    }
}

/// Sends RUNNING at an interval until finished.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Ticker {
    /// Sends RUNNING every `interval`.
    pub fn start(emitter: std::sync::Arc<Emitter>, interval: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                emitter.emit(EventType::Running, None);
            }
        });
        Ticker { stop, thread }
    }

    /// Stops, after a RUNNING event being sent (none comes after this returns).
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
