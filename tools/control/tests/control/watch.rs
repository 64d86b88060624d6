//! `--watch` of `campaign list --running` (every customer's running campaigns, Korean names
//! aligned) and of `queue stats`, until Ctrl-C.

use super::*;

/// Runs `args` with `--watch` as a child, reads `n` stdout lines (each within 10 s), sends
/// Ctrl-C and checks the process then ends cleanly (exit 0). Returns the lines.
async fn watch_lines(args: &[String], n: usize) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-control"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn campaign-control --watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut got = Vec::new();
    while got.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a refresh every second")
            .expect("read stdout")
            .expect("still running");
        got.push(line);
    }
    let pid = watch.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("send SIGINT");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("exits on Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --watch cleanly");
    got
}

/// Columns a string takes on a terminal (Hangul syllables and jamo take two).
fn screen_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '\u{1100}'..='\u{115F}' | '\u{AC00}'..='\u{D7A3}' | '\u{3130}'..='\u{318F}' => 2,
            _ => 1,
        })
        .sum()
}

/// `campaign list --running` lists the running campaigns of every customer (only those),
/// `--watch` refreshes it (JSON lines, and in place for the table), the table lines Korean
/// names up with the other columns, and `queue stats --watch` refreshes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_list_running_across_customers_watch_and_wide_names() {
    use campaign_manager::model::CampaignStatus;
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let store = campaign_manager::store::Store::with_pool(db.pool.clone(), prefix.cache());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut running = Vec::new();
    for (customer, name, status) in [
        (a, "서울 봄 캠페인", CampaignStatus::Run),
        (a, "spring", CampaignStatus::Stop),
        (b, "부산", CampaignStatus::Run),
        (b, "stopping one", CampaignStatus::Stopping),
    ] {
        let mut c = support::records::campaign_row(customer);
        c.name = name.into();
        c.status = status;
        let c = store.campaigns.create(&c).await.expect("campaign");
        if status == CampaignStatus::Run {
            running.push(c.id.to_string());
        }
    }
    running.sort();

    let ids_of = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let list = ctx
        .run(&["--json", "campaign", "list", "--running"])
        .await
        .ok()
        .json();
    assert_eq!(ids_of(&list), running, "{list}");
    let mine = ctx
        .run(&[
            "--json",
            "campaign",
            "list",
            "--running",
            "--customer-id",
            &a.to_string(),
        ])
        .await
        .ok()
        .json();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let table = ctx
        .run(&["campaign", "list", "--running"])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("CUSTOMER_ID") && table.contains("(2 rows)"),
        "{table}"
    );

    // The TYPE column starts at the same screen column on every line, Korean names or not.
    let table = ctx
        .run(&["campaign", "list", "--customer-id", &a.to_string()])
        .await
        .ok()
        .stdout;
    assert!(table.contains("서울 봄 캠페인"), "{table}");
    let header = table.lines().next().expect("header");
    let type_col = screen_width(&header[..header.find("TYPE").expect("TYPE column")]);
    for line in table.lines().skip(1).filter(|l| l.contains(" call ")) {
        let at = line.find(" call ").expect("type cell") + 1;
        assert_eq!(screen_width(&line[..at]), type_col, "misaligned:\n{table}");
    }
    assert_eq!(
        table.lines().filter(|l| l.contains(" call ")).count(),
        2,
        "{table}"
    );

    // --watch: one JSON array per refresh; the table is redrawn in place.
    let mut args = vec![
        "--rabbitmq_address".to_owned(),
        AMQP.to_owned(),
        "--queue_prefix".to_owned(),
        ctx.queue_prefix.clone(),
    ];
    let json_args: Vec<String> = args
        .iter()
        .cloned()
        .chain(["--json", "campaign", "list", "--running", "--watch"].map(String::from))
        .collect();
    for line in watch_lines(&json_args, 2).await {
        let v: Value = serde_json::from_str(&line).expect("one JSON array per line");
        assert_eq!(ids_of(&v), running, "{line}");
    }
    args.extend(["campaign", "list", "--running", "--watch"].map(String::from));
    let lines = watch_lines(&args, 8).await;
    let redraws = lines.iter().filter(|l| l.contains("\x1b[H\x1b[2J")).count();
    assert!(redraws >= 2, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("refreshing every 1 s")),
        "{lines:?}"
    );

    // queue stats --watch against the same Redis namespace.
    let queue_args: Vec<String> = [
        "--redis_address",
        "127.0.0.1:6379",
        "--redis_database",
        "0",
        "--tick_namespace",
        &ctx.namespace,
        "--json",
        "queue",
        "stats",
        "--watch",
    ]
    .map(String::from)
    .to_vec();
    for line in watch_lines(&queue_args, 2).await {
        let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(v["paused"], false, "{line}");
    }
    app.stop().await;
}
