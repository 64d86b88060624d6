//! What needs no service: `--help` on every level (exit 0), usage errors (exit 2, with the
//! usage), and each verb with its dependency unreachable or its service silent (exit 1, naming
//! the address and the setting to check). Each a table whose rows say which command broke.

use super::*;
use rig::{Failing, check_failing};

#[tokio::test]
async fn help_on_every_level_and_usage_errors_exit_2() {
    let paths: &[&[&str]] = &[
        &[],
        &["campaign"],
        &["campaign", "list"],
        &["campaign", "get"],
        &["campaign", "create"],
        &["campaign", "update"],
        &["campaign", "update-service-level"],
        &["campaign", "update-actions"],
        &["campaign", "update-resource-info"],
        &["campaign", "update-next-campaign"],
        &["campaign", "run"],
        &["campaign", "stop"],
        &["campaign", "delete"],
        &["campaign", "execute"],
        &["campaigncall"],
        &["campaigncall", "list"],
        &["campaigncall", "get"],
        &["campaigncall", "finish"],
        &["outplan"],
        &["outplan", "list"],
        &["outplan", "get"],
        &["outplan", "create"],
        &["outplan", "update"],
        &["outplan", "delete"],
        &["queue"],
        &["queue", "stats"],
        &["queue", "list"],
        &["queue", "drain"],
        &["queue", "resume"],
        &["queue", "purge"],
        &["queue", "retry-dead"],
        &["queue", "vacuum"],
        &["flows"],
        &["flows", "reconcile"],
        &["completions"],
        &["man"],
    ];
    for p in paths {
        let mut args: Vec<&str> = p.to_vec();
        args.push("--help");
        let r = cli(&args).await;
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Usage: campaign-control"),
            "{args:?}: {}",
            r.stdout
        );
    }
    // Unknown flag, missing subcommand, missing required flag, malformed UUID / enum / duration.
    let one = "00000000-0000-0000-0000-000000000001";
    let rows: &[(&str, &[&str])] = &[
        ("an unknown flag", &["queue", "stats", "--bogus"]),
        ("no subcommand", &["campaign"]),
        ("no --id", &["campaign", "get"]),
        (
            "--id not a uuid",
            &["campaign", "get", "--id", "not-a-uuid"],
        ),
        (
            "--type sms",
            &[
                "campaign",
                "create",
                "--customer-id",
                one,
                "--name",
                "n",
                "--type",
                "sms",
            ],
        ),
        (
            "--timeout not a duration",
            &["queue", "drain", "--timeout", "soon"],
        ),
        ("--tick_shards 0", &["--tick_shards", "0", "queue", "stats"]),
        (
            "--tick_shards not a number",
            &["--tick_shards", "many", "queue", "stats"],
        ),
        ("queue purge of nothing", &["queue", "purge"]),
        ("campaign list of nobody", &["campaign", "list"]),
        ("campaign execute of nothing", &["campaign", "execute"]),
        (
            "--all-running and --id",
            &["campaign", "execute", "--all-running", "--id", one],
        ),
        (
            "--result maybe",
            &["campaigncall", "finish", "--id", one, "--result", "maybe"],
        ),
        ("completions for tcsh", &["completions", "tcsh"]),
        (
            "--page-size 0",
            &["campaign", "execute", "--all-running", "--page-size", "0"],
        ),
    ];
    let mut wrong = Vec::new();
    for (case, args) in rows {
        let r = cli(args).await;
        if r.code != 2 || !(r.stderr.contains("Usage:") || r.stderr.contains("--help")) {
            wrong.push(format!(
                "  {case}: {args:?} → exit {}: {}",
                r.code, r.stderr
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} usage errors were not exit 2 with the usage:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn unreachable_dependencies_and_silent_service_exit_1() {
    let id = Uuid::new_v4().to_string();
    let id = id.as_str();
    let no_redis: &[&str] = &["cannot reach Redis at 127.0.0.1:1", "REDIS_ADDRESS"];
    let redis_flag = ["--redis_address", "127.0.0.1:1"];
    let redis = |case, sub| unreachable(case, sub, redis_flag, no_redis);
    let no_broker: &[&str] = &["cannot reach RabbitMQ at 127.0.0.1:1", "RABBITMQ_ADDRESS"];
    let broker_flag = ["--rabbitmq_address", "amqp://guest:guest@127.0.0.1:1"];
    let broker = |case, sub| unreachable(case, sub, broker_flag, no_broker);
    let rows = [
        redis("queue stats", &["queue", "stats"]),
        redis("queue list", &["queue", "list"]),
        redis("queue drain", &["queue", "drain", "--timeout", "1s"]),
        redis("queue resume", &["queue", "resume"]),
        redis("queue purge", &["queue", "purge", "--campaign", id]),
        redis("queue retry-dead", &["queue", "retry-dead"]),
        redis("queue vacuum", &["queue", "vacuum"]),
        broker("campaign get", &["campaign", "get", "--id", id]),
        broker("campaigncall get", &["campaigncall", "get", "--id", id]),
        broker("outplan get", &["outplan", "get", "--id", id]),
    ];
    check_failing(&rows, async |args| cli(args).await).await;
    // A broker but nobody serving the request queue.
    let prefix = unique("nobody");
    let queue = format!("{prefix}.bin-manager.campaign-manager.request");
    let r = cli(&[
        "--rabbitmq_address",
        AMQP,
        "--queue_prefix",
        &prefix,
        "campaign",
        "get",
        "--id",
        id,
    ])
    .await;
    r.fails(
        1,
        &format!("campaign-manager did not answer on queue {queue} within 3 s: is it running?"),
    );
}

/// A row of `unreachable_dependencies_and_silent_service_exit_1`: `sub` with `flag` pointing at
/// nothing must exit 1 with each of `needles`.
fn unreachable<'a>(
    case: &'a str,
    sub: &[&'a str],
    flag: [&'a str; 2],
    needles: &'a [&'a str],
) -> Failing<'a> {
    let mut args = sub.to_vec();
    args.extend(flag);
    Failing {
        case,
        args,
        code: 1,
        needles,
    }
}
