//! `ferris-cli bench --case observability` and `--case scrape`: what watching a job costs.
//!
//! - `observability`: the same bounded pipeline run as `ferris-cli run` processes, with
//!   everything off (text logs at WARN, no HTTP, no traces) and with everything on (JSON logs
//!   at INFO, `--http` scraped every second, 1% of batches traced to an OTLP endpoint),
//!   interleaved over several rounds; reports each run's wall time, the medians and the ratio.
//! - `scrape`: a server hosting 50 running jobs; times `GET /metrics` (median and worst of
//!   20) and reports the exposition's size.

use anyhow::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("the ferris-cli executable")
}

/// A loopback HTTP endpoint that answers 200 to every request (an OTLP receiver that keeps
/// nothing); returns its URL and the number of requests it served.
fn otlp_sink() -> anyhow::Result<(String, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || serve_one(stream, &count));
        }
    });
    Ok((url, served))
}

fn serve_one(stream: std::net::TcpStream, count: &std::sync::atomic::AtomicU64) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut stream = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // Headers.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn app(rows: u64, batch: usize, dir: &Path) -> String {
    format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           WITH ('connector' = 'datagen', 'generator' = 'trades', 'events' = '{rows}',
                 'batch.size' = '{batch}');
         CREATE STREAM big WITH ('connector' = 'blackhole',
             'metric.big.type' = 'counter', 'metric.big.labels' = 'symbol') AS
           SELECT symbol, price * volume AS notional FROM trades WHERE volume > 100;
         CREATE STREAM bars WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json') AS
           SELECT symbol, COUNT(*) AS n, SUM(volume) AS v FROM trades GROUP BY symbol
           WINDOW TUMBLING(1m);",
        dir.join("bars.jsonl").display()
    )
}

/// One `ferris-cli run`; returns its wall time.
fn run_once(sql_file: &Path, on: Option<&str>, log: &Path) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(exe()?);
    let log_file = std::fs::File::create(log)?;
    match on {
        None => {
            cmd.args(["run", "--no-progress"])
                .arg(sql_file)
                .env("FERRIS_LOG", "warn");
        }
        Some(otlp) => {
            cmd.args([
                "--log-format",
                "json",
                "run",
                "--no-progress",
                "--http",
                "127.0.0.1:0",
            ])
            .args([
                "--otlp-endpoint",
                otlp,
                "--set",
                "tracing.sample.ratio=0.01",
            ])
            .arg(sql_file)
            .env("FERRIS_LOG", "info");
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("ferris-cli run")?;
    let stderr = child.stderr.take().context("stderr")?;
    // Scrape /metrics every second while the job runs (the address is announced on stderr).
    let scraper = on.map(|_| {
        std::thread::spawn(move || {
            let mut log_file = log_file;
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            let mut url: Option<String> = None;
            let mut last = Instant::now() - Duration::from_secs(2);
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let _ = log_file.write_all(line.as_bytes());
                if let Some(rest) = line.trim().strip_prefix("serving ") {
                    url = rest.split(' ').next().map(str::to_string);
                }
                if let Some(u) = &url
                    && last.elapsed() >= Duration::from_secs(1)
                {
                    last = Instant::now();
                    let _ = agent
                        .get(format!("{u}/metrics"))
                        .call()
                        .map(|mut r| r.body_mut().read_to_string());
                }
            }
        })
    });
    let status = child.wait()?;
    let elapsed = started.elapsed();
    if let Some(s) = scraper {
        let _ = s.join();
    }
    anyhow::ensure!(
        status.success(),
        "ferris-cli run failed: see {}",
        log.display()
    );
    Ok(elapsed)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `--case observability`.
pub fn observability_case(rows: u64, batch: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sql_file = dir.path().join("app.sql");
    std::fs::write(&sql_file, app(rows, batch, dir.path()))?;
    let (otlp, requests) = otlp_sink()?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let rounds = 5;
    println!("observability: {rows} rows, batch {batch}, {rounds} interleaved rounds");
    for round in 0..rounds {
        let a = run_once(&sql_file, None, &dir.path().join("off.log"))?.as_secs_f64();
        let b = run_once(&sql_file, Some(&otlp), &dir.path().join("on.log"))?.as_secs_f64();
        println!("  round {round}: off {a:.3} s, on {b:.3} s");
        off.push(a);
        on.push(b);
    }
    let lines = std::fs::read_to_string(dir.path().join("on.log"))?
        .lines()
        .count();
    let (m_off, m_on) = (median(&mut off), median(&mut on));
    println!(
        "  median off {m_off:.3} s ({:.0} rows/s), on {m_on:.3} s ({:.0} rows/s): throughput with \
         everything on = {:.1}% of off; {} OTLP requests served, {lines} log lines in the last run",
        rows as f64 / m_off,
        rows as f64 / m_on,
        100.0 * m_off / m_on,
        requests.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// `--case scrape`.
pub fn scrape_case() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = "bench-token";
    let mut server = Command::new(exe()?)
        .args(["server", "--http", "127.0.0.1:0"])
        .env("FERRIS_TOKEN", token)
        .env("FERRIS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .context("listening line")?
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let jobs = 50;
    let result = (|| -> anyhow::Result<()> {
        for i in 0..jobs {
            let sql = format!(
                "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
                   WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
                   WITH ('connector' = 'datagen', 'generator' = 'trades', 'rate' = '200');
                 CREATE STREAM big{i} WITH ('connector' = 'blackhole',
                     'metric.big.type' = 'counter', 'metric.big.labels' = 'symbol') AS
                   SELECT symbol, price * volume AS notional FROM trades WHERE volume > 100;
                 CREATE STREAM bars{i} WITH ('connector' = 'blackhole') AS
                   SELECT symbol, COUNT(*) AS n FROM trades GROUP BY symbol WINDOW TUMBLING(1m);"
            );
            let body = serde_json::json!({
                "name": format!("job{i}"), "sql": sql, "base_dir": dir.path().to_string_lossy(),
            });
            let mut r = agent
                .post(format!("{url}/api/v1/jobs"))
                .header("authorization", &format!("Bearer {token}"))
                .header("content-type", "application/json")
                .send(body.to_string())?;
            anyhow::ensure!(
                r.status().as_u16() == 201,
                "deploy: {}",
                r.body_mut().read_to_string()?
            );
        }
        std::thread::sleep(Duration::from_secs(3));
        let mut times = Vec::new();
        let mut size = 0;
        let mut series = 0;
        for _ in 0..20 {
            let started = Instant::now();
            let text = agent
                .get(format!("{url}/metrics"))
                .call()?
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_string()?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            size = text.len();
            series = text.lines().filter(|l| !l.starts_with('#')).count();
        }
        let worst = times.iter().copied().fold(0.0, f64::max);
        println!(
            "  each (ms): {}",
            times
                .iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "scrape: {jobs} running jobs, {series} series, {:.1} MB: GET /metrics median {:.1} ms, worst {worst:.1} ms (of 20)",
            size as f64 / 1e6,
            median(&mut times)
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// One plain `ferris-cli run` with `extra` arguments; returns its wall time.
fn run_plain(sql_file: &Path, extra: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new(exe()?)
        .args(["run", "--no-progress"])
        .args(extra)
        .arg(sql_file)
        .env("FERRIS_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .context("ferris-cli run")?;
    anyhow::ensure!(status.success(), "ferris-cli run {extra:?} failed");
    Ok(started.elapsed())
}

/// `--case lineage`: the observability pipeline with record lineage off (twice: the spread
/// between the two is the noise) and sampling 1% of rows, interleaved over several rounds.
/// Each round's throughput ratio is taken against the mean of its two off runs (the runs
/// beside it), so drift of the machine between rounds cancels out.
pub fn lineage_case(rows: u64, batch: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sql_file = dir.path().join("app.sql");
    std::fs::write(&sql_file, app(rows, batch, dir.path()))?;
    let rounds = 9;
    println!("lineage: {rows} rows, batch {batch}, {rounds} interleaved rounds");
    let (mut off_a, mut off_b, mut on, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let a = run_plain(&sql_file, &[])?.as_secs_f64();
        let s = run_plain(&sql_file, &["--set", "lineage.sample=0.01"])?.as_secs_f64();
        let b = run_plain(&sql_file, &[])?.as_secs_f64();
        let ratio = 100.0 * (a + b) / 2.0 / s;
        println!(
            "  round {round}: off {a:.3} s, 1% {s:.3} s, off again {b:.3} s: 1% keeps {ratio:.1}%"
        );
        off_a.push(a);
        on.push(s);
        off_b.push(b);
        ratios.push(ratio);
    }
    let (a, b, s) = (median(&mut off_a), median(&mut off_b), median(&mut on));
    println!(
        "  median off {a:.3} s / {b:.3} s (the two off arms differ by {:.1}%: the noise), 1% \
         sampled {s:.3} s; median of the rounds' ratios: throughput with 1% of rows traced = \
         {:.1}% of off",
        100.0 * (a - b).abs() / a.min(b),
        median(&mut ratios)
    );
    Ok(())
}
