//! A local `tansu` broker (Kafka protocol) on a free loopback port, with SQLite storage in a
//! temporary directory, for `ferris-cli bench --case kafka` and the Kafka tests (which
//! include this file). tansu's in-memory storage gives a multi-record batch a single offset,
//! which breaks consumers of batched producers, hence SQLite.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker, stopped on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Starts `tansu broker` and waits until it accepts connections.
    pub fn start() -> Result<Broker, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = Command::new("tansu")
            .current_dir(dir.path())
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
                format!(
                    "cannot start tansu (cargo install tansu --locked --features \
                     dynostore,libsql): {e}"
                )
            })?;
        let broker = Broker {
            child,
            address,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(&broker.address).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("tansu did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// Creates topics with `partitions` partitions each (tansu does not auto-create).
    pub fn create_topics(&self, names: &[&str], partitions: i32) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        for r in rt
            .block_on(admin.create_topics(&topics, &AdminOptions::new()))
            .map_err(|e| e.to_string())?
        {
            r.map_err(|(t, e)| format!("{t}: {e}"))?;
        }
        Ok(())
    }
}
