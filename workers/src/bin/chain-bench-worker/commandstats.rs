//! Redis `INFO commandstats` snapshots and their difference over a measured window, so the bench
//! can print how many Redis commands one tick costs. The counters are server-wide: run the bench
//! on a Redis of its own (`--redis-url`) for numbers that hold only the bench's traffic. Commands
//! a Lua script runs are counted too (next to the `evalsha` that ran them).

use std::collections::BTreeMap;

/// Calls per command name at one moment.
#[derive(Debug, Clone, Default)]
pub struct CommandCounts(BTreeMap<String, u64>);

impl CommandCounts {
    /// Read `INFO commandstats` from the server behind `conn`.
    pub async fn read(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Self> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await?;
        Ok(Self::parse(&info))
    }

    /// The sum of [`CommandCounts::read`] over several servers (the masters of a cluster).
    pub async fn read_all(conns: &mut [redis::aio::MultiplexedConnection]) -> anyhow::Result<Self> {
        let mut total = BTreeMap::new();
        for conn in conns {
            for (name, calls) in Self::read(conn).await?.0 {
                *total.entry(name).or_insert(0) += calls;
            }
        }
        Ok(Self(total))
    }

    /// Parse lines like `cmdstat_evalsha:calls=12,usec=34,...`.
    fn parse(info: &str) -> Self {
        let mut counts = BTreeMap::new();
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.trim().parse().ok());
            if let Some(calls) = calls {
                counts.insert(name.to_owned(), calls);
            }
        }
        Self(counts)
    }

    /// Calls made between `earlier` and `self`, per command, largest first, without zeros.
    pub fn since(&self, earlier: &Self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(*earlier.0.get(k).unwrap_or(&0))))
            .filter(|(_, v)| *v > 0)
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// CPU seconds the Redis server has used (`INFO cpu`: `used_cpu_user` + `used_cpu_sys`). CPU
/// time, unlike wall time, barely changes when other processes compete for the cores, so per tick
/// it compares runs taken at different load.
pub async fn redis_cpu_s(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_user:")
                .or_else(|| l.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum())
}

/// [`redis_cpu_s`] summed over several servers.
pub async fn redis_cpu_s_all(
    conns: &mut [redis::aio::MultiplexedConnection],
) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for conn in conns {
        total += redis_cpu_s(conn).await?;
    }
    Ok(total)
}

/// CPU seconds this process has used, all threads (`/proc/self/stat` utime + stime, in the
/// kernel's 100 Hz clock ticks); 0 where that file is missing.
pub fn own_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// One line: total commands per unit and the largest contributors, e.g.
/// `32.1 commands/tick (evalsha 2.0, hget 3.0, ...)`. `scripts` counts `evalsha`+`eval`, the
/// script calls, which (with the plain commands) are what travel over the network.
pub fn per_unit(delta: &[(String, u64)], units: usize, unit: &str) -> String {
    if units == 0 {
        return format!("no {unit}s measured");
    }
    let n = units as f64;
    let total: u64 = delta.iter().map(|(_, v)| v).sum();
    let scripts: u64 = delta
        .iter()
        .filter(|(k, _)| k == "evalsha" || k == "eval")
        .map(|(_, v)| v)
        .sum();
    let top = delta
        .iter()
        .take(12)
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / n))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{:.2} Redis commands/{unit} ({:.3} script calls/{unit}); {top}",
        total as f64 / n,
        scripts as f64 / n
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts() {
        let a = CommandCounts::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\ncmdstat_hget:calls=3,usec=1\r\n",
        );
        let b = CommandCounts::parse(
            "cmdstat_evalsha:calls=30,usec=5\r\ncmdstat_hget:calls=3,usec=1\r\ncmdstat_zadd:calls=4,usec=1\r\n",
        );
        let d = b.since(&a);
        assert_eq!(d, vec![("evalsha".to_owned(), 20), ("zadd".to_owned(), 4)]);
        assert!(per_unit(&d, 4, "tick").starts_with("6.00 Redis commands/tick (5.000 script"));
    }
}
