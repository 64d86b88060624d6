//! Hearing an exchange without owning a queue: a private, server-named queue (exclusive,
//! auto-delete, so it dies with the connection) bound to a fanout exchange and consumed without
//! acks. For listeners that only need freshness hints, where a lost message costs nothing but
//! a delay (the service hears its own change events this way to drop cached copies); events
//! that must not be lost go through [`crate::subscriber`] instead.

use futures::StreamExt;
use lapin::ExchangeKind;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};

use crate::{BusConnection, BusError};

/// Message bodies from a private queue bound to one exchange; ends when its channel or
/// connection goes away.
pub struct ExchangeListener {
    consumer: lapin::Consumer,
}

impl ExchangeListener {
    /// Binds a new private queue to `exchange` (declared durable fanout, as its publisher
    /// declares it, so whichever process comes first creates it) on the live connection, and
    /// returns the listener with the connection generation it is bound on.
    pub async fn bind(conn: &BusConnection, exchange: &str) -> Result<(Self, u64), BusError> {
        let (ch, generation) = conn.channel().await?;
        ch.exchange_declare(
            ShortString::from(exchange),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        let queue = ch
            .queue_declare(
                ShortString::from(""),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        ch.queue_bind(
            queue.name().clone(),
            ShortString::from(exchange),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let consumer = ch
            .basic_consume(
                queue.name().clone(),
                ShortString::from(""),
                BasicConsumeOptions {
                    no_ack: true,
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((ExchangeListener { consumer }, generation))
    }

    /// The next message body; `None` once the queue is gone (channel or connection closed).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        match self.consumer.next().await {
            Some(Ok(delivery)) => Some(delivery.data),
            _ => None,
        }
    }
}
