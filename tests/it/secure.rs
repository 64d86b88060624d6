//! Secure connections and secrets, end to end:
//! * secrets read from mounted files (`*_FILE`), and a value given with its file refused;
//! * DSN parameters reach the MySQL connection (`tls=true` against this MariaDB, which has no
//!   TLS, fails with a TLS error; `tls=preferred` falls back to plain; an unknown parameter
//!   stops the start naming it);
//! * all three over TLS: MySQL (a test-owned `mariadbd` with TLS, DSN `?tls=true`), Redis (a
//!   test-owned `redis-server --tls-port`) for the cache *and* the tick workers, and `amqps://`
//!   through a test-owned TLS relay in front of the shared RabbitMQ, with the test CA trusted
//!   through `SSL_CERT_FILE`; an untrusted CA is a failed start.
//!
//! The TLS test needs `openssl`, `mariadb-install-db`/`mariadbd` and `redis-server` built with
//! TLS (Debian's are).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use campaign_manager::dsn::DatabaseDsn;
use campaign_manager::store::{Cache, Store};
use support::{TestDb, TestNames, TestPrefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every setting the service reads from the environment, removed from child processes so
/// only what a test passes counts.
const INFRA_ENV: &[&str] = &[
    "DATABASE_DSN",
    "DATABASE_DSN_FILE",
    "RABBITMQ_ADDRESS",
    "RABBITMQ_ADDRESS_FILE",
    "REDIS_ADDRESS",
    "REDIS_PASSWORD",
    "REDIS_PASSWORD_FILE",
    "REDIS_TLS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A directory for one test's files, removed with it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(support::unique("cm-secure-"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `campaign-manager` on the test's names, with `--prometheus_listen_address` on `port`.
fn service(names: &TestNames, prefix: &TestPrefix, port: u16) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_campaign-manager"));
    for var in INFRA_ENV {
        cmd.env_remove(var);
    }
    cmd.args(["--redis_database", "0"])
        .args(["--queue_prefix", &names.prefix])
        .args(["--cache_prefix", &prefix.0])
        .args(["--tick_namespace", &format!("{}ticks", prefix.0)])
        .args(["--prometheus_listen_address", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn readyz(port: u16) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Waits for `/readyz` to answer 200 (or the child to exit); returns the body.
async fn wait_ready(child: &mut tokio::process::Child, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(answer) = readyz(port).await
            && answer.starts_with("HTTP/1.0 200")
        {
            return answer;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("campaign-manager exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "not ready within 40 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a child that must fail; returns (exit code, stderr).
async fn failed_start(mut cmd: tokio::process::Command) -> (i32, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("exits within 60 s")
        .expect("run campaign-manager");
    eprintln!(
        "failed start as expected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn secrets_come_from_files_and_a_value_with_its_file_is_refused() {
    let (db, names, prefix, dir) = (
        TestDb::empty().await,
        TestNames::new(),
        TestPrefix::new(),
        TempDir::new(),
    );
    let dsn_file = dir.file("dsn", &format!("{}\n", db.url));
    let amqp_file = dir.file("amqp", &format!("{}\n", support::amqp_url()));
    let port = free_port();
    let mut child = service(&names, &prefix, port)
        .env("DATABASE_DSN_FILE", &dsn_file)
        .env("RABBITMQ_ADDRESS_FILE", &amqp_file)
        .args(["--workers", "0"])
        .spawn()
        .expect("spawn campaign-manager");
    let body = wait_ready(&mut child, port).await;
    assert!(body.contains(r#""mysql":"ok""#), "{body}");
    let _ = child.kill().await;

    let mut both = service(&names, &prefix, free_port());
    both.env("DATABASE_DSN_FILE", &dsn_file)
        .args(["--database_dsn", &db.url]);
    let (code, stderr) = failed_start(both).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--database_dsn_file") && stderr.contains("cannot be used with"),
        "{stderr}"
    );

    let mut missing = service(&names, &prefix, free_port());
    missing.env("REDIS_PASSWORD_FILE", dir.0.join("absent"));
    let (code, stderr) = failed_start(missing).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("invalid redis_password_file: cannot read"),
        "{stderr}"
    );
}

#[tokio::test]
async fn dsn_parameters_reach_the_connection() {
    let db = TestDb::empty().await;
    let connect = |params: &str| {
        let dsn = format!("root@tcp(127.0.0.1:3306)/{}?{params}", db.name);
        async move {
            let dsn = DatabaseDsn::parse(&dsn).expect("valid DSN");
            Store::connect(&dsn, Cache::disabled()).await
        }
    };
    // This MariaDB has TLS disabled: asking for it must fail, never fall back silently.
    for tls in ["true", "skip-verify"] {
        let err = connect(&format!("tls={tls}")).await.err();
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("server does not support TLS"),
            "tls={tls}: {err}"
        );
    }
    let store =
        connect("tls=preferred&timeout=2s&charset=utf8mb4&collation=utf8mb4_bin&parseTime=true")
            .await
            .expect("preferred falls back to plain");
    let (collation,): (String,) = sqlx::query_as("SELECT @@collation_connection")
        .fetch_one(&store.pool)
        .await
        .expect("read the collation");
    assert_eq!(collation, "utf8mb4_bin");
    store.pool.close().await;
    // sql_mode, quoted as the Go driver wants it, is every session's.
    let store = connect("sql_mode=%27STRICT_ALL_TABLES,NO_ZERO_DATE%27")
        .await
        .expect("sql_mode");
    for _ in 0..2 {
        let (mode,): (String,) = sqlx::query_as("SELECT @@SESSION.sql_mode")
            .fetch_one(&store.pool)
            .await
            .expect("read sql_mode");
        assert_eq!(mode, "STRICT_ALL_TABLES,NO_ZERO_DATE");
    }
    store.pool.close().await;

    let (names, prefix) = (TestNames::new(), TestPrefix::new());
    let mut unknown = service(&names, &prefix, free_port());
    unknown.args([
        "--database_dsn",
        &format!("root:Secret9@tcp(127.0.0.1:3306)/{}?autocommit=0", db.name),
    ]);
    let (code, stderr) = failed_start(unknown).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unknown parameter 'autocommit'"),
        "{stderr}"
    );
    assert!(!stderr.contains("Secret9"), "the password leaked: {stderr}");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (files in `dir`).
fn make_certificates(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let at = |n: &str| dir.0.join(n);
    let ext = dir.file(
        "server.ext",
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage=serverAuth\n",
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir.0)
            .output()
            .expect("run openssl (is it installed?)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=campaign-manager test CA",
        "-days",
        "2",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    let ext = ext.to_string_lossy().into_owned();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (at("ca.pem"), at("server.pem"), at("server.key"))
}

/// `redis-server` with TLS only, on a fresh port (killed when dropped).
async fn tls_redis(cert: &Path, key: &Path, ca: &Path) -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(ca)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, port)
}

/// A MariaDB of the test's own with TLS (certificate `cert`, for 127.0.0.1), in `dir`, with an
/// empty database `cm`; killed when dropped. Returns it and its port.
async fn tls_mariadb(
    dir: &TempDir,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> (tokio::process::Child, u16) {
    let data = dir.0.join("mariadb");
    campaign_demo::install_mariadb(&data).expect("mariadb-install-db");
    let port = free_port();
    let path = |p: &Path| p.display().to_string();
    let mut std_cmd = campaign_demo::own_mariadbd(&data, &dir.0.join("mariadb.sock"), port);
    std_cmd
        .arg("--innodb-buffer-pool-size=16M")
        .arg(format!("--ssl-cert={}", path(cert)))
        .arg(format!("--ssl-key={}", path(key)))
        .arg(format!("--ssl-ca={}", path(ca)));
    let child = tokio::process::Command::from(std_cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mariadbd");
    // The URL form with sqlx's own TLS parameters, trusting the CA by file.
    let url = format!(
        "mysql://root@127.0.0.1:{port}/?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        path(ca)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dsn = DatabaseDsn::parse(&url).expect("valid URL");
        match Store::connect(&dsn, Cache::disabled()).await {
            Ok(store) => {
                let (cipher,): (String,) = sqlx::query_as("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'")
                    .fetch_one(&store.pool)
                    .await
                    .expect("read the TLS version");
                assert!(cipher.starts_with("TLS"), "not encrypted: '{cipher}'");
                sqlx::query("CREATE DATABASE cm")
                    .execute(&store.pool)
                    .await
                    .expect("create database cm");
                store.pool.close().await;
                return (child, port);
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "mariadbd with TLS did not start: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A TLS-terminating relay to the shared RabbitMQ: the service speaks `amqps://` to it.
async fn amqps_relay(cert: &Path, key: &Path) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("read server.pem")
        .collect::<Result<_, _>>()
        .expect("parse server.pem");
    let key = PrivateKeyDer::from_pem_file(key).expect("read server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the amqps relay");
    let port = listener.local_addr().expect("relay address").port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(inbound).await else {
                    return;
                };
                let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn mysql_redis_and_rabbitmq_over_tls() {
    let (db, names, prefix, dir) = (
        TestDb::empty().await,
        TestNames::new(),
        TestPrefix::new(),
        TempDir::new(),
    );
    let (ca, cert, key) = make_certificates(&dir);
    let (_mariadb, mariadb_port) = tls_mariadb(&dir, &cert, &key, &ca).await;
    let (_redis, redis_port) = tls_redis(&cert, &key, &ca).await;
    let amqps_port = amqps_relay(&cert, &key).await;
    let tls_dsn = format!("root@tcp(127.0.0.1:{mariadb_port})/cm?tls=true&timeout=3s");
    let tls_flags = |cmd: &mut tokio::process::Command, dsn: &str, amqp: &str| {
        cmd.args(["--database_dsn", dsn])
            .args(["--redis_tls", "true"])
            .args(["--redis_address", &format!("127.0.0.1:{redis_port}")])
            .args(["--rabbitmq_address", amqp])
            .args(["--workers", "2"]);
    };
    let amqps = format!("amqps://guest:guest@127.0.0.1:{amqps_port}/%2f");

    // Trusting the test CA: every connection is up, the tick workers' Redis one included.
    let port = free_port();
    let mut cmd = service(&names, &prefix, port);
    tls_flags(&mut cmd, &tls_dsn, &amqps);
    cmd.env("SSL_CERT_FILE", &ca);
    let mut child = cmd.spawn().expect("spawn campaign-manager");
    let body = wait_ready(&mut child, port).await;
    for check in ["mysql", "redis", "rabbitmq", "workers"] {
        assert!(body.contains(&format!(r#""{check}":"ok""#)), "{body}");
    }
    let _ = child.kill().await;

    // Not trusting it (the system store lacks the test CA): a failed start that says why,
    // first for MySQL, then (plain MySQL and AMQP) for Redis.
    let mut cmd = service(&names, &prefix, free_port());
    tls_flags(&mut cmd, &tls_dsn, &amqps);
    let (code, stderr) = failed_start(cmd).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("connecting to MySQL") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    let mut cmd = service(&names, &prefix, free_port());
    tls_flags(&mut cmd, &db.url, &support::amqp_url());
    let (code, stderr) = failed_start(cmd).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("tick scheduler to Redis") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
}
