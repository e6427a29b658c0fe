//! The outbox publisher against a real NATS JetStream server (`WEIR_TEST_NATS_URL`,
//! nats://127.0.0.1:4222 on the development machines and CI): events arrive in order,
//! each with `Nats-Msg-Id` = the event id, rows are marked published after the ack, and
//! a re-sent event is dropped by JetStream's de-duplication.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::{simple_order, stocked, Harness, Kind};
use serde_json::json;
use weir_runtime::events::{OutboxPublisher, PublisherConfig};
use weir_runtime::store::NewEvent;

both_backends!(events_reach_jetstream_once_in_order);

async fn events_reach_jetstream_once_in_order(kind: Kind) {
    let Some(url) = std::env::var("WEIR_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("WEIR_TEST_NATS_URL is not set: NATS run skipped");
        return;
    };
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, "acme", "wh", "sku", 10).await;
    for i in 0..3 {
        let mut o = simple_order("acme", &format!("o{i}"), "sku", "wh", 1);
        o.events.push(NewEvent {
            aggregate_type: "order".into(),
            aggregate_id: format!("o{i}"),
            event_type: "order.placed".into(),
            payload: json!({ "order_id": format!("o{i}") }),
        });
        s.place_order(o).await.unwrap();
    }
    let events = s.outbox_pending(100).await.unwrap();
    assert_eq!(events.len(), 3);

    let client = async_nats::connect(url.as_str()).await.unwrap();
    let js = jetstream::new(client.clone());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("weirtest{nanos}{}", kind as u8);
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();

    let publisher = OutboxPublisher::new(
        h.store.clone(),
        client,
        PublisherConfig {
            subject_prefix: name.clone(),
            ..PublisherConfig::default()
        },
    );
    assert_eq!(publisher.publish_once().await.unwrap(), 3);
    assert!(s.outbox_pending(100).await.unwrap().is_empty());
    assert_eq!(publisher.publish_once().await.unwrap(), 0);

    let mut stream = js.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    for (seq, event) in (1u64..).zip(&events) {
        let msg = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(msg.subject.as_str(), format!("{name}.acme.order.placed"));
        assert_eq!(
            msg.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(event.id.as_str())
        );
        assert_eq!(msg.payload.as_ref(), event.payload.as_bytes());
    }

    // A crash between the ack and the mark sends the event again: JetStream drops it.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", events[0].id.as_str());
    let ack = js
        .publish_with_headers(
            format!("{name}.acme.order.placed"),
            headers,
            events[0].payload.clone().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(stream.info().await.unwrap().state.messages, 3);

    js.delete_stream(&name).await.unwrap();
    h.cleanup().await;
}
