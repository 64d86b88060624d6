//! How this service names itself on the broker, so that an operator (and the cut-over runbook)
//! can tell its consumers and connections from the Go service's. Both consume the same request
//! and subscribe queues; the Go service's consumers carry the tag `campaign-manager` (request
//! queue) or `queue-manager` (subscribe queue) and its connections no name. Ours carry
//! [`CONSUMER_TAG`] and a connection name that starts with [`NAME`], so
//! `rabbitmqctl list_consumers queue_name consumer_tag` tells the two services apart at a glance.

/// The service's name on the broker: the consumer tag of its RPC server and subscriber, and the
/// start of its connection names.
pub const NAME: &str = "campaign-manager-rs";

/// Consumer tag of the RPC server and of the subscriber (one consumer per channel, so one tag
/// serves both).
pub const CONSUMER_TAG: &str = NAME;

/// The start of the connection names of process `pid`: `campaign-manager-rs-<pid>-`.
pub fn connection_name_prefix(pid: u32) -> String {
    format!("{NAME}-{pid}-")
}

/// A connection name unique to this connection: `campaign-manager-rs-<pid>-<random>@<host>`
/// (the host is the pod name on Kubernetes; left out where it cannot be read).
pub fn connection_name() -> String {
    let mut name = format!(
        "{}{:08x}",
        connection_name_prefix(std::process::id()),
        rand::random::<u32>()
    );
    if let Some(host) = host_name() {
        name.push('@');
        name.push_str(&host);
    }
    name
}

/// The host name, from the kernel (the `HOSTNAME` variable is a shell's, not always set).
fn host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let host = raw.trim();
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_service_name_and_the_pid() {
        let name = connection_name();
        let prefix = connection_name_prefix(std::process::id());
        assert!(name.starts_with(&prefix), "{name}");
        assert!(prefix.starts_with("campaign-manager-rs-"), "{prefix}");
        assert_ne!(connection_name(), name, "unique per connection");
        assert_eq!(CONSUMER_TAG, "campaign-manager-rs");
    }
}
