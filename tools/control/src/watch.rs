//! `--watch`: run a read-only command every second and redraw its table in place (cursor home,
//! clear screen) until Ctrl-C. With `--json` each refresh is instead one compact JSON value on
//! its own line, so the output can be piped. Used by `campaign stats`, `campaign list` and
//! `queue stats`: each passes the closure that fetches and renders one refresh.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use super::Failure;
use super::output::Output;

/// How often `--watch` refreshes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Prints `fetch()`'s output every [`WATCH_INTERVAL`] until Ctrl-C, a closed stdout, or the
/// first failure. Returns an empty output: everything has been printed already.
pub async fn watch<F, Fut>(json: bool, mut fetch: F) -> Result<Output, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Output, Failure>>,
{
    loop {
        let out = fetch().await?;
        let text = if json {
            format!("{}\n", out.json)
        } else {
            format!(
                "\x1b[H\x1b[2J{}(refreshing every {} s; Ctrl-C to quit)\n",
                out.human,
                WATCH_INTERVAL.as_secs()
            )
        };
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // stdout closed (e.g. piped into `head`): nothing more to show.
            break;
        }
        drop(stdout);
        tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(Output {
        json: Value::Null,
        human: String::new(),
    })
}
