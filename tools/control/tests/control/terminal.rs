//! Confirmations on a pseudo-terminal: `outplan delete` asks, and only "y" deletes.

use super::*;

/// Runs the CLI on a pseudo-terminal (util-linux `script`), typing `answer`; returns the exit
/// code and everything the terminal showed.
fn on_terminal(ctx: &Ctx, args: &[&str], answer: &str) -> (i32, String) {
    let mut cmd = vec![
        env!("CARGO_BIN_EXE_campaign-control").to_owned(),
        "--rabbitmq_address".into(),
        AMQP.into(),
        "--queue_prefix".into(),
        ctx.queue_prefix.clone(),
    ];
    cmd.extend(args.iter().map(|s| s.to_string()));
    let line = cmd
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // Give the prompt time to appear before answering, as a person would.
        std::thread::sleep(Duration::from_millis(1500));
        stdin.write_all(answer.as_bytes()).expect("type the answer");
    }
    let out = child.wait_with_output().expect("script output");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), shown)
}

/// On a terminal, `outplan delete` asks; "n" (or anything but y) cancels with nothing
/// changed, "y" deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_asks_on_a_terminal() {
    let db = TestDb::migrated().await;
    let prefix = TestPrefix::new();
    let ctx = Ctx::new(&prefix);
    let app = service(&ctx, &db, &prefix).await;
    let customer = Uuid::new_v4().to_string();
    let created = ctx
        .run(&[
            "--json",
            "outplan",
            "create",
            "--customer-id",
            &customer,
            "--name",
            "p",
        ])
        .await
        .ok()
        .json();
    let id = created["id"].as_str().expect("id").to_owned();
    let args = ["outplan", "delete", "--id", id.as_str()];
    let (code, shown) = tokio::task::block_in_place(|| on_terminal(&ctx, &args, "n\n"));
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains(&format!("Delete outplan {id}? [y/N]")),
        "{shown}"
    );
    assert!(shown.contains("cancelled; nothing changed"), "{shown}");
    ctx.run(&["outplan", "get", "--id", &id]).await.ok();
    let (code, shown) = tokio::task::block_in_place(|| on_terminal(&ctx, &args, "y\n"));
    assert_eq!(code, 0, "{shown}");
    ctx.run(&["outplan", "get", "--id", &id])
        .await
        .fails(1, "OUTPLAN_NOT_FOUND");
    app.stop().await;
}
