//! The deployment kit checked against what it deploys (no Kubernetes, Docker or Prometheus
//! here, so these tests are the validation):
//!
//! * `deploy/k8s/**` and `docker-compose.yml` parse; every container runs a binary the image
//!   ships, sets only environment variables that binary reads (its clap flags' `env`, taken from
//!   the same `Infra` + `Settings` the binaries flatten, cross-checked against the binary's own
//!   `--help`), and probes, ports and scrape annotations match the binary's defaults; the grace
//!   period outlasts the drain bound; selectors, budgets and the autoscaler point at what exists.
//! * `deploy/prometheus/alerts.yaml` and `deploy/grafana/campaign-manager.json` name only
//!   metrics a started service registers (the real registry, with the tick workers and the
//!   process collector), and `docs/metrics.md` documents every family it exports.

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
const SERVICE_BINARIES: [&str; 2] = ["campaign-manager", "campaign-worker"];
/// Environment read outside clap (`telemetry::init`).
const PROCESS_ENV: [&str; 2] = ["LOG_LEVEL", "RUST_LOG"];
/// The health paths `src/http.rs` serves (tests/binaries.rs probes them on the real binary).
const LIVENESS_PATH: &str = "/healthz";
const READINESS_PATH: &str = "/readyz";
/// The image name the manifests use; kustomize's `images` rewrites it.
const IMAGE: &str = "campaign-manager";
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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every YAML document of a file, merge keys (`<<:`) applied.
fn yaml_docs(path: &Path) -> Vec<Value> {
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

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// What a binary accepts from the environment, and the defaults the manifests depend on.
struct BinaryFlags {
    /// `env` of every flag.
    envs: BTreeSet<String>,
    /// Default value by env name.
    defaults: BTreeMap<String, String>,
}

impl BinaryFlags {
    fn of(binary: &str) -> BinaryFlags {
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

    fn accepts(&self, env: &str) -> bool {
        self.envs.contains(env) || PROCESS_ENV.contains(&env)
    }

    /// The value the process runs with: the container's setting or the flag's default.
    fn effective(&self, env: &str, set: &BTreeMap<String, String>) -> String {
        set.get(env)
            .or_else(|| self.defaults.get(env))
            .cloned()
            .unwrap_or_else(|| panic!("{env} has no default and is not set"))
    }
}

fn binary_path(binary: &str) -> &'static str {
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
fn port_of(listen: &str) -> u16 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in listen address {listen:?}"))
}

/// How long a stopping process may take: running ticks get `shutdown_timeout`, background
/// tasks one more second (workers/src/workers.rs), then in-flight requests finish, each peer
/// call bounded by the RPC timeout.
fn drain_bound() -> Duration {
    let drain = campaign_workers::SchedulerConfig::default().shutdown_timeout
        + Duration::from_secs(1)
        + RPC_TIMEOUT;
    // `App::stop` gives its tasks up to STOP_BOUND before aborting the rest.
    drain.max(campaign_manager::app::STOP_BOUND)
}

/// Kubernetes quantities: CPU in millicores, memory in bytes.
fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().expect("cpu millicores"),
        None => (q.parse::<f64>().expect("cpu cores") * 1000.0) as u64,
    }
}

fn bytes(q: &str) -> u64 {
    let units = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().expect("memory quantity") * factor;
        }
    }
    q.parse().expect("memory in bytes")
}

fn dockerfile_ships(binary: &str) -> bool {
    read(&root().join("Dockerfile"))
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|word| word == binary)
}

/// Every manifest under deploy/k8s, by file.
fn manifests() -> Vec<(PathBuf, Vec<Value>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("deploy/k8s"), &mut files);
    assert!(!files.is_empty(), "no manifests under deploy/k8s");
    files
        .into_iter()
        .map(|p| (p.clone(), yaml_docs(&p)))
        .collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let Some(sel) = selector.as_mapping() else {
        return false;
    };
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Mount path → Secret name, for the container's read-only mounts of Secret volumes.
fn secret_mounts(pod: &Value, container: &Value) -> BTreeMap<String, String> {
    let volumes: BTreeMap<&str, &str> = seq(pod, &["spec", "volumes"])
        .iter()
        .filter_map(|v| Some((str_at(v, &["name"])?, str_at(v, &["secret", "secretName"])?)))
        .collect();
    seq(container, &["volumeMounts"])
        .iter()
        .filter(|m| at(m, &["readOnly"]).and_then(Value::as_bool) == Some(true))
        .filter_map(|m| {
            let secret = volumes.get(str_at(m, &["name"])?)?;
            Some((str_at(m, &["mountPath"])?.to_owned(), (*secret).to_owned()))
        })
        .collect()
}

/// The example Secret's keys (name → keys).
fn secret_keys(docs: &[(PathBuf, Vec<Value>)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for doc in docs.iter().flat_map(|(_, d)| d) {
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

#[test]
fn kubernetes_manifests_match_the_binaries() {
    let files = manifests();
    let base = root().join("deploy/k8s/base");
    let secrets = secret_keys(&files);
    let docs: Vec<&Value> = files.iter().flat_map(|(_, d)| d).collect();
    for (path, file_docs) in &files {
        for d in file_docs {
            for field in ["apiVersion", "kind"] {
                assert!(
                    d.get(field).is_some(),
                    "{}: a document without {field}",
                    path.display()
                );
            }
        }
    }

    // The kustomization lists every manifest of the base, and each exists.
    let kustomization = &yaml_docs(&base.join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = seq(kustomization, &["resources"])
        .iter()
        .map(|r| r.as_str().expect("resource path").to_owned())
        .collect();
    let present: BTreeSet<String> = files
        .iter()
        .filter(|(p, _)| p.parent() == Some(base.as_path()))
        .filter_map(|(p, _)| p.file_name()?.to_str().map(str::to_owned))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization resources vs files in deploy/k8s/base"
    );
    let images: Vec<&str> = seq(kustomization, &["images"])
        .iter()
        .filter_map(|i| str_at(i, &["name"]))
        .collect();
    assert_eq!(images, [IMAGE], "kustomization images");

    let deployments: Vec<&Value> = docs
        .iter()
        .copied()
        .filter(|d| str_at(d, &["kind"]) == Some("Deployment"))
        .collect();
    let names: BTreeSet<&str> = deployments
        .iter()
        .filter_map(|d| str_at(d, &["metadata", "name"]))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(SERVICE_BINARIES),
        "one Deployment per binary"
    );

    for d in &deployments {
        let name = str_at(d, &["metadata", "name"]).unwrap_or_default();
        let pod = at(d, &["spec", "template"]).expect("pod template");
        let pod_labels = at(pod, &["metadata", "labels"]).expect("pod labels");
        assert!(
            labels_match(
                at(d, &["spec", "selector", "matchLabels"]).expect("selector"),
                pod_labels
            ),
            "{name}: selector does not select its own pods"
        );
        let grace = at(pod, &["spec", "terminationGracePeriodSeconds"])
            .and_then(Value::as_u64)
            .unwrap_or(30);
        assert!(
            Duration::from_secs(grace) > drain_bound(),
            "{name}: terminationGracePeriodSeconds {grace} must outlast the drain bound {:?}",
            drain_bound()
        );
        let containers = seq(pod, &["spec", "containers"]);
        assert_eq!(containers.len(), 1, "{name}: one container");
        let c = &containers[0];
        assert_eq!(str_at(c, &["image"]), Some(IMAGE), "{name}: image");
        let command: Vec<&str> = seq(c, &["command"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let binary = command.first().copied().unwrap_or("campaign-manager");
        assert_eq!(binary, name, "{name}: runs {binary}");
        assert!(
            dockerfile_ships(binary),
            "the Dockerfile does not ship {binary}"
        );
        let flags = BinaryFlags::of(binary);

        let mut set = BTreeMap::new();
        for e in seq(c, &["env"]) {
            let env = str_at(e, &["name"]).expect("env name");
            assert!(flags.accepts(env), "{name}: {env} is not read by {binary}");
            let value = match (str_at(e, &["value"]), at(e, &["valueFrom", "secretKeyRef"])) {
                (Some(v), None) => v.to_owned(),
                (None, Some(r)) => {
                    let secret = str_at(r, &["name"]).expect("secret name");
                    let key = str_at(r, &["key"]).expect("secret key");
                    assert!(
                        secrets.get(secret).is_some_and(|k| k.contains(key)),
                        "{name}: {env} reads {secret}/{key}, which the example Secret lacks"
                    );
                    format!("<secret {secret}/{key}>")
                }
                _ => panic!("{name}: {env} needs exactly one of value / secretKeyRef"),
            };
            assert!(
                set.insert(env.to_owned(), value).is_none(),
                "{name}: {env} twice"
            );
        }
        if binary == "campaign-worker" {
            assert!(
                !set.contains_key("MIGRATE"),
                "campaign-worker never migrates"
            );
        }
        assert_ne!(
            set.get("WORKERS").map(String::as_str),
            Some("0"),
            "{name}: no tick workers"
        );
        // Each secret comes from a file of the mounted Secret (`*_FILE`), never a plain value.
        let mounted = secret_mounts(pod, c);
        for secret_env in ["DATABASE_DSN", "RABBITMQ_ADDRESS", "REDIS_PASSWORD"] {
            assert!(
                !set.contains_key(secret_env),
                "{name}: {secret_env} as an env value; use {secret_env}_FILE"
            );
            let file_env = format!("{secret_env}_FILE");
            let path = set
                .get(&file_env)
                .unwrap_or_else(|| panic!("{name}: {file_env} is not set"));
            let (dir, key) = path
                .rsplit_once('/')
                .unwrap_or_else(|| panic!("{name}: {file_env}={path} is not a path"));
            let secret = mounted
                .get(dir)
                .unwrap_or_else(|| panic!("{name}: {file_env}={path}: no Secret mounted at {dir}"));
            assert!(
                secrets.get(secret).is_some_and(|k| k.contains(key)),
                "{name}: {file_env} reads {secret}/{key}, which the example Secret lacks"
            );
        }

        // Port, probes and scrape annotations agree with what the binary serves.
        let port = port_of(&flags.effective("PROMETHEUS_LISTEN_ADDRESS", &set));
        let path = flags.effective("PROMETHEUS_ENDPOINT", &set);
        let ports = seq(c, &["ports"]);
        let metrics_port = ports
            .iter()
            .find(|p| str_at(p, &["name"]) == Some("metrics"))
            .unwrap_or_else(|| panic!("{name}: no port named metrics"));
        assert_eq!(
            at(metrics_port, &["containerPort"]).and_then(Value::as_u64),
            Some(u64::from(port)),
            "{name}: metrics containerPort"
        );
        for (probe, expected) in [
            ("startupProbe", LIVENESS_PATH),
            ("livenessProbe", LIVENESS_PATH),
            ("readinessProbe", READINESS_PATH),
        ] {
            let get = at(c, &[probe, "httpGet"])
                .unwrap_or_else(|| panic!("{name}: {probe} missing or not httpGet"));
            assert_eq!(
                str_at(get, &["path"]),
                Some(expected),
                "{name}: {probe} path"
            );
            let p = get.get("port").expect("probe port");
            assert!(
                p.as_str() == Some("metrics") || p.as_u64() == Some(u64::from(port)),
                "{name}: {probe} port {p:?}"
            );
        }
        let ann = at(pod, &["metadata", "annotations"]).expect("pod annotations");
        assert_eq!(str_at(ann, &["prometheus.io/scrape"]), Some("true"));
        assert_eq!(
            str_at(ann, &["prometheus.io/port"]),
            Some(port.to_string().as_str()),
            "{name}: scrape port"
        );
        assert_eq!(
            str_at(ann, &["prometheus.io/path"]),
            Some(path.as_str()),
            "{name}: scrape path"
        );

        // Resources: requests and a memory limit, far from the Go manifest's 5m / 30Mi.
        let res = at(c, &["resources"]).expect("resources");
        let cpu = millicores(str_at(res, &["requests", "cpu"]).expect("cpu request"));
        let mem = bytes(str_at(res, &["requests", "memory"]).expect("memory request"));
        let limit = bytes(str_at(res, &["limits", "memory"]).expect("memory limit"));
        assert!(cpu >= 100, "{name}: cpu request {cpu}m");
        assert!(mem >= 128 << 20, "{name}: memory request {mem}");
        assert!(limit >= mem, "{name}: memory limit below the request");
    }

    // The metrics Service reaches every pod's metrics port.
    let service = docs
        .iter()
        .find(|d| str_at(d, &["kind"]) == Some("Service"))
        .expect("a Service");
    let selector = at(service, &["spec", "selector"]).expect("service selector");
    for d in &deployments {
        let labels = at(d, &["spec", "template", "metadata", "labels"]).expect("labels");
        assert!(
            labels_match(selector, labels),
            "the Service misses {:?}",
            d.get("metadata")
        );
    }
    for p in seq(service, &["spec", "ports"]) {
        assert_eq!(
            str_at(p, &["targetPort"]),
            Some("metrics"),
            "service targetPort"
        );
    }

    // Each budget and the autoscaler point at one Deployment.
    let budgets: Vec<&&Value> = docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some("PodDisruptionBudget"))
        .collect();
    assert_eq!(
        budgets.len(),
        deployments.len(),
        "a PodDisruptionBudget per Deployment"
    );
    for b in budgets {
        let sel = at(b, &["spec", "selector", "matchLabels"]).expect("budget selector");
        let hits = deployments
            .iter()
            .filter(|d| {
                labels_match(
                    sel,
                    at(d, &["spec", "template", "metadata", "labels"]).unwrap_or(&Value::Null),
                )
            })
            .count();
        assert_eq!(
            hits,
            1,
            "budget {:?} selects {hits} Deployments",
            b.get("metadata")
        );
    }
    let hpa = docs
        .iter()
        .find(|d| str_at(d, &["kind"]) == Some("HorizontalPodAutoscaler"))
        .expect("an autoscaler for the workers");
    assert_eq!(
        str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
        Some("Deployment")
    );
    assert_eq!(
        str_at(hpa, &["spec", "scaleTargetRef", "name"]),
        Some("campaign-worker")
    );
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

/// Every PromQL expression of the alert rules and the dashboard, with where it comes from.
fn observability_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rules = &yaml_docs(&root().join("deploy/prometheus/alerts.yaml"))[0];
    let mut alerts = BTreeSet::new();
    for group in seq(rules, &["groups"]) {
        for rule in seq(group, &["rules"]) {
            let name = str_at(rule, &["alert"]).expect("alert name");
            assert!(alerts.insert(name.to_owned()), "alert {name} twice");
            for field in [&["labels", "severity"][..], &["annotations", "summary"]] {
                assert!(
                    str_at(rule, field).is_some(),
                    "alert {name} lacks {field:?}"
                );
            }
            let expr = str_at(rule, &["expr"]).expect("alert expr");
            out.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    // The rules the operations guide promises.
    for wanted in [
        "CampaignTickLatenessHigh",
        "CampaignTickDeadJobs",
        "CampaignNoLiveWorker",
        "CampaignPeerBreakerOpen",
        "CampaignEventsDeadLettered",
        "CampaignEventsDropped",
        "CampaignChainStuck",
    ] {
        assert!(alerts.contains(wanted), "alerts.yaml lacks {wanted}");
    }

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
    let before = out.len();
    panels(&dashboard, &mut out);
    assert!(out.len() - before >= 20, "the dashboard has few queries");
    for (source, expr) in &out {
        assert!(
            brackets_balance(expr),
            "{source}: unbalanced brackets in {expr}"
        );
    }
    out
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
