//! Small steps on a raw AMQP channel that tests take to watch the broker from outside the
//! service (reply queues, taps on an exchange).

#![allow(dead_code)]

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

/// Declares a server-named queue that only this channel's connection can use and that goes
/// away with it (exclusive, auto-delete); returns its name. `what` names it if that fails.
pub async fn private_queue(ch: &lapin::Channel, what: &str) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare {what}: {e}"));
    q.name().to_string()
}

/// A [`private_queue`] bound to `exchange` with `key`, and a no-ack consumer on it: a tap on what
/// an exchange carries. `what` names it if a step fails.
pub async fn tap(ch: &lapin::Channel, exchange: &str, key: &str, what: &str) -> lapin::Consumer {
    let q = private_queue(ch, what).await;
    ch.queue_bind(
        q.as_str().into(),
        exchange.into(),
        key.into(),
        lapin::options::QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {what}: {e}"));
    ch.basic_consume(
        q.as_str().into(),
        format!("tap-{q}").as_str().into(),
        lapin::options::BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("consume {what}: {e}"))
}

/// Whether `exchange` exists: a passive declare, on a channel of its own since a refused one
/// closes its channel.
pub async fn exchange_exists(conn: &lapin::Connection, exchange: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let found = ch
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = ch.close(200, "checked".into()).await;
    found
}
