//! [`RedisConn`]: the scheduler's one connection type, to a single Redis or to a Redis Cluster,
//! used for our own keys and handed to apalis-redis (whose storage is generic over any
//! `ConnectionLike`).
//!
//! On a cluster the `redis` crate's cluster client routes each command (and each script call, by
//! its first key) to the node serving its slot and follows `MOVED`/`ASK` after a failover or a
//! resharding. Every key of one shard shares a hash tag (`SchedulerConfig::shard_configs`), so
//! every script touches one slot.
//!
//! One exception is patched here. apalis-redis 1.0 registers a worker with a script
//! (`lua/register_worker.lua`) that also writes the fixed key `core:apalis:queues:list` without
//! declaring it. That key lives on one node; on every other node Redis refuses the script
//! (`Script attempted to access a non local key in a cluster node`), the worker never starts and
//! nothing ticks. So on a cluster this connection recognises that one call by its shape (below)
//! and runs [`REGISTER_WORKER`] instead: the same check and the same two writes on the declared
//! keys, without the global list, which only apalis' own dashboard reads. On a single Redis
//! nothing is changed.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, Pipeline, RedisFuture, Script, Value};

use crate::SchedulerError;

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// On a cluster, how often a command is retried (after `MOVED`, `TRYAGAIN`, a lost node) and
/// the bounds of the wait between tries, ms. The crate's defaults (16 tries from 1.28 s) keep a
/// call waiting for minutes; every loop of the scheduler retries on its own, so a call gives up
/// within seconds and the loop tries again.
const CLUSTER_RETRIES: u32 = 4;
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (50, 1000);

/// A reconnecting, multiplexed connection to one Redis, or a cluster client over several nodes.
#[derive(Clone)]
pub enum RedisConn {
    /// A single Redis (`redis_url`).
    Single(ConnectionManager),
    /// A Redis Cluster (`cluster_nodes`).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConn::Single(_) => "RedisConn::Single",
            RedisConn::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

/// Connect to the single Redis at `url`, or to the cluster reachable through `cluster_nodes`
/// (seed URLs; any reachable node will do) when that list is not empty.
pub(crate) async fn connect(
    url: &str,
    cluster_nodes: &[String],
) -> Result<RedisConn, SchedulerError> {
    if cluster_nodes.is_empty() {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        return Ok(RedisConn::Single(
            client.get_connection_manager_with_config(config).await?,
        ));
    }
    let client = ClusterClientBuilder::new(cluster_nodes.iter().map(String::as_str))
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
        .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
        .build()?;
    Ok(RedisConn::Cluster(client.get_async_connection().await?))
}

/// apalis-redis' worker registration without its undeclared global key.
/// KEYS[1]: the queue's workers set, KEYS[2]: the worker's metadata hash.
/// ARGV: now (s), worker name, threshold (s), backend name, service.
static REGISTER_WORKER: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local seen = redis.call('ZSCORE', KEYS[1], ARGV[2])
if seen and tonumber(ARGV[1]) - tonumber(seen) < tonumber(ARGV[3]) then
  return redis.error_reply('worker is still active within threshold')
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'backend_name', ARGV[4], 'service', ARGV[5])
return 1
"#,
    )
});

/// The keys and the arguments of one script call.
struct Registration {
    keys: Vec<Vec<u8>>,
    argv: Vec<Vec<u8>>,
}

/// The keys and arguments of apalis-redis' worker registration, if `cmd` is that call:
/// `EVALSHA|EVAL <script> 2 <queue>:workers <queue>:workers:metadata:<name>` followed by
/// `now name threshold "RedisStorage" service`. No other script of apalis-redis 1.0 (nor of
/// ours) has two keys named like that and five arguments with that backend name.
fn apalis_registration(cmd: &Cmd) -> Option<Registration> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .map(|a| match a {
            Arg::Simple(bytes) => bytes,
            _ => &[][..],
        })
        .collect();
    let [verb, _script, numkeys, workers, metadata, argv @ ..] = args.as_slice() else {
        return None;
    };
    let is_eval = verb.eq_ignore_ascii_case(b"EVALSHA") || verb.eq_ignore_ascii_case(b"EVAL");
    let shaped = is_eval
        && *numkeys == b"2"
        && workers.ends_with(b":workers")
        && metadata.starts_with(workers)
        && metadata[workers.len()..].starts_with(b":metadata:")
        && argv.len() == 5
        && argv[3] == b"RedisStorage";
    shaped.then(|| Registration {
        keys: vec![workers.to_vec(), metadata.to_vec()],
        argv: argv.iter().map(|a| a.to_vec()).collect(),
    })
}

async fn register_worker(
    mut conn: ClusterConnection,
    registration: Registration,
) -> redis::RedisResult<Value> {
    let mut call = REGISTER_WORKER.prepare_invoke();
    for key in registration.keys {
        call.key(key);
    }
    for arg in registration.argv {
        call.arg(arg);
    }
    call.invoke_async(&mut conn).await
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => match apalis_registration(cmd) {
                Some(registration) => Box::pin(register_worker(conn.clone(), registration)),
                None => conn.req_packed_command(cmd),
            },
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(verb: &str, workers: &str, metadata: &str, backend: &str) -> Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg("0123abcd").arg(2).arg(workers).arg(metadata);
        cmd.arg(1_700_000_000u64)
            .arg("w-1")
            .arg(3)
            .arg(backend)
            .arg("svc");
        cmd
    }

    #[test]
    fn recognises_apalis_worker_registration_only() {
        let cmd = registration(
            "EVALSHA",
            "{ns:0}:workers",
            "{ns:0}:workers:metadata:w-1",
            "RedisStorage",
        );
        let Registration { keys, argv } = apalis_registration(&cmd).expect("recognised");
        assert_eq!(
            keys,
            vec![
                b"{ns:0}:workers".to_vec(),
                b"{ns:0}:workers:metadata:w-1".to_vec()
            ]
        );
        assert_eq!(argv[1], b"w-1".to_vec());
        assert_eq!(argv[3], b"RedisStorage".to_vec());
        assert!(
            apalis_registration(&registration(
                "EVAL",
                "q:workers",
                "q:workers:metadata:x",
                "RedisStorage"
            ))
            .is_some()
        );

        // Anything else passes through untouched.
        for cmd in [
            registration("EVALSHA", "q:workers", "q:workers:metadata:x", "Other"),
            registration("EVALSHA", "q:active", "q:active:metadata:x", "RedisStorage"),
            registration(
                "EVALSHA",
                "q:workers",
                "p:workers:metadata:x",
                "RedisStorage",
            ),
            registration("HSET", "q:workers", "q:workers:metadata:x", "RedisStorage"),
        ] {
            assert!(apalis_registration(&cmd).is_none());
        }
        let mut keep_alive = redis::cmd("EVALSHA");
        keep_alive
            .arg("0123abcd")
            .arg(1)
            .arg("q:workers")
            .arg(1)
            .arg("w-1");
        assert!(apalis_registration(&keep_alive).is_none());
        assert!(apalis_registration(&redis::cmd("PING")).is_none());
    }
}
