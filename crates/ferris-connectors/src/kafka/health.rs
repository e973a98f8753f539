//! Whether the Kafka brokers can be reached: what a client error means for a job, and when
//! transport failures add up to "no broker can be reached" (librdkafka keeps reconnecting by
//! itself; it reports each failed connection but, with one bootstrap address, never that all
//! brokers are down).

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// How long connections must keep failing, with no message read or acknowledged and a
/// metadata request failing too, before the brokers count as unreachable.
pub(crate) const UNREACHABLE_AFTER: Duration = Duration::from_secs(2);

/// What a Kafka client error means for a job.
#[derive(Debug, PartialEq)]
pub(crate) enum Fault {
    /// A connection failed: the client reconnects by itself; it counts towards
    /// [`Reachability`].
    Transport,
    /// A request timed out: the client retries by itself.
    Transient,
    /// Anything else (authorization, an unknown topic, a fatal client error): the job stops.
    Fatal,
}

/// Classifies a client error.
pub(crate) fn fault(e: &KafkaError) -> Fault {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageConsumptionFatal(_) => Fault::Fatal,
        _ => match e.rdkafka_error_code() {
            Some(C::BrokerTransportFailure | C::AllBrokersDown | C::Resolve) => Fault::Transport,
            Some(C::OperationTimedOut | C::RequestTimedOut) => Fault::Transient,
            _ => Fault::Fatal,
        },
    }
}

/// Tracks connection failures since the last sign of life (a message read or acknowledged).
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    failing_since: Option<Instant>,
    last_probe: Option<Instant>,
}

impl Reachability {
    /// A connection failed.
    pub(crate) fn failed(&mut self) {
        self.failing_since.get_or_insert_with(Instant::now);
    }

    /// The brokers answered.
    pub(crate) fn ok(&mut self) {
        self.failing_since = None;
    }

    /// How long the brokers have been unreachable, once connections have been failing for
    /// [`UNREACHABLE_AFTER`] and `probe` (a metadata request, tried at most once a second)
    /// fails as well; `None` while they may still be reachable.
    pub(crate) fn unreachable_for(&mut self, probe: impl FnOnce() -> bool) -> Option<Duration> {
        let since = self.failing_since?;
        if since.elapsed() < UNREACHABLE_AFTER {
            return None;
        }
        if self
            .last_probe
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Some(since.elapsed());
        }
        self.last_probe = Some(Instant::now());
        if probe() {
            self.failing_since = None;
            None
        } else {
            Some(since.elapsed())
        }
    }
}

/// `Some("no Kafka broker of SERVERS can be reached (for N s; the client said: …)")` once
/// `reachability` counts the brokers as unreachable, probing them with a metadata request
/// for `topic` through `client`.
pub(crate) fn unreachable<C: rdkafka::ClientContext>(
    reachability: &mut Reachability,
    client: &rdkafka::client::Client<C>,
    topic: &str,
    servers: &str,
    log: &ClientLog,
) -> Option<String> {
    let probe = || {
        client
            .fetch_metadata(Some(topic), Duration::from_millis(500))
            .is_ok()
    };
    reachability.unreachable_for(probe).map(|down| {
        format!(
            "no Kafka broker of {servers} can be reached (for {:.1} s{})",
            down.as_secs_f64(),
            log.detail()
        )
    })
}

/// The last warning or error librdkafka logged: the detail behind an opaque client error
/// ("Broker transport failure" says nothing of a failed SASL handshake or a refused
/// connection; the log line does).
#[derive(Debug, Default)]
pub(crate) struct ClientLog {
    last: std::sync::Mutex<Option<String>>,
}

impl ClientLog {
    /// Records a librdkafka log line (warnings and errors are kept) and passes it on to
    /// tracing at debug level.
    pub(crate) fn record(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        tracing::debug!(target: "librdkafka", "{fac} {message}");
        if matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        ) && let Ok(mut last) = self.last.lock()
        {
            *last = Some(message.to_string());
        }
    }

    /// `; the client said: <last warning>`, or nothing.
    pub(crate) fn detail(&self) -> String {
        match self.last.lock().ok().and_then(|l| l.clone()) {
            Some(m) => format!("; the client said: {m}"),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_what_the_job_can_do() {
        use RDKafkaErrorCode as C;
        let consumption = |c| KafkaError::MessageConsumption(c);
        assert_eq!(
            fault(&consumption(C::BrokerTransportFailure)),
            Fault::Transport
        );
        assert_eq!(fault(&consumption(C::AllBrokersDown)), Fault::Transport);
        assert_eq!(fault(&consumption(C::RequestTimedOut)), Fault::Transient);
        assert_eq!(
            fault(&consumption(C::TopicAuthorizationFailed)),
            Fault::Fatal
        );
        assert_eq!(
            fault(&KafkaError::MessageConsumptionFatal(
                C::BrokerTransportFailure
            )),
            Fault::Fatal
        );
    }

    #[test]
    fn the_client_log_keeps_the_last_warning_for_errors() {
        use rdkafka::config::RDKafkaLogLevel as L;
        let log = ClientLog::default();
        assert_eq!(log.detail(), "");
        log.record(L::Debug, "BROKER", "connecting");
        assert_eq!(log.detail(), "");
        log.record(
            L::Error,
            "FAIL",
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        );
        log.record(L::Info, "BROKER", "retrying");
        assert_eq!(
            log.detail(),
            "; the client said: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        );
    }

    #[test]
    fn unreachable_only_after_failing_for_a_while_and_a_failed_probe() {
        let mut r = Reachability::default();
        assert_eq!(r.unreachable_for(|| panic!("no probe while healthy")), None);
        r.failed();
        assert_eq!(
            r.unreachable_for(|| panic!("no probe before the delay")),
            None
        );
        // Pretend the failures started long ago.
        r.failing_since = Some(Instant::now() - UNREACHABLE_AFTER);
        // A probe that answers clears the failures.
        assert_eq!(r.unreachable_for(|| true), None);
        assert_eq!(r.failing_since, None);
        r.failing_since = Some(Instant::now() - UNREACHABLE_AFTER);
        r.last_probe = None;
        assert!(
            r.unreachable_for(|| false)
                .is_some_and(|d| d >= UNREACHABLE_AFTER)
        );
        // Within a second the last probe's verdict stands.
        assert!(
            r.unreachable_for(|| panic!("probed twice in a second"))
                .is_some()
        );
        r.ok();
        assert_eq!(r.unreachable_for(|| panic!("healthy again")), None);
    }
}
