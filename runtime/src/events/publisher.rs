use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;

use crate::store::{OutboxEvent, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("NATS connection: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("JetStream publish of event {event_id}: {source}")]
    Publish {
        event_id: String,
        source: jetstream::context::PublishError,
    },
}

#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Subjects are `{prefix}.{tenant}.{event type}` (`weir.acme.order.cancelled`).
    pub subject_prefix: String,
    /// Events read and published per round.
    pub batch: u32,
    /// Pause when a round found nothing.
    pub idle: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            subject_prefix: "weir".into(),
            batch: 500,
            idle: Duration::from_millis(200),
        }
    }
}

/// Relays the outbox to JetStream.
pub struct OutboxPublisher {
    store: Arc<dyn Store>,
    jetstream: jetstream::Context,
    config: PublisherConfig,
}

/// A subject token from free text: NATS separates tokens with `.` and reserves `*`
/// and `>`; whitespace is not allowed.
fn token(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

impl OutboxPublisher {
    pub fn new(store: Arc<dyn Store>, client: async_nats::Client, config: PublisherConfig) -> Self {
        OutboxPublisher {
            store,
            jetstream: jetstream::new(client),
            config,
        }
    }

    pub async fn connect(
        store: Arc<dyn Store>,
        nats_url: &str,
        config: PublisherConfig,
    ) -> Result<Self, PublishError> {
        let client = async_nats::connect(nats_url).await?;
        Ok(Self::new(store, client, config))
    }

    /// The subject an event goes to. The event type keeps its dots, so consumers can
    /// subscribe to `weir.*.order.>`.
    pub fn subject(&self, event: &OutboxEvent) -> String {
        let kind: Vec<String> = event.event_type.split('.').map(token).collect();
        format!(
            "{}.{}.{}",
            self.config.subject_prefix,
            token(&event.tenant),
            kind.join(".")
        )
    }

    /// Publishes one batch of unpublished events; returns how many were acknowledged
    /// and marked. Events acknowledged before a failure are still marked.
    pub async fn publish_once(&self) -> Result<usize, PublishError> {
        let events = self.store.outbox_pending(self.config.batch).await?;
        let mut pending = Vec::with_capacity(events.len());
        let mut failure = None;
        // Send all, then collect the acks: one round trip for the batch, order kept.
        for event in &events {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.as_str());
            headers.insert("Weir-Aggregate-Type", event.aggregate_type.as_str());
            headers.insert("Weir-Aggregate-Id", event.aggregate_id.as_str());
            match self
                .jetstream
                .publish_with_headers(self.subject(event), headers, event.payload.clone().into())
                .await
            {
                Ok(ack) => pending.push((event.id.clone(), ack)),
                Err(source) => {
                    failure = Some(PublishError::Publish {
                        event_id: event.id.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(pending.len());
        for (id, ack) in pending {
            match ack.await {
                Ok(_) => acked.push(id),
                Err(source) => {
                    failure.get_or_insert(PublishError::Publish {
                        event_id: id,
                        source,
                    });
                    break;
                }
            }
        }
        if !acked.is_empty() {
            self.store.mark_published(&acked).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(acked.len()),
        }
    }

    /// Relays until `shutdown` resolves, pausing when there is nothing to send or after
    /// a failure (a broker restart, say; unacknowledged events are sent again).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.publish_once().await {
                Ok(n) if n > 0 => None,
                _ => Some(self.config.idle),
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            } else if futures_ready(&mut shutdown).await {
                return;
            }
        }
    }
}

/// Whether `f` is already complete, without waiting for it.
async fn futures_ready<F: std::future::Future<Output = ()> + Unpin>(f: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = f => true,
        _ = std::future::ready(()) => false,
    }
}
