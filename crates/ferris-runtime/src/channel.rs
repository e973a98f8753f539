//! Channels bounded by rows, with depth, capacity and blocked-time metrics.
//!
//! A sender takes one permit per row (at least one per message, at most the capacity, so a
//! batch larger than the capacity still fits into an empty channel); the receiver returns the
//! permits when it takes the message. When the permits are gone, the sender waits: that wait
//! is the backpressure that reaches the reader.

use crate::message::Message;
use ferris_observe::{Counter, Gauge, Registry, names};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

/// The receiving side is gone (the downstream task ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("channel closed: the downstream task has stopped")]
pub struct Closed;

#[derive(Debug)]
struct Metrics {
    depth: Arc<Gauge>,
    blocked_nanos: Arc<Counter>,
    blocked_sends: Arc<Counter>,
    high_water: Arc<Counter>,
    /// Rows at or above which the channel counts as nearly full (90% of capacity).
    high_water_rows: i64,
    recv_wait_nanos: Arc<Counter>,
    messages: Arc<Counter>,
}

impl Metrics {
    fn blocked(&self, started: Instant) {
        self.blocked_sends.inc();
        self.blocked_nanos.add(started.elapsed().as_nanos() as u64);
    }
}

/// Sending side of a row-bounded channel.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::UnboundedSender<(Message, u32)>,
    permits: Arc<Semaphore>,
    capacity: u32,
    metrics: Arc<Metrics>,
}

/// Receiving side of a row-bounded channel.
#[derive(Debug)]
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<(Message, u32)>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Creates a channel named `name` holding at most `capacity_rows` rows (minimum 1).
pub fn channel(name: &str, capacity_rows: usize, registry: &Registry) -> (Sender, Receiver) {
    let capacity = capacity_rows.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
    let labels = [("channel", name)];
    registry
        .gauge(names::CHANNEL_CAPACITY_ROWS, &labels)
        .set(i64::from(capacity));
    let metrics = Arc::new(Metrics {
        depth: registry.gauge(names::CHANNEL_DEPTH_ROWS, &labels),
        blocked_nanos: registry.counter(names::CHANNEL_BLOCKED_NANOS, &labels),
        blocked_sends: registry.counter(names::CHANNEL_BLOCKED_SENDS, &labels),
        high_water: registry.counter(names::CHANNEL_HIGH_WATER_EVENTS, &labels),
        high_water_rows: (u64::from(capacity) * 9).div_ceil(10) as i64,
        recv_wait_nanos: registry.counter(names::CHANNEL_RECV_WAIT_NANOS, &labels),
        messages: registry.counter(names::CHANNEL_MESSAGES, &labels),
    });
    let permits = Arc::new(Semaphore::new(capacity as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Sender {
            tx,
            permits: permits.clone(),
            capacity,
            metrics: metrics.clone(),
        },
        Receiver {
            rx,
            permits,
            metrics,
        },
    )
}

impl Sender {
    fn permits_for(&self, msg: &Message) -> u32 {
        (msg.rows().max(1) as u64).min(u64::from(self.capacity)) as u32
    }

    fn enqueue(&self, msg: Message, n: u32) -> Result<(), Closed> {
        let rows = msg.rows() as i64;
        let depth = self.metrics.depth.add(rows);
        let mark = self.metrics.high_water_rows;
        if depth >= mark && depth - rows < mark {
            self.metrics.high_water.inc();
        }
        self.metrics.messages.inc();
        self.tx.send((msg, n)).map_err(|e| {
            self.metrics.depth.add(-rows);
            self.permits.add_permits(e.0.1 as usize);
            Closed
        })
    }

    /// Sends `msg`, waiting while the channel is full.
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let n = self.permits_for(&msg);
        match self.permits.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(TryAcquireError::Closed) => return Err(Closed),
            Err(TryAcquireError::NoPermits) => {
                if self.tx.is_closed() {
                    return Err(Closed);
                }
                let started = Instant::now();
                let acquired = tokio::select! {
                    p = self.permits.acquire_many(n) => p.map_err(|_| Closed)?,
                    _ = self.tx.closed() => return Err(Closed),
                };
                acquired.forget();
                self.metrics.blocked(started);
            }
        }
        self.enqueue(msg, n)
    }

    /// Sends from a thread outside the async runtime (source and sink threads), waiting while
    /// the channel is full. `handle` is the runtime that owns the receiver.
    pub fn send_blocking(
        &self,
        handle: &tokio::runtime::Handle,
        msg: Message,
    ) -> Result<(), Closed> {
        let n = self.permits_for(&msg);
        match self.permits.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                self.enqueue(msg, n)
            }
            Err(TryAcquireError::Closed) => Err(Closed),
            Err(TryAcquireError::NoPermits) => handle.block_on(self.send(msg)),
        }
    }

    /// Like [`Sender::send_blocking`], but waits at most `wait` for room: `Ok(None)` when
    /// sent, `Ok(Some(msg))` (the message back) when the channel stayed full.
    pub fn send_blocking_within(
        &self,
        handle: &tokio::runtime::Handle,
        msg: Message,
        wait: std::time::Duration,
    ) -> Result<Option<Message>, Closed> {
        let n = self.permits_for(&msg);
        match self.permits.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(TryAcquireError::Closed) => return Err(Closed),
            Err(TryAcquireError::NoPermits) => {
                if self.tx.is_closed() {
                    return Err(Closed);
                }
                if wait.is_zero() {
                    return Ok(Some(msg));
                }
                let started = Instant::now();
                let acquired = handle.block_on(async {
                    tokio::select! {
                        p = self.permits.acquire_many(n) => p.map(Some).map_err(|_| Closed),
                        _ = self.tx.closed() => Err(Closed),
                        _ = tokio::time::sleep(wait) => Ok(None),
                    }
                })?;
                self.metrics.blocked(started);
                match acquired {
                    Some(p) => p.forget(),
                    None => return Ok(Some(msg)),
                }
            }
        }
        self.enqueue(msg, n).map(|()| None)
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Receiver {
    fn release(&self, msg: &Message, n: u32) {
        self.metrics.depth.add(-(msg.rows() as i64));
        self.permits.add_permits(n as usize);
    }

    /// Receives the next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        let (msg, n) = match self.rx.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {
                let started = Instant::now();
                let item = self.rx.recv().await;
                self.metrics
                    .recv_wait_nanos
                    .add(started.elapsed().as_nanos() as u64);
                item?
            }
        };
        self.release(&msg, n);
        Some(msg)
    }

    /// Whether no message is ready to be received now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Receives from a thread outside the async runtime.
    pub fn recv_blocking(&mut self) -> Option<Message> {
        let (msg, n) = match self.rx.try_recv() {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {
                let started = Instant::now();
                let item = self.rx.blocking_recv();
                self.metrics
                    .recv_wait_nanos
                    .add(started.elapsed().as_nanos() as u64);
                item?
            }
        };
        self.release(&msg, n);
        Some(msg)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Wake senders waiting for permits so they see the closed channel.
        self.permits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{BatchMeta, CorrelationId, ProcessBatch, TraceContext};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    fn batch(rows: i64) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let records = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .expect("valid batch");
        Message::ProcessBatch(ProcessBatch {
            batch_id: 0,
            records,
            correlation_id: CorrelationId::new(0, "t", 0),
            trace: TraceContext::new_root(),
            meta: BatchMeta {
                source: "t".into(),
                location: "t".into(),
                partition: 0,
                positions: Arc::from(Vec::new()),
                rejects: Arc::from(Vec::new()),
                read_at: Instant::now(),
            },
            control: Default::default(),
        })
    }

    #[tokio::test]
    async fn capacity_is_counted_in_rows() {
        let registry = Registry::new();
        let (tx, mut rx) = channel("c", 10, &registry);
        tx.send(batch(6)).await.expect("fits");
        tx.send(batch(4)).await.expect("fits");
        // Full: an 1-row message must wait until the receiver takes something.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), tx.send(batch(1)));
        assert!(pending.await.is_err(), "send into a full channel must wait");
        assert_eq!(
            registry
                .gauge(names::CHANNEL_DEPTH_ROWS, &[("channel", "c")])
                .get(),
            10
        );
        assert_eq!(rx.recv().await.map(|m| m.rows()), Some(6));
        tx.send(batch(5)).await.expect("room again");
        assert_eq!(
            registry
                .gauge(names::CHANNEL_DEPTH_ROWS, &[("channel", "c")])
                .get(),
            9
        );
    }

    #[tokio::test]
    async fn oversized_batch_passes_alone() {
        let registry = Registry::new();
        let (tx, mut rx) = channel("c", 2, &registry);
        tx.send(batch(100))
            .await
            .expect("oversized fits an empty channel");
        assert_eq!(rx.recv().await.map(|m| m.rows()), Some(100));
    }

    #[tokio::test]
    async fn dropped_receiver_unblocks_sender() {
        let registry = Registry::new();
        let (tx, rx) = channel("c", 1, &registry);
        tx.send(batch(1)).await.expect("fits");
        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(batch(1)).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiter.await.expect("task"), Err(Closed));
    }
}
