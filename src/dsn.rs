//! The MySQL DSN: the platform's go-sql-driver form (`user:pass@tcp(host:port)/db?tls=true&…`)
//! or a `mysql://` URL, turned into sqlx's [`MySqlConnectOptions`] with every parameter either
//! applied, accepted for a stated reason, or refused at start-up by name.
//!
//! Why a parser of our own: the crates that read `…@tcp(host)/db` DSNs want a `driver://`
//! prefix and percent-decode the credentials, which the Go driver does not (a password holding
//! `%` would change meaning), and none maps the Go parameters to sqlx. The Go driver's rules are
//! short, and followed here: the database name starts after the *last* `/`, the credentials end
//! at the last `@` before it, the password starts at the first `:` of the credentials and is
//! taken literally, the address defaults to `127.0.0.1:3306`, and parameter values are
//! percent-decoded.
//!
//! Parameters of the Go form:
//!
//! | parameter | here |
//! |---|---|
//! | `tls` | `true` → verify certificate and host name, `skip-verify` → encrypt without verifying, `preferred` → encrypt when the server offers it, `false` (the Go default) → plain. Names of TLS configs registered in Go code are refused: trust a private CA through `SSL_CERT_FILE` instead |
//! | `timeout` | bound on establishing one connection, and on waiting for one from the pool (default 5 s) |
//! | `charset` | the connection character set (the first of a comma-separated list) |
//! | `collation` | the connection collation |
//! | `allowCleartextPasswords` | enables the cleartext authentication plugin (use with `tls=true`) |
//! | `parseTime`, `loc` | accepted: they tell Go how to scan `DATETIME`; sqlx decodes typed values itself and the service keeps every time in UTC, so `loc` must be `UTC` or `Local` (the platform's images run in UTC) |
//! | `readTimeout`, `writeTimeout` | accepted and noted at start-up: sqlx has no per-read socket deadline; each database call is bounded by the pool's wait and the tick's own deadline instead |
//! | `interpolateParams`, `checkConnLiveness`, `columnsWithAlias`, `maxAllowedPacket`, `allowNativePasswords`, `multiStatements`, `rejectReadOnly` | accepted: client-side behaviours of the Go driver with no effect on what this service sends |
//! | `sql_mode` | the session's `sql_mode`, set on every new connection as the Go driver sets a session variable given in the DSN (`sql_mode=%27STRICT_TRANS_TABLES,NO_ZERO_DATE%27`; the quotes may be left out). Modes are upper-case words separated by commas; anything else is refused. It replaces the server's default and sqlx's additions (`PIPES_AS_CONCAT`, `NO_ENGINE_SUBSTITUTION`) |
//! | anything else | refused, naming the parameter (Go would send it as a session variable; silently dropping it could change behaviour unseen) |
//!
//! A `mysql://` URL keeps sqlx's own parameters (`ssl-mode`, `ssl-ca`, `charset`, …) and takes
//! `sql_mode` as above; an unknown one is refused too.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// Wait for a new connection when the DSN sets no `timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Go-driver parameters that are accepted without changing anything here (see the module doc).
const GO_CLIENT_ONLY: &[&str] = &[
    "interpolateParams",
    "checkConnLiveness",
    "columnsWithAlias",
    "maxAllowedPacket",
    "allowNativePasswords",
    "multiStatements",
    "rejectReadOnly",
];

/// Query parameters sqlx itself reads from a `mysql://` URL.
const SQLX_URL_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslca",
    "ssl-ca",
    "charset",
    "collation",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "socket",
    "timezone",
    "time-zone",
];

/// Where and how to connect to MySQL. `Debug` never shows the password.
#[derive(Clone)]
pub struct DatabaseDsn {
    /// sqlx's options: address, credentials, database, TLS mode, charset, collation.
    pub options: MySqlConnectOptions,
    /// Bound on establishing one connection, and on waiting for one from the pool.
    pub connect_timeout: Duration,
    /// Parameters accepted with a caveat, one sentence each (logged at start-up).
    pub notes: Vec<String>,
    /// The session `sql_mode` every connection sets (the DSN's `sql_mode`), if any.
    pub sql_mode: Option<String>,
}

impl DatabaseDsn {
    /// Parses a DSN in either accepted form.
    pub fn parse(dsn: &str) -> Result<DatabaseDsn, DsnError> {
        let dsn = dsn.trim();
        if let Some(rest) = dsn.strip_prefix("mariadb://") {
            return parse_url(&format!("mysql://{rest}"));
        }
        if dsn.starts_with("mysql://") {
            return parse_url(dsn);
        }
        parse_go(dsn)
    }

    /// `user@host:port/db (tls …)`: what the DSN points at, without the password, for logs and
    /// error messages.
    pub fn describe(&self) -> String {
        let o = &self.options;
        let at = match o.get_socket() {
            Some(path) => format!("unix({})", path.display()),
            None => format!("{}:{}", o.get_host(), o.get_port()),
        };
        format!(
            "{}@{at}/{} (tls {})",
            o.get_username(),
            o.get_database().unwrap_or(""),
            tls_name(o.get_ssl_mode())
        )
    }
}

impl fmt::Debug for DatabaseDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseDsn")
            .field("target", &self.describe())
            .field("connect_timeout", &self.connect_timeout)
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

fn tls_name(mode: MySqlSslMode) -> &'static str {
    match mode {
        MySqlSslMode::Disabled => "off",
        MySqlSslMode::Preferred => "preferred",
        MySqlSslMode::Required => "required, unverified",
        MySqlSslMode::VerifyCa => "verify CA",
        MySqlSslMode::VerifyIdentity => "verify CA and host",
    }
}

/// A database DSN that cannot be used; the message says why (never the password).
#[derive(Debug, thiserror::Error)]
#[error("invalid database_dsn: {0}")]
pub struct DsnError(pub String);

fn invalid(reason: impl Into<String>) -> DsnError {
    DsnError(reason.into())
}

fn parse_url(url: &str) -> Result<DatabaseDsn, DsnError> {
    let mut sql_mode = None;
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "sql_mode" {
                sql_mode = Some(parse_sql_mode(&decode(raw, key)?)?);
                continue;
            }
            if !SQLX_URL_PARAMS.contains(&key) {
                return Err(invalid(format!(
                    "unknown parameter '{key}' in the mysql:// URL (known: sql_mode, {})",
                    SQLX_URL_PARAMS.join(", ")
                )));
            }
        }
    }
    // sqlx's error text never includes the URL, so it is safe to show.
    let options = MySqlConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
    Ok(DatabaseDsn {
        options,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        notes: Vec::new(),
        sql_mode,
    })
}

/// The go-sql-driver form: `[user[:password]@][net[(address)]]/dbname[?param=value&…]`.
fn parse_go(dsn: &str) -> Result<DatabaseDsn, DsnError> {
    let slash = dsn
        .rfind('/')
        .ok_or_else(|| invalid("missing '/' before the database name"))?;
    let (head, tail) = (&dsn[..slash], &dsn[slash + 1..]);
    let (userinfo, net) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    let (db, params) = match tail.split_once('?') {
        Some((db, params)) => (db, Some(params)),
        None => (tail, None),
    };

    let mut options = MySqlConnectOptions::new()
        // Go's default: no TLS unless the DSN asks (sqlx's own default would be "preferred").
        .ssl_mode(MySqlSslMode::Disabled);
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        options = options.username(user);
        if let Some(password) = password {
            options = options.password(password);
        }
    }
    options = with_address(options, net)?;
    let db = decode(db, "database name")?;
    if !db.is_empty() {
        options = options.database(&db);
    }

    let mut parsed = DatabaseDsn {
        options,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        notes: Vec::new(),
        sql_mode: None,
    };
    for pair in params.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("parameter '{pair}' has no '=value'")))?;
        let value = decode(raw, key)?;
        apply(&mut parsed, key, &value)?;
    }
    Ok(parsed)
}

/// `tcp(host:port)`, `tcp`, empty (both mean the default address) or `unix(/path)`.
fn with_address(options: MySqlConnectOptions, net: &str) -> Result<MySqlConnectOptions, DsnError> {
    let (proto, addr) = match net.split_once('(') {
        Some((proto, rest)) => {
            let addr = rest
                .strip_suffix(')')
                .ok_or_else(|| invalid(format!("address '{net}' lacks its closing parenthesis")))?;
            (proto, addr)
        }
        None => (net, ""),
    };
    match proto {
        "" | "tcp" => {
            let addr = if addr.is_empty() {
                "127.0.0.1:3306"
            } else {
                addr
            };
            let (host, port) = split_host_port(addr)?;
            Ok(options.host(host).port(port))
        }
        "unix" if !addr.is_empty() => Ok(options.socket(addr)),
        "unix" => Err(invalid("unix() needs the socket path")),
        other => Err(invalid(format!(
            "network '{other}' is not supported (use tcp(host:port) or unix(/path))"
        ))),
    }
}

/// `host:port`, `host` (port 3306), `[v6]:port` or `[v6]`.
fn split_host_port(addr: &str) -> Result<(&str, u16), DsnError> {
    let bad_port = |p: &str| invalid(format!("port '{p}' in '{addr}' is not a number"));
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(format!("address '{addr}' lacks its ']'")))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
            None if after.is_empty() => Ok((host, 3306)),
            None => Err(invalid(format!("unreadable address '{addr}'"))),
        };
    }
    match addr.rsplit_once(':') {
        Some((host, p)) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
        None => Ok((addr, 3306)),
    }
}

fn apply(dsn: &mut DatabaseDsn, key: &str, value: &str) -> Result<(), DsnError> {
    let options = std::mem::take(&mut dsn.options);
    dsn.options = match key {
        "tls" => options.ssl_mode(tls_mode(value)?),
        "timeout" => {
            dsn.connect_timeout = go_duration(value).filter(|d| !d.is_zero()).ok_or_else(|| {
                invalid(format!(
                    "timeout '{value}' is not a positive duration such as 5s or 500ms"
                ))
            })?;
            options
        }
        "charset" => match value.split(',').map(str::trim).find(|c| !c.is_empty()) {
            Some(charset) => options.charset(charset),
            None => return Err(invalid("charset is empty")),
        },
        "collation" if !value.is_empty() => options.collation(value),
        "collation" => return Err(invalid("collation is empty")),
        "allowCleartextPasswords" => options.enable_cleartext_plugin(go_bool(key, value)?),
        "parseTime" => {
            go_bool(key, value)?;
            options
        }
        "loc" => match value {
            "UTC" | "Local" => options,
            other => {
                return Err(invalid(format!(
                    "loc '{other}' is not supported: the service reads and writes every time in UTC \
                     (use loc=UTC or leave it out)"
                )));
            }
        },
        "readTimeout" | "writeTimeout" => {
            go_duration(value)
                .ok_or_else(|| invalid(format!("{key} '{value}' is not a duration")))?;
            dsn.notes.push(format!(
                "{key}={value} is not applied: sqlx has no per-read deadline; database calls \
                 are bounded by the pool wait ({:?}) and each tick's deadline",
                dsn.connect_timeout
            ));
            options
        }
        "sql_mode" => {
            dsn.sql_mode = Some(parse_sql_mode(value)?);
            options
        }
        k if GO_CLIENT_ONLY.contains(&k) => options,
        other => {
            return Err(invalid(format!(
                "unknown parameter '{other}' (supported: tls, timeout, charset, collation, \
                 allowCleartextPasswords, parseTime, loc, readTimeout, writeTimeout, sql_mode, {})",
                GO_CLIENT_ONLY.join(", ")
            )));
        }
    };
    Ok(())
}

/// A `sql_mode` value: comma-separated upper-case mode names (letters, digits, `_`), in single
/// quotes or not; empty means no mode at all. It is bound as a value, never spliced into SQL.
fn parse_sql_mode(value: &str) -> Result<String, DsnError> {
    let unquoted = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    let well_formed = unquoted.split(',').all(|mode| {
        !mode.is_empty()
            && mode
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    });
    if unquoted.is_empty() || well_formed {
        Ok(unquoted.to_owned())
    } else {
        Err(invalid(format!(
            "sql_mode '{value}' is not a comma-separated list of modes such as \
             STRICT_TRANS_TABLES,NO_ZERO_DATE"
        )))
    }
}

fn tls_mode(value: &str) -> Result<MySqlSslMode, DsnError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(MySqlSslMode::VerifyIdentity),
        "skip-verify" => Ok(MySqlSslMode::Required),
        "preferred" => Ok(MySqlSslMode::Preferred),
        "false" | "0" => Ok(MySqlSslMode::Disabled),
        _ => Err(invalid(format!(
            "tls '{value}' is not supported: names of TLS configs registered in Go code do not \
             exist here; use tls=true (verified; trust a private CA with SSL_CERT_FILE), \
             skip-verify, preferred or false"
        ))),
    }
}

fn go_bool(key: &str, value: &str) -> Result<bool, DsnError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(format!("{key} '{value}' is not true or false"))),
    }
}

/// A Go `time.Duration` string such as `5s`, `1m30s`, `250ms`, `1.5s`.
fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Percent-decodes a DSN part (the database name or a parameter value); `+` stays a `+`.
fn decode(raw: &str, what: &str) -> Result<String, DsnError> {
    if raw.match_indices('%').any(|(i, _)| {
        !raw.get(i + 1..i + 3)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        return Err(invalid(format!("{what} has a broken %-escape")));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("{what} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dsn: &str) -> DatabaseDsn {
        match DatabaseDsn::parse(dsn) {
            Ok(d) => d,
            Err(e) => panic!("{dsn}: {e}"),
        }
    }

    fn error(dsn: &str) -> String {
        match DatabaseDsn::parse(dsn) {
            Ok(d) => panic!("{dsn} parsed as {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_platform_default_dsn() {
        let d = parse("testid:testpassword@tcp(127.0.0.1:3306)/test");
        let o = &d.options;
        assert_eq!(o.get_host(), "127.0.0.1");
        assert_eq!(o.get_port(), 3306);
        assert_eq!(o.get_username(), "testid");
        assert_eq!(o.get_database(), Some("test"));
        assert!(matches!(o.get_ssl_mode(), MySqlSslMode::Disabled));
        assert_eq!(d.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert!(d.notes.is_empty());
    }

    #[test]
    fn a_full_platform_dsn_keeps_its_parameters() {
        let d = parse(
            "bin:s3cret@tcp(db.internal:3307)/bin_manager?tls=true&timeout=2500ms\
             &parseTime=true&charset=utf8mb4,utf8&collation=utf8mb4_unicode_ci&loc=UTC\
             &readTimeout=30s&writeTimeout=1m",
        );
        let o = &d.options;
        assert_eq!((o.get_host(), o.get_port()), ("db.internal", 3307));
        assert_eq!(o.get_database(), Some("bin_manager"));
        assert!(matches!(o.get_ssl_mode(), MySqlSslMode::VerifyIdentity));
        assert_eq!(d.connect_timeout, Duration::from_millis(2500));
        assert_eq!(o.get_charset(), "utf8mb4");
        assert_eq!(o.get_collation(), Some("utf8mb4_unicode_ci"));
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
        assert!(d.notes[0].starts_with("readTimeout=30s"));
    }

    #[test]
    fn tls_values_map_to_ssl_modes() {
        let mode = |v: &str| {
            parse(&format!("u@tcp(h:1)/d?tls={v}"))
                .options
                .get_ssl_mode()
        };
        assert!(matches!(mode("true"), MySqlSslMode::VerifyIdentity));
        assert!(matches!(mode("skip-verify"), MySqlSslMode::Required));
        assert!(matches!(mode("preferred"), MySqlSslMode::Preferred));
        assert!(matches!(mode("false"), MySqlSslMode::Disabled));
        let e = error("u@tcp(h:1)/d?tls=custom-ca");
        assert!(
            e.contains("tls 'custom-ca'") && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
    }

    #[test]
    fn passwords_are_taken_literally() {
        // The last '@' before the last '/' ends the credentials; the first ':' starts the password.
        let d = parse("u:p@ss:w%41rd/x@tcp(h:1)/d");
        assert_eq!(d.options.get_username(), "u");
        let url = sqlx::ConnectOptions::to_url_lossy(&d.options);
        // sqlx percent-encodes it in its URL; decoded, it is the literal text.
        let password = url.password().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
        assert_eq!(decoded, "p@ss:w%41rd/x");
        assert_eq!(d.options.get_database(), Some("d"));
    }

    #[test]
    fn addresses() {
        let at = |dsn: &str| {
            let d = parse(dsn);
            (d.options.get_host().to_owned(), d.options.get_port())
        };
        assert_eq!(at("u@/d"), ("127.0.0.1".to_owned(), 3306));
        assert_eq!(at("u@tcp/d"), ("127.0.0.1".to_owned(), 3306));
        assert_eq!(at("/d"), ("127.0.0.1".to_owned(), 3306));
        assert_eq!(at("u@tcp(db)/d"), ("db".to_owned(), 3306));
        assert_eq!(at("u@tcp([::1]:3307)/d"), ("::1".to_owned(), 3307));
        assert_eq!(at("u@tcp([fe80::1])/d"), ("fe80::1".to_owned(), 3306));
        let d = parse("u@unix(/run/mysqld/mysqld.sock)/d");
        assert_eq!(
            d.options.get_socket().map(|p| p.display().to_string()),
            Some("/run/mysqld/mysqld.sock".to_owned())
        );
        assert!(error("u@tcp(h:port)/d").contains("port 'port'"));
        assert!(error("u@tcp(h:1/d").contains("closing parenthesis"));
        assert!(error("u@udp(h:1)/d").contains("network 'udp'"));
        assert!(error("u@unix()/d").contains("socket path"));
        assert!(error("nodb").contains("missing '/'"));
    }

    #[test]
    fn values_are_percent_decoded() {
        let d = parse("u@tcp(h:1)/my%2Ddb?collation=utf8mb4%5Fbin");
        assert_eq!(d.options.get_database(), Some("my-db"));
        assert_eq!(d.options.get_collation(), Some("utf8mb4_bin"));
        assert!(error("u@tcp(h:1)/d?charset=%zz").contains("broken %-escape"));
    }

    #[test]
    fn sql_mode_is_a_session_setting_in_both_forms() {
        const MYSQL8: &str = "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
                              ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";
        let go = parse(&format!("u@tcp(h:1)/d?sql_mode=%27{MYSQL8}%27"));
        assert_eq!(go.sql_mode.as_deref(), Some(MYSQL8));
        assert_eq!(
            parse("u@tcp(h:1)/d?sql_mode=ANSI").sql_mode.as_deref(),
            Some("ANSI")
        );
        let url = parse(&format!(
            "mysql://root@h:1/d?sql_mode={MYSQL8}&ssl-mode=disabled"
        ));
        assert_eq!(url.sql_mode.as_deref(), Some(MYSQL8));
        assert_eq!(
            parse("u@tcp(h:1)/d?sql_mode=").sql_mode.as_deref(),
            Some("")
        );
        assert_eq!(parse("u@tcp(h:1)/d").sql_mode, None);
        for bad in ["ansi", "A;DROP", "A,,B", "'A"] {
            let e = error(&format!("u@tcp(h:1)/d?sql_mode={bad}"));
            assert!(e.contains("is not a comma-separated list"), "{bad}: {e}");
        }
        assert!(error("mysql://h/d?sql_mode=x%20y").contains("sql_mode"));
    }

    #[test]
    fn unknown_and_bad_parameters_are_named() {
        let e = error("u@tcp(h:1)/d?autocommit=0");
        assert!(e.contains("unknown parameter 'autocommit'"), "{e}");
        assert!(e.starts_with("invalid database_dsn"), "{e}");
        assert!(error("u@tcp(h:1)/d?timeout=soon").contains("timeout 'soon'"));
        assert!(error("u@tcp(h:1)/d?timeout=0").contains("timeout '0'"));
        assert!(error("u@tcp(h:1)/d?parseTime=yes").contains("parseTime 'yes'"));
        assert!(error("u@tcp(h:1)/d?loc=Asia%2FSeoul").contains("loc 'Asia/Seoul'"));
        assert!(error("u@tcp(h:1)/d?tls").contains("no '=value'"));
        assert!(error("u@tcp(h:1)/d?charset=").contains("charset is empty"));
        // Accepted Go-only switches and an empty pair.
        parse("u@tcp(h:1)/d?interpolateParams=true&&checkConnLiveness=false&loc=Local");
        let d = parse("u@tcp(h:1)/d?allowCleartextPasswords=true&tls=skip-verify");
        assert!(matches!(d.options.get_ssl_mode(), MySqlSslMode::Required));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration("5x"), None);
        assert_eq!(go_duration(""), Some(Duration::ZERO));
        assert_eq!(go_duration("-1s"), None);
    }

    #[test]
    fn mysql_urls_keep_sqlx_parameters_and_refuse_others() {
        let d = parse("mysql://root:pw@db:3308/app?ssl-mode=REQUIRED&charset=utf8mb4");
        assert_eq!((d.options.get_host(), d.options.get_port()), ("db", 3308));
        assert!(matches!(d.options.get_ssl_mode(), MySqlSslMode::Required));
        let d = parse("mariadb://root@db/app");
        assert_eq!(d.options.get_database(), Some("app"));
        let e = error("mysql://root@db/app?tls=true");
        assert!(e.contains("unknown parameter 'tls'"), "{e}");
    }

    #[test]
    fn debug_and_describe_hide_the_password() {
        for dsn in [
            "admin:Hunter2-secret@tcp(db:3306)/app?tls=true",
            "mysql://admin:Hunter2-secret@db:3306/app",
        ] {
            let d = parse(dsn);
            let shown = format!("{d:?} {}", d.describe());
            assert!(!shown.contains("Hunter2"), "{shown}");
            assert!(shown.contains("admin@db:3306/app"), "{shown}");
        }
    }
}
