//! The Kubernetes kit as it is applied: every overlay rendered with `kubectl kustomize` (the
//! kustomize built into kubectl), each object validated strictly against the Kubernetes 1.28,
//! 1.30 and 1.33 schemas with `kubernetes-validate --strict` (PyPI), and the rendered objects
//! checked against the binaries and the rules of docs/deploy.md:
//!
//! * safe by default: without the ticking component nothing ticks (`WORKERS=0` in the service,
//!   the worker Deployment at 0 replicas, no autoscaler); with it, KEDA owns the workers' count
//!   and no Deployment an autoscaler owns sets `replicas`;
//! * names that cannot clash with the Go service (`*-rs`), the platform's namespace and Secret
//!   `voipbin` with its keys on `overlays/voipbin*`, the image pinned to the package version or a
//!   digest;
//! * every container runs a binary the image ships, with only env its flags read, and the
//!   settings that must agree (queue prefix, tick namespace, shards, Redis) agree across every
//!   container of an overlay; secrets are files of the mounted Secret;
//! * the migration Job runs `campaign-manager migrate`, long-running processes `MIGRATE=false`;
//! * probes, ports and scrape annotations match the binaries; grace periods outlast the drain
//!   bound; budgets (`AlwaysAllow`) and the Service select what exists; topology spread, no
//!   service-account token, non-root, read-only root file system;
//! * the MySQL connection rule of docs/deploy.md holds.
//!
//! kubectl and kubernetes-validate are looked up on PATH; where one is missing the test says so
//! and skips, except under CI (`CI=true`), where `.ci/run` installs them and a missing one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use yaml_serde::Value;

use super::deploy::{
    BinaryFlags, IMAGE, LIVENESS_PATH, READINESS_PATH, SERVICE_BINARIES, at, bytes,
    dockerfile_ships, drain_bound, labels_match, millicores, port_of, promql_check, read, root,
    secret_keys_of, seq, str_at, yaml_docs,
};

/// Every kustomization a deployment applies, and whether it turns ticking on.
const OVERLAYS: [(&str, bool); 4] = [
    ("base", false),
    ("overlays/ticking", true),
    ("overlays/voipbin", false),
    ("overlays/voipbin-ticking", true),
];
/// The Kubernetes versions every object must validate against.
const KUBERNETES: [&str; 3] = ["1.28.0", "1.30.0", "1.33.0"];
/// The platform's Secret and the keys its services read (PLATFORM-NOW, the Go service's k8s/).
const PLATFORM_SECRET: &str = "voipbin";
const PLATFORM_SECRET_KEYS: [&str; 5] = [
    "DATABASE_DSN_BIN",
    "RABBITMQ_ADDRESS",
    "REDIS_ADDRESS",
    "REDIS_PASSWORD",
    "REDIS_DATABASE",
];
/// The settings every process (and campaign-control) must agree on.
const SHARED: [&str; 7] = [
    "EVENT_BUS",
    "QUEUE_PREFIX",
    "CACHE_PREFIX",
    "TICK_NAMESPACE",
    "TICK_SHARDS",
    "REDIS_ADDRESS",
    "REDIS_DATABASE",
];
/// The MySQL connections docs/deploy.md allows the service (Sizing), and what the CLI and the
/// migration Job add to the pods' pools.
const MYSQL_BUDGET: u64 = 100;
const MYSQL_TOOLS: u64 = 2;
/// The fields of KEDA's ScaledObject (keda.sh/v1alpha1, its CRD), which no Kubernetes schema has.
const KEDA_SPEC: [&str; 11] = [
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
    "scalingModifiers",
];
const KEDA_TRIGGER: [&str; 6] = [
    "type",
    "name",
    "metadata",
    "metricType",
    "useCachedMetrics",
    "authenticationRef",
];

/// Whether `tool` can be run; a missing tool fails under CI and is reported otherwise.
fn have(tool: &str, probe: &[&str], why: &str) -> bool {
    let found = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI ({why}); .ci/run installs it"
        );
        eprintln!("SKIPPED: {tool} not found on PATH, so {why} is not checked here");
    }
    found
}

fn have_kubectl() -> bool {
    have(
        "kubectl",
        &["version", "--client"],
        "the kustomize overlays' rendering",
    )
}

/// `kubectl kustomize deploy/k8s/<dir>`: the YAML text.
fn render_text(dir: &str) -> String {
    let path = root().join("deploy/k8s").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 manifests")
}

/// The rendered objects of `dir`.
fn render(dir: &str) -> Vec<Value> {
    let file = std::env::temp_dir().join(format!("{}.yaml", super::support::unique("kustomize")));
    std::fs::write(&file, render_text(dir)).expect("write the rendered manifests");
    let docs = yaml_docs(&file);
    let _ = std::fs::remove_file(&file);
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| str_at(d, &["kind"]) == Some(kind))
        .collect()
}

fn name(doc: &Value) -> &str {
    str_at(doc, &["metadata", "name"]).unwrap_or_default()
}

#[test]
fn every_overlay_validates_strictly_against_kubernetes_schemas() {
    if !have_kubectl()
        || !have(
            "kubernetes-validate",
            &["--version"],
            "the strict Kubernetes schema validation",
        )
    {
        return;
    }
    for (dir, _) in OVERLAYS {
        let file = std::env::temp_dir().join(format!("{}.yaml", super::support::unique("kv")));
        std::fs::write(&file, render_text(dir)).expect("write the rendered manifests");
        for version in KUBERNETES {
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "--quiet", "-k", version])
                .arg(&file)
                .output()
                .expect("run kubernetes-validate");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && !text.contains("ERROR"),
                "{dir} against Kubernetes {version}:\n{text}"
            );
            // Only KEDA's ScaledObject may lack a schema (checked by `scaled_object_is_keda`).
            for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
                assert!(line.contains("kind ScaledObject"), "{dir}: {line}");
            }
        }
        let _ = std::fs::remove_file(&file);
    }
}

#[test]
fn rendered_overlays_match_the_binaries_and_the_rules() {
    if !have_kubectl() {
        return;
    }
    for (dir, ticking) in OVERLAYS {
        let docs = render(dir);
        let platform = dir.contains("voipbin");
        names_never_clash(dir, &docs, platform);
        let configs = config_maps(&docs);
        let mut shared: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for d in of_kind(&docs, "Deployment")
            .into_iter()
            .chain(of_kind(&docs, "Job"))
        {
            let pod = at(d, &["spec", "template"]).expect("pod template");
            pod_is_hardened(dir, d, pod);
            let c = &seq(pod, &["spec", "containers"])[0];
            let env = effective_env(dir, name(d), c, &configs);
            secrets_are_files(dir, name(d), pod, c, &env, platform);
            image_is_pinned(dir, name(d), c);
            let argv: Vec<&str> = seq(c, &["command"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match argv.as_slice() {
                ["campaign-manager", "migrate"] => migration_job(dir, d, &env),
                [binary] if SERVICE_BINARIES.contains(binary) => {
                    long_running(dir, d, pod, c, binary, &env, ticking)
                }
                ["sleep", "infinity"] => operator_cli(dir, d, &env),
                other => panic!("{dir}: {} runs {other:?}", name(d)),
            }
            shared.push((name(d).to_owned(), env));
        }
        settings_agree(dir, &shared);
        autoscaling(dir, &docs, ticking);
        budgets_and_service(dir, &docs);
        mysql_connections(dir, &docs);
    }
}

/// Object names end in `-rs` (a generated ConfigMap carries a hash after it) and nothing selects
/// the Go service's pods (`app: campaign-manager`); the platform's overlays are in bin-manager.
fn names_never_clash(dir: &str, docs: &[Value], platform: bool) {
    for d in docs {
        let n = name(d);
        assert!(
            n.contains("-rs") && n.starts_with("campaign-"),
            "{dir}: {} {n} may clash with the Go service's names",
            str_at(d, &["kind"]).unwrap_or_default()
        );
        let text = yaml_serde::to_string(d).expect("yaml");
        assert!(
            !text.contains("app: campaign-manager\n"),
            "{dir}: {n} uses the Go service's label"
        );
        if platform {
            assert_eq!(
                str_at(d, &["metadata", "namespace"]),
                Some("bin-manager"),
                "{dir}: {n}"
            );
        }
    }
}

/// ConfigMap name → data.
fn config_maps(docs: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    of_kind(docs, "ConfigMap")
        .into_iter()
        .map(|c| {
            let data = at(c, &["data"])
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let k = k.as_str().expect("key").to_owned();
                            (k, v.as_str().unwrap_or_default().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            (name(c).to_owned(), data)
        })
        .collect()
}

/// The container's environment as the kubelet builds it: `envFrom` ConfigMaps first, `env`
/// entries over them; a Secret reference reads `<secret name/key>`.
fn effective_env(
    dir: &str,
    owner: &str,
    c: &Value,
    configs: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in seq(c, &["envFrom"]) {
        let cm = str_at(from, &["configMapRef", "name"])
            .unwrap_or_else(|| panic!("{dir}: {owner}: envFrom other than a ConfigMap"));
        let data = configs
            .get(cm)
            .unwrap_or_else(|| panic!("{dir}: {owner} reads ConfigMap {cm}, not rendered"));
        env.extend(data.clone());
    }
    let mut seen = BTreeSet::new();
    for e in seq(c, &["env"]) {
        let key = str_at(e, &["name"]).expect("env name");
        assert!(seen.insert(key), "{dir}: {owner}: {key} twice in env");
        let value = match (str_at(e, &["value"]), at(e, &["valueFrom", "secretKeyRef"])) {
            (Some(v), None) => v.to_owned(),
            (None, Some(r)) => format!(
                "<secret {}/{}>",
                str_at(r, &["name"]).expect("secret name"),
                str_at(r, &["key"]).expect("secret key")
            ),
            _ => panic!("{dir}: {owner}: {key} needs one of value / secretKeyRef"),
        };
        env.insert(key.to_owned(), value);
    }
    env
}

/// Non-root, read-only, no privilege, no service-account token.
fn pod_is_hardened(dir: &str, d: &Value, pod: &Value) {
    let n = name(d);
    let spec = at(pod, &["spec"]).expect("pod spec");
    assert_eq!(
        at(spec, &["automountServiceAccountToken"]).and_then(Value::as_bool),
        Some(false),
        "{dir}: {n} mounts a service-account token"
    );
    assert_eq!(
        at(spec, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool),
        Some(true),
        "{dir}: {n}"
    );
    assert_eq!(
        at(spec, &["securityContext", "runAsUser"]).and_then(Value::as_u64),
        Some(10001),
        "{dir}: {n} runs as another user than the image's"
    );
    for c in seq(spec, &["containers"]) {
        let sc = at(c, &["securityContext"]).expect("container securityContext");
        assert_eq!(
            at(sc, &["readOnlyRootFilesystem"]).and_then(Value::as_bool),
            Some(true),
            "{dir}: {n} writes its root file system"
        );
        assert_eq!(
            at(sc, &["allowPrivilegeEscalation"]).and_then(Value::as_bool),
            Some(false),
            "{dir}: {n}"
        );
    }
}

/// The image is the repository's, pinned to the package version or a digest.
fn image_is_pinned(dir: &str, owner: &str, c: &Value) {
    let image = str_at(c, &["image"]).expect("image");
    let (repo, pin) = image
        .split_once('@')
        .or_else(|| image.rsplit_once(':'))
        .unwrap_or_else(|| panic!("{dir}: {owner}: image {image} is not pinned"));
    assert!(
        repo.ends_with("campaign-manager-rs"),
        "{dir}: {owner}: image {image} is not the repository's ({IMAGE} renamed)"
    );
    assert!(
        pin == env!("CARGO_PKG_VERSION") || pin.starts_with("sha256:"),
        "{dir}: {owner}: image {image} pins neither the package version nor a digest"
    );
}

/// Secrets reach the process as files of a read-only mounted Secret: the example Secret's keys
/// in the base, the platform's keys (DATABASE_DSN_BIN as the DSN) on the platform.
fn secrets_are_files(
    dir: &str,
    owner: &str,
    pod: &Value,
    c: &Value,
    env: &BTreeMap<String, String>,
    platform: bool,
) {
    let example = secret_keys_of(&yaml_docs(&root().join("deploy/k8s/secret.example.yaml")));
    for (key, value) in env {
        if let Some(reference) = value.strip_prefix("<secret ") {
            let (secret, k) = reference
                .trim_end_matches('>')
                .split_once('/')
                .expect("secret/key");
            assert!(
                platform,
                "{dir}: {owner}: {key} from a Secret outside the platform"
            );
            assert_eq!(secret, PLATFORM_SECRET, "{dir}: {owner}: {key}");
            assert!(PLATFORM_SECRET_KEYS.contains(&k), "{dir}: {owner}: {k}");
            assert!(
                ["REDIS_ADDRESS", "REDIS_DATABASE"].contains(&key.as_str()),
                "{dir}: {owner}: the secret {key} as an env value"
            );
        }
    }
    let volumes = seq(pod, &["spec", "volumes"]);
    for (secret_env, file) in [
        ("DATABASE_DSN", "database-dsn"),
        ("RABBITMQ_ADDRESS", "rabbitmq-address"),
        ("REDIS_PASSWORD", "redis-password"),
    ] {
        assert!(
            !env.contains_key(secret_env),
            "{dir}: {owner}: {secret_env} as an env value; use {secret_env}_FILE"
        );
        let Some(path) = env.get(&format!("{secret_env}_FILE")) else {
            // The migration needs only the DSN.
            assert_ne!(secret_env, "DATABASE_DSN", "{dir}: {owner} has no DSN");
            continue;
        };
        let (mount_dir, key) = path.rsplit_once('/').expect("a path");
        assert_eq!(key, file, "{dir}: {owner}: {secret_env}_FILE");
        let mount = seq(c, &["volumeMounts"])
            .iter()
            .find(|m| str_at(m, &["mountPath"]) == Some(mount_dir))
            .unwrap_or_else(|| panic!("{dir}: {owner}: nothing mounted at {mount_dir}"));
        assert_eq!(
            at(mount, &["readOnly"]).and_then(Value::as_bool),
            Some(true)
        );
        let volume = volumes
            .iter()
            .find(|v| str_at(v, &["name"]) == str_at(mount, &["name"]))
            .and_then(|v| v.get("secret"))
            .unwrap_or_else(|| panic!("{dir}: {owner}: {mount_dir} is not a Secret"));
        let secret = str_at(volume, &["secretName"]).expect("secretName");
        if platform {
            assert_eq!(secret, PLATFORM_SECRET, "{dir}: {owner}");
            let item = seq(volume, &["items"])
                .iter()
                .find(|i| str_at(i, &["path"]) == Some(file))
                .unwrap_or_else(|| panic!("{dir}: {owner}: no item for {file}"));
            let k = str_at(item, &["key"]).expect("item key");
            assert!(PLATFORM_SECRET_KEYS.contains(&k), "{dir}: {owner}: {k}");
            if secret_env == "DATABASE_DSN" {
                assert_eq!(k, "DATABASE_DSN_BIN", "{dir}: the platform's DSN key");
            }
        } else {
            assert!(
                example.get(secret).is_some_and(|keys| keys.contains(file)),
                "{dir}: {owner} reads {secret}/{file}, which the example Secret lacks"
            );
        }
    }
}

/// The migration Job: `campaign-manager migrate`, once, labelled for the documented selection.
fn migration_job(dir: &str, d: &Value, env: &BTreeMap<String, String>) {
    assert_eq!(str_at(d, &["kind"]), Some("Job"), "{dir}: migrate in a Job");
    let labels = at(d, &["spec", "template", "metadata", "labels"]).expect("labels");
    assert_eq!(
        str_at(labels, &["app.kubernetes.io/component"]),
        Some("migrate")
    );
    assert_eq!(
        str_at(d, &["spec", "template", "spec", "restartPolicy"]),
        Some("Never")
    );
    let flags = BinaryFlags::of("campaign-manager");
    for key in env.keys() {
        assert!(flags.accepts(key), "{dir}: the Job sets {key}, not read");
    }
    // The subcommand itself: checked where this tree's binary has it.
    let help = Command::new(super::deploy::binary_path("campaign-manager"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("campaign-manager --help");
    let text = String::from_utf8_lossy(&help.stdout);
    if text.contains("migrate") && text.contains("Commands:") {
        let out = Command::new(super::deploy::binary_path("campaign-manager"))
            .args(["migrate", "--help"])
            .env_clear()
            .output()
            .expect("campaign-manager migrate --help");
        assert!(
            out.status.success(),
            "campaign-manager migrate --help fails"
        );
    } else {
        eprintln!("NOTE: this campaign-manager has no `migrate` subcommand yet; the Job runs it");
    }
}

/// `campaign-manager` / `campaign-worker`: env, probes, ports, annotations, grace, resources,
/// spread, MIGRATE=false, and ticking only where the overlay turns it on.
fn long_running(
    dir: &str,
    d: &Value,
    pod: &Value,
    c: &Value,
    binary: &str,
    env: &BTreeMap<String, String>,
    ticking: bool,
) {
    let n = name(d);
    assert_eq!(str_at(d, &["kind"]), Some("Deployment"), "{dir}: {n}");
    assert!(
        dockerfile_ships(binary),
        "the Dockerfile does not ship {binary}"
    );
    let flags = BinaryFlags::of(binary);
    for key in env.keys() {
        assert!(
            flags.accepts(key),
            "{dir}: {n}: {key} is not read by {binary}"
        );
    }
    let workers: u64 = flags.effective("WORKERS", env).parse().expect("WORKERS");
    match binary {
        "campaign-manager" => {
            assert_eq!(
                env.get("MIGRATE").map(String::as_str),
                Some("false"),
                "{dir}: {n}"
            );
            assert_eq!(
                workers, 0,
                "{dir}: {n} ticks; ticks belong to campaign-worker-rs"
            );
        }
        _ => {
            assert!(
                !env.contains_key("MIGRATE"),
                "{dir}: campaign-worker never migrates"
            );
            assert!(workers > 0, "{dir}: {n} with no tick permits");
            let replicas = at(d, &["spec", "replicas"]).and_then(Value::as_u64);
            if !ticking {
                assert_eq!(
                    replicas,
                    Some(0),
                    "{dir}: {n} ticks without the ticking overlay"
                );
            }
        }
    }
    let grace = at(pod, &["spec", "terminationGracePeriodSeconds"])
        .and_then(Value::as_u64)
        .unwrap_or(30);
    assert!(
        Duration::from_secs(grace) > drain_bound(),
        "{dir}: {n}: grace {grace}s must outlast the drain bound {:?}",
        drain_bound()
    );
    assert!(
        labels_match(
            at(d, &["spec", "selector", "matchLabels"]).expect("selector"),
            at(pod, &["metadata", "labels"]).expect("pod labels")
        ),
        "{dir}: {n}: the selector misses its own pods"
    );
    let spread: Vec<&str> = seq(pod, &["spec", "topologySpreadConstraints"])
        .iter()
        .filter_map(|t| str_at(t, &["topologyKey"]))
        .collect();
    assert!(
        spread.contains(&"kubernetes.io/hostname"),
        "{dir}: {n}: {spread:?}"
    );
    probes_and_scraping(dir, n, pod, c, &flags, env);
    let res = at(c, &["resources"]).expect("resources");
    let cpu = millicores(str_at(res, &["requests", "cpu"]).expect("cpu request"));
    let mem = bytes(str_at(res, &["requests", "memory"]).expect("memory request"));
    let limit = bytes(str_at(res, &["limits", "memory"]).expect("memory limit"));
    // Floors from `cargo bench --bench idle` and the e2e bench (docs/benchmarks.md): the
    // service answers RPCs only (idle ~1 millicore, 23 MiB); a worker ticks (39 % of a core and
    // 82 MiB at 100 campaigns), and its CPU request is the autoscaler's CPU trigger's base.
    let (min_cpu, min_mem) = if binary == "campaign-manager" {
        (20, 48 << 20)
    } else {
        (100, 128 << 20)
    };
    assert!(
        cpu >= min_cpu && mem >= min_mem,
        "{dir}: {n}: requests {cpu}m {mem} below {min_cpu}m {min_mem}"
    );
    assert!(limit >= mem, "{dir}: {n}: memory limit below the request");
}

fn probes_and_scraping(
    dir: &str,
    n: &str,
    pod: &Value,
    c: &Value,
    flags: &BinaryFlags,
    env: &BTreeMap<String, String>,
) {
    let port = port_of(&flags.effective("PROMETHEUS_LISTEN_ADDRESS", env));
    let path = flags.effective("PROMETHEUS_ENDPOINT", env);
    let metrics_port = seq(c, &["ports"])
        .iter()
        .find(|p| str_at(p, &["name"]) == Some("metrics"))
        .unwrap_or_else(|| panic!("{dir}: {n}: no port named metrics"));
    assert_eq!(
        at(metrics_port, &["containerPort"]).and_then(Value::as_u64),
        Some(u64::from(port)),
        "{dir}: {n}: metrics containerPort"
    );
    for (probe, expected) in [
        ("startupProbe", LIVENESS_PATH),
        ("livenessProbe", LIVENESS_PATH),
        ("readinessProbe", READINESS_PATH),
    ] {
        let get = at(c, &[probe, "httpGet"]).unwrap_or_else(|| panic!("{dir}: {n}: {probe}"));
        assert_eq!(
            str_at(get, &["path"]),
            Some(expected),
            "{dir}: {n}: {probe}"
        );
        assert_eq!(
            str_at(get, &["port"]),
            Some("metrics"),
            "{dir}: {n}: {probe}"
        );
    }
    let ann = at(pod, &["metadata", "annotations"]).expect("pod annotations");
    assert_eq!(str_at(ann, &["prometheus.io/scrape"]), Some("true"));
    assert_eq!(
        str_at(ann, &["prometheus.io/port"]),
        Some(port.to_string().as_str()),
        "{dir}: {n}: scrape port"
    );
    assert_eq!(
        str_at(ann, &["prometheus.io/path"]),
        Some(path.as_str()),
        "{dir}: {n}: scrape path"
    );
}

/// The operator CLI's pod: idles, reads only what `campaign-control` (Infra and the shared
/// settings) reads, and is not scraped.
fn operator_cli(dir: &str, d: &Value, env: &BTreeMap<String, String>) {
    assert!(
        dockerfile_ships("campaign-control"),
        "the image lacks campaign-control"
    );
    let flags = BinaryFlags::of("campaign-manager");
    for key in env.keys() {
        assert!(flags.accepts(key), "{dir}: {}: {key}", name(d));
    }
    assert_eq!(
        at(d, &["spec", "replicas"]).and_then(Value::as_u64),
        Some(1)
    );
}

/// Every container of the overlay sees the same value of each shared setting.
fn settings_agree(dir: &str, all: &[(String, BTreeMap<String, String>)]) {
    for key in SHARED {
        let values: BTreeMap<&str, Option<&String>> = all
            .iter()
            .map(|(n, env)| (n.as_str(), env.get(key)))
            .collect();
        let distinct: BTreeSet<Option<&String>> = values.values().copied().collect();
        assert_eq!(distinct.len(), 1, "{dir}: {key} differs: {values:?}");
        assert!(
            distinct.iter().all(Option::is_some),
            "{dir}: {key} is not set everywhere: {values:?}"
        );
    }
}

/// Ticking: a KEDA ScaledObject on the workers, and no `replicas` where it owns the count; none
/// without the ticking component. No HorizontalPodAutoscaler of our own (KEDA makes one).
fn autoscaling(dir: &str, docs: &[Value], ticking: bool) {
    assert!(
        of_kind(docs, "HorizontalPodAutoscaler").is_empty(),
        "{dir}: a HorizontalPodAutoscaler beside KEDA's"
    );
    let scaled = of_kind(docs, "ScaledObject");
    assert_eq!(scaled.len(), usize::from(ticking), "{dir}: ScaledObjects");
    let namespace = docs
        .first()
        .and_then(|d| str_at(d, &["metadata", "namespace"]))
        .unwrap_or("default");
    for so in scaled {
        scaled_object_is_keda(dir, so, namespace);
        let target = str_at(so, &["spec", "scaleTargetRef", "name"]).expect("target");
        let deployment = of_kind(docs, "Deployment")
            .into_iter()
            .find(|d| name(d) == target)
            .unwrap_or_else(|| panic!("{dir}: the ScaledObject scales {target}, not rendered"));
        assert!(
            at(deployment, &["spec", "replicas"]).is_none(),
            "{dir}: {target} sets replicas although KEDA owns them"
        );
        assert_eq!(
            target, "campaign-worker-rs",
            "{dir}: only the workers scale"
        );
    }
}

/// The ScaledObject's fields are KEDA's, its metadata strings, its queries parse and read the
/// namespace they are rendered into.
fn scaled_object_is_keda(dir: &str, so: &Value, namespace: &str) {
    assert_eq!(str_at(so, &["apiVersion"]), Some("keda.sh/v1alpha1"));
    let spec = at(so, &["spec"]).and_then(Value::as_mapping).expect("spec");
    for key in spec.keys().filter_map(Value::as_str) {
        assert!(
            KEDA_SPEC.contains(&key),
            "{dir}: ScaledObject spec.{key} is not KEDA's"
        );
    }
    let min = at(so, &["spec", "minReplicaCount"]).and_then(Value::as_u64);
    let max = at(so, &["spec", "maxReplicaCount"]).and_then(Value::as_u64);
    assert!(
        min >= Some(1) && max >= min,
        "{dir}: replicas {min:?}..{max:?}"
    );
    let mut queries = Vec::new();
    let mut types = BTreeSet::new();
    for t in seq(so, &["spec", "triggers"]) {
        let m = t.as_mapping().expect("trigger");
        for key in m.keys().filter_map(Value::as_str) {
            assert!(KEDA_TRIGGER.contains(&key), "{dir}: trigger field {key}");
        }
        let kind = str_at(t, &["type"]).expect("trigger type");
        types.insert(kind);
        let meta = at(t, &["metadata"])
            .and_then(Value::as_mapping)
            .expect("metadata");
        for (k, v) in meta {
            assert!(
                v.as_str().is_some(),
                "{dir}: trigger metadata {k:?} must be a string"
            );
        }
        if kind == "prometheus" {
            for key in ["serverAddress", "query", "threshold"] {
                assert!(str_at(t, &["metadata", key]).is_some(), "{dir}: {key}");
            }
            let query = str_at(t, &["metadata", "query"]).expect("query");
            assert!(
                query.contains(&format!("namespace=\"{namespace}\"")),
                "{dir}: the query does not read namespace {namespace}: {query}"
            );
            queries.push((format!("{dir} ScaledObject"), query.to_owned()));
        }
    }
    assert!(
        types.contains("prometheus") && types.contains("cpu"),
        "{dir}: {types:?}"
    );
    if let Some(results) = promql_check(&queries) {
        for r in results {
            assert!(r.error.is_none(), "{}: {:?}", r.source, r.error);
        }
    }
}

/// One budget per long-running Deployment, each with `AlwaysAllow`; the Service selects them.
fn budgets_and_service(dir: &str, docs: &[Value]) {
    let served: Vec<&Value> = of_kind(docs, "Deployment")
        .into_iter()
        .filter(|d| {
            seq(d, &["spec", "template", "spec", "containers"])
                .iter()
                .any(|c| {
                    seq(c, &["ports"])
                        .iter()
                        .any(|p| str_at(p, &["name"]) == Some("metrics"))
                })
        })
        .collect();
    let budgets = of_kind(docs, "PodDisruptionBudget");
    assert_eq!(
        budgets.len(),
        served.len(),
        "{dir}: a budget per Deployment"
    );
    for b in budgets {
        assert_eq!(
            str_at(b, &["spec", "unhealthyPodEvictionPolicy"]),
            Some("AlwaysAllow"),
            "{dir}: {}",
            name(b)
        );
        let sel = at(b, &["spec", "selector", "matchLabels"]).expect("selector");
        let hits = served
            .iter()
            .filter(|d| {
                labels_match(
                    sel,
                    at(d, &["spec", "template", "metadata", "labels"]).unwrap_or(&Value::Null),
                )
            })
            .count();
        assert_eq!(hits, 1, "{dir}: budget {} selects {hits}", name(b));
    }
    let service = of_kind(docs, "Service")[0];
    let selector = at(service, &["spec", "selector"]).expect("selector");
    for d in of_kind(docs, "Deployment") {
        let labels = at(d, &["spec", "template", "metadata", "labels"]).expect("labels");
        assert_eq!(
            labels_match(selector, labels),
            served.iter().any(|s| name(s) == name(d)),
            "{dir}: the metrics Service and {}",
            name(d)
        );
    }
}

/// docs/deploy.md's rule: per pod DATABASE_MAX_CONNECTIONS × the most pods each Deployment
/// may have (the autoscaler's maximum where one owns it), plus the CLI and the Job.
fn mysql_connections(dir: &str, docs: &[Value]) {
    let max_of: BTreeMap<&str, u64> = of_kind(docs, "ScaledObject")
        .into_iter()
        .filter_map(|so| {
            Some((
                str_at(so, &["spec", "scaleTargetRef", "name"])?,
                at(so, &["spec", "maxReplicaCount"]).and_then(Value::as_u64)?,
            ))
        })
        .collect();
    let mut total = MYSQL_TOOLS;
    for d in of_kind(docs, "Deployment") {
        let c = &seq(d, &["spec", "template", "spec", "containers"])[0];
        let Some(per_pod) = seq(c, &["env"])
            .iter()
            .find(|e| str_at(e, &["name"]) == Some("DATABASE_MAX_CONNECTIONS"))
            .and_then(|e| str_at(e, &["value"]))
        else {
            continue;
        };
        let pods = max_of
            .get(name(d))
            .copied()
            .or_else(|| at(d, &["spec", "replicas"]).and_then(Value::as_u64))
            .unwrap_or(1);
        total += per_pod.parse::<u64>().expect("a number") * pods;
    }
    eprintln!("{dir}: at most {total} MySQL connections");
    assert!(
        total <= MYSQL_BUDGET,
        "{dir}: {total} MySQL connections > {MYSQL_BUDGET}"
    );
}

/// Every long-running service container must say how many MySQL connections it opens, or the
/// rule above would count it as none.
#[test]
fn every_service_pod_sizes_its_mysql_pool() {
    for file in ["manager-deployment.yaml", "worker-deployment.yaml"] {
        let text = read(&root().join("deploy/k8s/base").join(file));
        assert!(text.contains("DATABASE_MAX_CONNECTIONS"), "{file}");
    }
}
