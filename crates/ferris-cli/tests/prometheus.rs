//! A real Prometheus (Debian package `prometheus`, installed by `.ci/run`) scrapes a running
//! server: the shipped alert rules load, and every Grafana panel's PromQL and every alert's
//! metrics return series through Prometheus' HTTP API.

mod server_support;

use serde_json::Value;
use server_support::{Server, TOKEN, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, target: &str) -> Prometheus {
    let config = dir.join("prometheus.yml");
    let rules = root().join("deploy/prometheus/alerts.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: ferrisstreams\n    honor_labels: true\n    \
             static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (apt-get install prometheus) starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn get(url: &str) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(url).call().ok()?;
    let text = r.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

fn query(p: &Prometheus, expr: &str) -> Value {
    let mut url = format!("{}/api/v1/query?query=", p.url);
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    get(&url).unwrap_or(Value::Null)
}

fn series(v: &Value) -> usize {
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

/// The expressions of every panel of a Grafana dashboard, with its variables filled in.
fn panel_exprs(file: &str) -> Vec<(String, String)> {
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(file)).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "30s")
                .replace("$__range", "1m")
                .replace("$job", ".*")
                .replace("$symbol", ".*");
            out.push((panel["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_the_server_and_every_panel_and_alert_has_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    // The example application's metrics, over an unbounded generated stream.
    let app = std::fs::read_to_string(root().join("examples/trading.sql"))
        .unwrap()
        .replace(
            "WITH ('connector' = 'file', 'path' = 'data/trades.csv', 'format' = 'csv')",
            "WITH ('connector' = 'datagen', 'generator' = 'trades', 'rate' = '300')",
        )
        .replace(
            "'path' = '../out/big_trades.jsonl'",
            "'path' = 'big_trades.jsonl'",
        )
        .replace(
            "'path' = '../out/minute_bars.jsonl'",
            "'path' = 'minute_bars.jsonl'",
        );
    let app = app
        .split(";\n")
        .filter(|s| {
            !s.trim_start()
                .lines()
                .filter(|l| !l.starts_with("--"))
                .collect::<String>()
                .trim_start()
                .starts_with("SELECT")
        })
        .collect::<Vec<_>>()
        .join(";\n");
    let (status, v) = server.deploy("trading", &app, dir.path(), &[]);
    assert_eq!(status, 201, "{v}");
    let target = server.url.trim_start_matches("http://").to_string();
    let prom = start_prometheus(dir.path(), &target);

    // Scraped several times, so that rates have points.
    let started = Instant::now();
    loop {
        let up = query(&prom, "up{job=\"ferrisstreams\"}");
        let scrapes = query(&prom, "count_over_time(ferris_job_up{job=\"trading\"}[1m])");
        let n = scrapes["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        if up["data"]["result"][0]["value"][1] == "1" && n >= 8.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not scrape: {up}; log: {}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The alert rules loaded, all six, and evaluate without errors.
    let rules = get(&format!("{}/api/v1/rules", prom.url)).unwrap();
    let loaded: Vec<(String, String)> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["health"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(loaded.len(), 6, "{rules}");
    // Health is "unknown" until the first evaluation.
    let started = Instant::now();
    loop {
        let rules = get(&format!("{}/api/v1/rules", prom.url)).unwrap();
        let health: Vec<&str> = rules["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["health"].as_str().unwrap())
            .collect();
        if health.iter().all(|h| *h == "ok") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{rules}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Every metric an alert reads is exported.
    let alerts = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut names: Vec<String> = Vec::new();
    for line in alerts.lines() {
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if (word.starts_with("ferris_") || word.starts_with("process_"))
                && !names.contains(&word.to_string())
            {
                names.push(word.to_string());
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let v = query(&prom, name);
        assert!(series(&v) > 0, "alert metric {name} has no series: {v}");
    }
    // Every panel of both dashboards returns series.
    let mut empty = Vec::new();
    let mut total = 0;
    for file in [
        "deploy/grafana/operations.json",
        "deploy/grafana/business.json",
    ] {
        for (title, expr) in panel_exprs(file) {
            total += 1;
            let v = query(&prom, &expr);
            assert_eq!(v["status"], "success", "{file} '{title}': {expr}: {v}");
            if series(&v) == 0 {
                empty.push(format!("{file} '{title}': {expr}"));
            }
        }
    }
    assert!(total >= 50, "{total} panel queries");
    assert!(
        empty.is_empty(),
        "panels without series:\n{}",
        empty.join("\n")
    );
    drop(server);
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_on_their_unit_tests() {
    for args in [
        vec!["check", "rules", "deploy/prometheus/alerts.yml"],
        vec!["test", "rules", "deploy/prometheus/alerts_test.yml"],
        vec!["check", "config", "deploy/prometheus/prometheus.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(root())
            .output()
            .expect("promtool (apt-get install prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
