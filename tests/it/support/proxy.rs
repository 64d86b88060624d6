//! A TCP relay a test owns, standing between the service and one of the shared servers, so the
//! test can make that server unreachable for its own app only: [`Relay::cut`] closes every
//! relayed connection and stops listening, so new connections are refused.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay from a local port to `target`.
pub struct Relay {
    /// The relay's own port on 127.0.0.1.
    pub port: u16,
    cut: watch::Sender<bool>,
}

impl Relay {
    /// Starts relaying connections on a fresh port to `target` (`host:port`).
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let (cut, cut_rx) = watch::channel(false);
        let target = target.to_owned();
        tokio::spawn(async move {
            let mut stop = cut_rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|c| *c) => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let (target, mut stop) = (target.clone(), cut_rx.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Relay { port, cut }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
