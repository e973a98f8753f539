//! A `ferris-cli server` process on a free loopback port, and a real HTTP client for it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The token the tests' servers accept.
pub const TOKEN: &str = "test-token-0123456789";

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: std::path::PathBuf,
}

impl Server {
    /// Starts `ferris-cli server --http 127.0.0.1:0 extra…` with FERRIS_TOKEN = `token`,
    /// logging (JSON lines) to `log`; returns once it listens.
    pub fn start(extra: &[&str], token: Option<&str>, log: &Path) -> Server {
        let log_file = std::fs::File::create(log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferris-cli"));
        cmd.args(["--log-format", "json", "server", "--http", "127.0.0.1:0"])
            .args(extra)
            .env("FERRIS_LOG", "info")
            .env_remove("FERRIS_TOKEN")
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(t) = token {
            cmd.env("FERRIS_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "no listening line: {line:?}; log: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .to_string();
        Server {
            child,
            url,
            log: log.to_path_buf(),
        }
    }

    /// `method path` with an optional bearer token and JSON body: (status, JSON answer).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, token, body);
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON ({e}): {text}"));
        (status, value)
    }

    /// Like [`Server::call`], returning the body as text.
    pub fn call_text(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = match method {
            "GET" => agent.get(&url).call(),
            "DELETE" => agent.delete(&url).call(),
            _ => {
                let mut req = agent.post(&url).header("content-type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.send(body.unwrap_or(""))
            }
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (status, text)
    }

    /// Deploys `sql` as job `name` (base dir `base`); returns (status, answer).
    pub fn deploy(&self, name: &str, sql: &str, base: &Path, settings: &[&str]) -> (u16, Value) {
        let body = serde_json::json!({
            "name": name, "sql": sql, "base_dir": base.to_string_lossy(), "settings": settings,
        });
        self.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&body.to_string()))
    }

    /// The state of job `name`.
    pub fn state(&self, name: &str) -> String {
        let (_, v) = self.call("GET", &format!("/api/v1/jobs/{name}"), None, None);
        v["state"].as_str().unwrap_or("?").to_string()
    }

    /// Polls until `f` holds (or panics after `secs` seconds with `what`).
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut(&Server) -> bool) {
        let started = Instant::now();
        while !f(self) {
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
