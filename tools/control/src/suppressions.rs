//! `suppression add|list|remove|import`: a customer's do-not-call list through the service's
//! RPC routes (docs/contact-strategy.md). The service normalises and checks every target; the
//! CLI only reads the import file (one target per line) and refuses one longer than the route
//! takes, so an import stays one all-or-nothing request.

use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::cli::{Page, SuppressionCmd};
use super::output::Output;
use super::rpc::{Rpc, list_output, list_uri, record_output, reply_data};
use super::{Failure, confirm};
use crate::model::{MAX_IMPORT_TARGETS, Suppression, SuppressionImported};

/// How long the CLI waits for an import (up to 10,000 rows in one transaction).
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(60);

const COLUMNS: &[&str] = &["id", "target", "reason", "tm_expire", "tm_create"];

/// The targets of an import file's text: one per line, trimmed; blank lines and `#` comments
/// skipped.
pub fn file_targets(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

impl Rpc {
    /// Runs a `suppression` subcommand.
    pub async fn suppression(self, cmd: &SuppressionCmd) -> Result<Output, Failure> {
        let out = self.suppression_inner(cmd).await;
        self.close().await;
        out
    }

    async fn suppression_inner(&self, cmd: &SuppressionCmd) -> Result<Output, Failure> {
        match cmd {
            SuppressionCmd::Add {
                customer_id,
                target,
                reason,
                expire,
            } => {
                let what = "add to the suppression list";
                let mut body =
                    json!({"customer_id": customer_id, "target": target, "reason": reason});
                if let (Some(e), Some(b)) = (expire, body.as_object_mut()) {
                    b.insert("tm_expire".into(), Value::String(e.clone()));
                }
                let s: Suppression = self
                    .call(what, "POST", "/v1/suppressions", Some(&body))
                    .await?;
                record_output(what, &s)
            }
            SuppressionCmd::List {
                customer_id,
                target,
                page,
            } => {
                self.suppression_list(*customer_id, target.as_deref(), page)
                    .await
            }
            SuppressionCmd::Remove(a) => {
                let what = format!("remove suppression {}", a.id);
                confirm(&format!("Remove suppression list entry {}?", a.id), a.yes)?;
                let s: Suppression = self
                    .request(&what, "DELETE", &format!("/v1/suppressions/{}", a.id))
                    .await?;
                record_output(&what, &s)
            }
            SuppressionCmd::Import {
                customer_id,
                reason,
                file,
            } => self.suppression_import(*customer_id, reason, file).await,
        }
    }

    async fn suppression_list(
        &self,
        customer_id: Uuid,
        target: Option<&str>,
        page: &Page,
    ) -> Result<Output, Failure> {
        let what = "list the suppression list";
        let mut uri = list_uri("/v1/suppressions", page);
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("customer_id", &customer_id.to_string());
        if let Some(t) = target {
            q.append_pair("target", t);
        }
        if !uri.ends_with('?') {
            uri.push('&');
        }
        uri.push_str(&q.finish());
        let rows: Vec<Suppression> = self.request(what, "GET", &uri).await?;
        list_output(what, &rows, COLUMNS)
    }

    async fn suppression_import(
        &self,
        customer_id: Uuid,
        reason: &str,
        file: &std::path::Path,
    ) -> Result<Output, Failure> {
        let what = format!("import {} into the suppression list", file.display());
        let targets = file_targets(&read_file(file)?);
        if targets.is_empty() {
            return Err(Failure::usage(format!(
                "{}: no targets in it",
                file.display()
            )));
        }
        if targets.len() > MAX_IMPORT_TARGETS {
            return Err(Failure::usage(format!(
                "{}: {} targets; one import takes at most {MAX_IMPORT_TARGETS}: split the file",
                file.display(),
                targets.len()
            )));
        }
        let body = json!({"customer_id": customer_id, "reason": reason, "targets": targets});
        let resp = self
            .send(
                &what,
                "POST",
                "/v1/suppressions/import",
                Some(body),
                IMPORT_TIMEOUT,
            )
            .await?;
        let data = reply_data(&what, &resp)?;
        let done: SuppressionImported = serde_json::from_value(data.clone()).map_err(|e| {
            Failure::new(format!(
                "{what}: campaign-manager sent a reply this CLI cannot read: {e}"
            ))
        })?;
        Ok(Output {
            human: format!("{} target(s) listed\n", done.count),
            json: data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_one_target_per_line_without_blanks_or_comments() {
        let text = "+15550000001\n\n  # opt-outs of May\n sip:a@b \r\n+1 555 000 0002\n";
        assert_eq!(
            file_targets(text),
            ["+15550000001", "sip:a@b", "+1 555 000 0002"]
        );
    }
}
