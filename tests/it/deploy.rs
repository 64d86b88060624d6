//! The deployment kit checked against what it deploys (no Kubernetes, Docker or Prometheus
//! here, so these tests are the validation; the Kubernetes overlays, rendered, are checked in
//! `kustomize.rs` with the helpers of this module):
//!
//! * `docker-compose.yml` parses; every container runs a binary the image ships (the binaries
//!   `.ci/build-release` copies, which the Dockerfile runs), sets only environment variables that
//!   binary reads (its clap flags' `env`, taken from the same `Infra` + `Settings` the binaries
//!   flatten, cross-checked against the binary's own `--help`), and the grace period outlasts the
//!   drain bound.
//! * `deploy/prometheus/alerts.yaml` and `deploy/grafana/campaign-manager.json`: every
//!   expression parses (promql-parser, PyPI, through `tests/it/promql.py`, where installed), names
//!   only metrics a started service registers (the real registry, with the tick workers and the
//!   process collector) or kube-state-metrics', every alert has a `runbook_url` whose anchor is a
//!   section of docs/runbook.md, every aggregation of a per-shard scheduler metric in an alert
//!   keeps `shard`, and the dashboard filters every series by its `namespace` and `shard`
//!   variables; `docs/metrics.md` documents every family the service exports.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use campaign_manager::app::{App, Role};
use campaign_manager::config::Infra;
use campaign_manager::config::Settings;
use clap::{CommandFactory, Parser};
use support::{TestDb, TestNames, TestPrefix};
use yaml_serde::Value;

/// The binaries a container may run, as the Dockerfile's runtime image ships them.
pub(super) const SERVICE_BINARIES: [&str; 2] = ["campaign-manager", "campaign-worker"];
/// Environment read outside clap (`telemetry::init`).
const PROCESS_ENV: [&str; 2] = ["LOG_LEVEL", "RUST_LOG"];
/// The health paths `src/http.rs` serves (tests/binaries.rs probes them on the real binary).
pub(super) const LIVENESS_PATH: &str = "/healthz";
pub(super) const READINESS_PATH: &str = "/readyz";
/// The image name the manifests use; kustomize's `images` rewrites it.
pub(super) const IMAGE: &str = "campaign-manager";
/// kube-state-metrics' families the pod rules read (not this service's; its documentation
/// names them): readiness, phase, restarts, failed Jobs, available replicas.
const KUBE_STATE_METRICS: [&str; 5] = [
    "kube_deployment_status_replicas_available",
    "kube_pod_status_ready",
    "kube_pod_status_phase",
    "kube_pod_container_status_restarts_total",
    "kube_job_status_failed",
];
/// Timeout of one peer RPC (DESIGN §6), which bounds an in-flight request at shutdown.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

/// The command line of `campaign-manager` and `campaign-worker` (both flatten these two).
#[derive(Parser)]
struct ServiceCli {
    #[command(flatten)]
    infra: Infra,
    #[command(flatten)]
    settings: Settings,
}

pub(super) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every YAML document of a file, merge keys (`<<:`) applied.
pub(super) fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    let mut docs = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(&text) {
        let mut v = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        v.apply_merge()
            .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

pub(super) fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// What a binary accepts from the environment, and the defaults the manifests depend on.
pub(super) struct BinaryFlags {
    /// `env` of every flag.
    envs: BTreeSet<String>,
    /// Default value by env name.
    defaults: BTreeMap<String, String>,
}

impl BinaryFlags {
    pub(super) fn of(binary: &str) -> BinaryFlags {
        let cmd = ServiceCli::command();
        let mut envs = BTreeSet::new();
        let mut defaults = BTreeMap::new();
        for arg in cmd.get_arguments() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                continue;
            };
            envs.insert(env.to_owned());
            if let Some(d) = arg.get_default_values().first().and_then(|d| d.to_str()) {
                defaults.insert(env.to_owned(), d.to_owned());
            }
        }
        // The binary itself must read exactly these (its `--help` lists `[env: NAME=...]`).
        assert_eq!(
            envs,
            help_envs(binary),
            "{binary}'s flags differ from Infra + Settings; update ServiceCli in tests/deploy.rs"
        );
        BinaryFlags { envs, defaults }
    }

    pub(super) fn accepts(&self, env: &str) -> bool {
        self.envs.contains(env) || PROCESS_ENV.contains(&env)
    }

    /// The value the process runs with: the container's setting or the flag's default.
    pub(super) fn effective(&self, env: &str, set: &BTreeMap<String, String>) -> String {
        set.get(env)
            .or_else(|| self.defaults.get(env))
            .cloned()
            .unwrap_or_else(|| panic!("{env} has no default and is not set"))
    }
}

pub(super) fn binary_path(binary: &str) -> &'static str {
    match binary {
        "campaign-manager" => env!("CARGO_BIN_EXE_campaign-manager"),
        "campaign-worker" => env!("CARGO_BIN_EXE_campaign-worker"),
        other => panic!("{other} is not a service binary ({SERVICE_BINARIES:?})"),
    }
}

/// The env names in `binary --help` (run with an empty environment, so none shows a value).
fn help_envs(binary: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(binary_path(binary))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {binary} --help: {e}"));
    assert!(out.status.success(), "{binary} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect()
}

/// The port of a listen address in the service's forms (`:2112`, `0.0.0.0:2112`).
pub(super) fn port_of(listen: &str) -> u16 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in listen address {listen:?}"))
}

/// How long a stopping process may take: running ticks get `shutdown_timeout`, background
/// tasks one more second (workers/src/workers.rs), then in-flight requests finish, each peer
/// call bounded by the RPC timeout.
pub(super) fn drain_bound() -> Duration {
    let drain = campaign_workers::SchedulerConfig::default().shutdown_timeout
        + Duration::from_secs(1)
        + RPC_TIMEOUT;
    // `App::stop` gives its tasks up to STOP_BOUND before aborting the rest.
    drain.max(campaign_manager::app::STOP_BOUND)
}

/// Kubernetes quantities: CPU in millicores, memory in bytes.
pub(super) fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().expect("cpu millicores"),
        None => (q.parse::<f64>().expect("cpu cores") * 1000.0) as u64,
    }
}

pub(super) fn bytes(q: &str) -> u64 {
    let units = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().expect("memory quantity") * factor;
        }
    }
    q.parse().expect("memory in bytes")
}

pub(super) fn dockerfile_ships(binary: &str) -> bool {
    // The Dockerfile's build stage runs .ci/build-release, which copies the shipped binaries.
    assert!(
        read(&root().join("Dockerfile")).contains(".ci/build-release /out"),
        "the Dockerfile no longer builds with .ci/build-release"
    );
    read(&root().join(".ci/build-release"))
        .lines()
        .find(|l| l.trim_start().starts_with("for b in "))
        .expect("the copy loop of .ci/build-release")
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|word| word == binary)
}

pub(super) fn labels_match(selector: &Value, labels: &Value) -> bool {
    let Some(sel) = selector.as_mapping() else {
        return false;
    };
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The keys of each Secret among `docs` (name → keys).
pub(super) fn secret_keys_of(docs: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for doc in docs {
        if str_at(doc, &["kind"]) == Some("Secret") {
            let name = str_at(doc, &["metadata", "name"]).expect("secret name");
            let keys = ["stringData", "data"]
                .iter()
                .filter_map(|f| doc.get(*f).and_then(Value::as_mapping))
                .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned))
                .collect();
            out.insert(name.to_owned(), keys);
        }
    }
    out
}

/// `host:port` or a URL's host.
fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split([':', '/']).next().unwrap_or(rest)
}

#[test]
fn compose_stack_matches_the_binaries() {
    let compose = &yaml_docs(&root().join("docker-compose.yml"))[0];
    let services = at(compose, &["services"])
        .and_then(Value::as_mapping)
        .expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for needed in [
        "mariadb",
        "redis",
        "rabbitmq",
        "campaign-manager",
        "campaign-worker",
    ] {
        assert!(names.contains(needed), "compose lacks {needed}");
    }

    let redis: Vec<&str> = seq(services.get("redis").expect("redis"), &["command"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        redis.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "redis runs without the append-only file: {redis:?}"
    );

    let mut ours = 0;
    let mut built = false;
    for (name, svc) in services {
        let name = name.as_str().expect("service name");
        for dep in at(svc, &["depends_on"])
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            let dep = dep.as_str().expect("dependency");
            assert!(names.contains(dep), "{name} depends on unknown {dep}");
        }
        if let Some(ctx) = str_at(svc, &["build"]) {
            assert!(
                root().join(ctx).join("Dockerfile").exists(),
                "{name}: no Dockerfile in {ctx}"
            );
            built = true;
        }
        let image = str_at(svc, &["image"]).unwrap_or_default();
        if !image.starts_with(IMAGE) {
            continue;
        }
        ours += 1;
        let binary = seq(svc, &["command"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or("campaign-manager");
        assert_eq!(binary, name, "compose service {name} runs {binary}");
        assert!(
            dockerfile_ships(binary),
            "the Dockerfile does not ship {binary}"
        );
        let flags = BinaryFlags::of(binary);
        let env: BTreeMap<String, String> = at(svc, &["environment"])
            .and_then(Value::as_mapping)
            .expect("environment as a map")
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map(str::to_owned).unwrap_or_else(|| {
                    panic!("{name}: quote the value of {k:?} (compose passes strings)")
                });
                (k.as_str().expect("env name").to_owned(), v)
            })
            .collect();
        for k in env.keys() {
            assert!(flags.accepts(k), "{name}: {k} is not read by {binary}");
        }
        // The addresses point at services of this stack.
        let dsn = campaign_manager::dsn::DatabaseDsn::parse(&env["DATABASE_DSN"])
            .unwrap_or_else(|e| panic!("{name}: DATABASE_DSN: {e}"));
        let mysql_host = dsn.options.get_host().to_owned();
        for address in [
            mysql_host.as_str(),
            &env["REDIS_ADDRESS"],
            &env["RABBITMQ_ADDRESS"],
        ] {
            let host = host_of(address);
            assert!(
                names.contains(host),
                "{name}: {address} names no service ({host})"
            );
        }
        let port = port_of(&flags.effective("PROMETHEUS_LISTEN_ADDRESS", &env));
        let published: Vec<&str> = seq(svc, &["ports"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{name}: metrics port {port} not published ({published:?})"
        );
        let grace = str_at(svc, &["stop_grace_period"])
            .and_then(|g| g.strip_suffix('s'))
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name}: stop_grace_period in seconds"));
        assert!(
            Duration::from_secs(grace) > drain_bound(),
            "{name}: stop_grace_period {grace}s must outlast {:?}",
            drain_bound()
        );
    }
    assert_eq!(ours, 2, "the service and one worker from the image");
    assert!(built, "nothing is built from the Dockerfile");
}

#[test]
fn promql_names_are_extracted() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, target) (rate(a_bucket{x="}"}[5m]))) > 1e3
           and on (instance) b_total offset 10m or absent(c) unless max without (q) (d) == bool 1"#,
    );
    let expected: BTreeSet<String> = ["a_bucket", "b_total", "c", "d"].map(String::from).into();
    assert_eq!(names, expected);
    assert!(brackets_balance(r#"sum by (q) (rate(x{a="(]"}[5m]))"#));
    assert!(!brackets_balance("sum(rate(x[5m])"));
    assert!(!brackets_balance("max(x{a=\"b\")}"));
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label
/// lists (`by (...)`), label matchers, ranges, strings or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 8] = [
        "and", "or", "unless", "offset", "bool", "inf", "nan", "atan2",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Aggregations may put `by (...)` between their name and their argument.
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Index just past the bracket matching the one at `start`, skipping quoted strings.
    let skip_to = |start: usize, close: char| -> usize {
        let mut j = start + 1;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '"' {
            i = skip_to(i, '"');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && call {
                i = skip_to(next, ')');
            } else if !call
                && !KEYWORDS.contains(&word.as_str())
                && !AGGREGATIONS.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Whether the brackets of a PromQL expression pair up (outside strings); promtool parses the
/// rules fully (`promtool check rules`), this catches the usual slip where it is not at hand.
fn brackets_balance(expr: &str) -> bool {
    let mut open = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in expr.chars() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(want) {
                    return false;
                }
            }
            _ => {}
        }
    }
    open.is_empty() && !in_string
}

/// The alert rules of deploy/prometheus/alerts.yaml.
fn alert_rules() -> Vec<Value> {
    let rules = &yaml_docs(&root().join("deploy/prometheus/alerts.yaml"))[0];
    seq(rules, &["groups"])
        .iter()
        .flat_map(|g| seq(g, &["rules"]).iter().cloned())
        .collect()
}

/// Every PromQL expression of the dashboard, with its panel.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = read(&root().join("deploy/grafana/campaign-manager.json"));
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    fn panels(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in v["panels"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((format!("panel {title}"), expr.to_owned()));
                }
            }
            panels(p, out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard, &mut out);
    out
}

/// Every PromQL expression of the alert rules and the dashboard, with where it comes from.
fn observability_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut alerts = BTreeSet::new();
    for rule in alert_rules() {
        let name = str_at(&rule, &["alert"]).expect("alert name");
        assert!(alerts.insert(name.to_owned()), "alert {name} twice");
        for field in [&["labels", "severity"][..], &["annotations", "summary"]] {
            assert!(
                str_at(&rule, field).is_some(),
                "alert {name} lacks {field:?}"
            );
        }
        let expr = str_at(&rule, &["expr"]).expect("alert expr");
        out.push((format!("alert {name}"), expr.to_owned()));
    }
    // The rules the runbook and the operations guide promise.
    for wanted in [
        "CampaignTicksStopped",
        "CampaignTickLatenessHigh",
        "CampaignTickPermitsExhausted",
        "CampaignTickDeadJobs",
        "CampaignNoLiveWorker",
        "CampaignPeerBreakerOpen",
        "CampaignRequestQueueNoConsumer",
        "CampaignRequestBacklog",
        "CampaignRequestErrors",
        "CampaignEventsDeadLettered",
        "CampaignEventsDropped",
        "CampaignChainStuck",
        "CampaignPodNotReady",
        "CampaignPodRestarting",
        "CampaignMigrationFailed",
    ] {
        assert!(alerts.contains(wanted), "alerts.yaml lacks {wanted}");
    }
    let before = out.len();
    out.extend(dashboard_queries());
    assert!(out.len() - before >= 20, "the dashboard has few queries");
    for (source, expr) in &out {
        assert!(
            brackets_balance(expr),
            "{source}: unbalanced brackets in {expr}"
        );
    }
    out
}

/// What `tests/it/promql.py` says about one expression.
#[derive(serde::Deserialize)]
pub(super) struct PromqlResult {
    /// Where the expression comes from.
    pub(super) source: String,
    /// The parser's error, if it does not parse.
    pub(super) error: Option<String>,
    /// The metric names it selects.
    pub(super) metrics: BTreeSet<String>,
    /// Aggregations of `campaign_manager_chain_*` series that drop `shard`.
    pub(super) unsharded: Vec<String>,
}

/// Every `(source, expr)` through the PromQL parser (promql-parser from PyPI); `None` where it
/// is not installed (a failure under CI, where .ci/run installs it).
pub(super) fn promql_check(queries: &[(String, String)]) -> Option<Vec<PromqlResult>> {
    use std::io::Write;
    let importable = std::process::Command::new("python3")
        .args(["-c", "import promql_parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the PromQL parser (python3 -m pip install promql-parser) is required under CI"
        );
        eprintln!("SKIPPED: python3 cannot import promql_parser, so PromQL is not parsed here");
        return None;
    }
    let input: Vec<serde_json::Value> = queries
        .iter()
        .map(|(source, expr)| serde_json::json!({ "source": source, "expr": expr }))
        .collect();
    let mut child = std::process::Command::new("python3")
        .arg(root().join("tests/it/promql.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run tests/it/promql.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write the expressions");
    let out = child.wait_with_output().expect("promql.py output");
    assert!(out.status.success(), "tests/it/promql.py failed");
    Some(serde_json::from_slice(&out.stdout).expect("promql.py JSON"))
}

/// GitHub's anchors of the headings of a Markdown file (lower case, spaces to `-`, punctuation
/// dropped).
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_has_a_runbook_section() {
    let runbook = anchors(&read(&root().join("docs/runbook.md")));
    for rule in alert_rules() {
        let name = str_at(&rule, &["alert"]).expect("alert name");
        let url = str_at(&rule, &["annotations", "runbook_url"])
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let anchor = url
            .strip_prefix("docs/runbook.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not docs/runbook.md#..."));
        assert!(
            runbook.contains(anchor),
            "{name}: docs/runbook.md has no section #{anchor}"
        );
    }
    assert!(anchors("## Who consumes our queues\n").contains("who-consumes-our-queues"));
}

#[test]
fn every_expression_parses_and_alerts_keep_shards() {
    let queries = observability_queries();
    let Some(results) = promql_check(&queries) else {
        return;
    };
    assert_eq!(results.len(), queries.len());
    for (r, (_, expr)) in results.iter().zip(&queries) {
        assert!(r.error.is_none(), "{}: {:?}\n{expr}", r.source, r.error);
        // The hand-written extractor used by the exported-metrics check finds the same names.
        assert_eq!(r.metrics, metric_names(expr), "{}: metric names", r.source);
        if r.source.starts_with("alert ") {
            assert!(
                r.unsharded.is_empty(),
                "{}: aggregations over per-shard series drop `shard`: {:?}",
                r.source,
                r.unsharded
            );
        }
    }
    // The check can fail: a bare max over a chain gauge is caught.
    let probe = promql_check(&[(
        "probe".to_owned(),
        "max(campaign_manager_chain_paused) == 1".to_owned(),
    )])
    .expect("parser present");
    assert_eq!(probe[0].unsharded.len(), 1);
}

#[test]
fn dashboard_filters_by_namespace_and_shard() {
    let text = read(&root().join("deploy/grafana/campaign-manager.json"));
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let vars: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for var in ["datasource", "namespace", "shard"] {
        assert!(vars.contains(var), "the dashboard lacks the variable {var}");
    }
    for (source, expr) in dashboard_queries() {
        for name in metric_names(&expr) {
            let at = expr.find(&name).expect("name in expr") + name.len();
            let selector = &expr[at..];
            assert!(
                selector.starts_with("{namespace=\"$namespace\""),
                "{source}: {name} is not filtered by $namespace: {expr}"
            );
            if name.starts_with("campaign_manager_chain_") {
                let close = selector.find('}').expect("matchers end");
                assert!(
                    selector[..close].contains("shard=~\"$shard\""),
                    "{source}: {name} is not filtered by $shard: {expr}"
                );
            }
        }
    }
}

/// Families with series in the text exposition: name → type.
fn exposed_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// Whether `registry` holds a collector named `name`, with or without series yet: the
/// registry refuses a second collector of a registered name.
fn registered(registry: &prometheus::Registry, name: &str) -> bool {
    let Ok(probe) = prometheus::IntCounter::new(name, "probe") else {
        return false;
    };
    match registry.register(Box::new(probe.clone())) {
        Ok(()) => {
            let _ = registry.unregister(Box::new(probe));
            false
        }
        Err(_) => true,
    }
}

/// The Go service's names (docs/metrics.md), kept as they are although they lack a unit.
const GO_UNITLESS: [&str; 4] = [
    "campaign_manager_receive_request_process_time",
    "campaign_manager_receive_subscribe_event_process_time",
    "campaign_manager_request_process_time",
    "campaign_manager_notify_process_time",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_use_exported_metrics() {
    let queries = observability_queries();
    let (db, names, prefix) = (TestDb::empty().await, TestNames::new(), TestPrefix::new());
    let mut infra = Infra::from_env();
    infra.database_dsn = db.url.clone();
    infra.rabbitmq_address = support::amqp_url();
    infra.redis_database = 0;
    let mut settings = Settings::from_env();
    settings.queue_prefix = names.prefix.clone();
    settings.cache_prefix = prefix.0.clone();
    settings.tick_namespace = format!("{}ticks", prefix.0);
    settings.serve_http = false;
    settings.workers = 2;
    let app = App::start(&infra, &settings, Role::Service)
        .await
        .expect("start campaign-manager");

    // The tick workers register their metrics as they start, and fill the gauges within 1 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = app.metrics.render();
        if text.contains("\ncampaign_manager_chain_live_workers 1") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "tick worker gauges never appeared:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let registry = app.metrics.registry.clone();
    let exposed = exposed_families(&text);
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(exposed.contains_key(process), "{process} is not exported");
    }

    let mut unknown = Vec::new();
    let mut not_yet = BTreeSet::new();
    for (source, expr) in &queries {
        for name in metric_names(expr) {
            if KUBE_STATE_METRICS.contains(&name.as_str()) {
                continue;
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|base| {
                    exposed.get(*base).map(String::as_str) == Some("histogram")
                        || registered(&registry, base)
                })
                .unwrap_or(&name)
                .to_owned();
            if exposed.contains_key(&family) {
                continue;
            }
            if registered(&registry, &family) {
                not_yet.insert(family);
            } else {
                unknown.push(format!("{source}: {name}"));
            }
        }
    }
    app.stop().await;
    assert!(
        unknown.is_empty(),
        "metrics the service does not export:\n{}",
        unknown.join("\n")
    );
    // Registered label families get their first series when first used; the ones whose first
    // increment an alert watches for have theirs from start.
    eprintln!("registered, no series until first use: {not_yet:?}");
    for from_start in [
        "campaign_manager_event_dead_lettered_total",
        "rabbitmqhandler_event_dropped_total",
        "campaign_manager_campaign_repair_total",
        "campaign_manager_campaigncall_repair_total",
        "campaign_manager_dial_refused_total",
        "campaign_manager_chain_ticks_total",
        "campaign_manager_chain_dead_jobs",
        "campaign_manager_chain_oldest_overdue_ms",
        "campaign_manager_chain_paused",
    ] {
        assert!(
            exposed.contains_key(from_start),
            "{from_start} has no series at start"
        );
    }

    // Names say their unit (ours; the Go names stay as the platform's dashboards know them),
    // and docs/metrics.md documents every family.
    let docs = read(&root().join("docs/metrics.md"));
    for (name, kind) in &exposed {
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} lacks _total"),
            "histogram" if !GO_UNITLESS.contains(&name.as_str()) => assert!(
                ["_ms", "_seconds", "_bytes"]
                    .iter()
                    .any(|u| name.ends_with(u)),
                "histogram {name} does not name its unit"
            ),
            _ => {}
        }
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/metrics.md lacks `{name}`"
        );
    }
    for name in &not_yet {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/metrics.md lacks `{name}`"
        );
    }
}
