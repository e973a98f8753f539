//! A local `tansu` broker (Kafka protocol) on a free loopback port, with SQLite storage in a
//! temporary directory, for `ferris-cli bench --case kafka` and the Kafka tests (which
//! include this file). tansu's in-memory storage gives a multi-record batch a single offset,
//! which breaks consumers of batched producers, hence SQLite.
//!
//! The binary is the one `.ci/run` builds with a fix to tansu 0.6.0's group coordinator
//! (`.ci/tansu/build`, into `~/.local/ferris-tansu/bin/tansu`; without the fix a killed
//! group member's partitions are never handed to the others), or else `tansu` on `PATH`.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary: the patched build when it exists, else `tansu` on `PATH`.
fn binary() -> std::path::PathBuf {
    let patched = std::env::var_os("HOME")
        .map(|home| std::path::PathBuf::from(home).join(".local/ferris-tansu/bin/tansu"));
    match patched {
        Some(p) if p.exists() => p,
        _ => "tansu".into(),
    }
}

/// A running broker, stopped on drop.
pub struct Broker {
    child: Option<Child>,
    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub address: String,
    dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Broker {
    /// Starts `tansu broker` and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Broker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())?;
        let mut broker = Broker {
            child: None,
            address: format!("127.0.0.1:{port}"),
            dir: tempfile::tempdir()?,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// Kills the broker process (its data stays in the SQLite file).
    #[allow(dead_code)] // used by the Kafka tests, not by the bench
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same address and data (after [`Broker::stop`]) and
    /// waits until it accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let url = format!("tcp://{}", self.address);
        let child = Command::new(binary())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start tansu (bash .ci/tansu/build ~/.local/ferris-tansu builds \
                     it; .ci/run does that once): {e}"
                )
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.address).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                anyhow::bail!("tansu did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Creates topics with `partitions` partitions each (tansu does not auto-create).
    pub fn create_topics(&self, names: &[&str], partitions: i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        for r in rt.block_on(admin.create_topics(&topics, &AdminOptions::new()))? {
            r.map_err(|(t, e)| anyhow::anyhow!("{t}: {e}"))?;
        }
        Ok(())
    }
}
