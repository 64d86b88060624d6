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
