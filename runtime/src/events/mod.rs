//! Events out of the transactional outbox (issue #6).
//!
//! Changes and their events commit in one transaction (the `outbox` table); the
//! [`OutboxPublisher`] relays them to NATS JetStream afterwards: it reads unpublished
//! rows in insertion order, publishes each with the `Nats-Msg-Id` header set to the
//! event id, waits for the stream's acknowledgements, and only then marks the rows
//! published. A crash between the ack and the mark publishes the event again on the
//! next round; JetStream drops it as a duplicate within the stream's duplicate window,
//! so consumers see each event once.

mod publisher;

pub use publisher::{OutboxPublisher, PublishError, PublisherConfig};
