//! SQL that MySQL 8.0 refuses, found before it reaches one: there is no MySQL 8.0 server here
//! (the platform runs Cloud SQL MySQL 8.0; these machines run MariaDB), so every statement of
//! `migrations/` and every SQL string literal of the Rust sources that run SQL (`src/`,
//! `workers/src/`, `crates/*/src/`, `tools/*/src/`) is checked against the MariaDB-only forms
//! named in [`FORMS`]. A second guard runs elsewhere: every test session uses MySQL 8.0's
//! default `sql_mode` (`support::MYSQL8_SQL_MODE`).
//!
//! Also checked on a migrated database: every index fits InnoDB's 3072-byte key limit with
//! 4 bytes a character (so it fits utf8mb3, the platform's charset, and utf8mb4 alike), and no
//! migration names a charset or collation of its own.

use crate::support;

use std::path::{Path, PathBuf};

use support::TestDb;

/// A MariaDB-only form: its name and a test on upper-cased, whitespace-collapsed SQL.
struct Form {
    name: &'static str,
    found: fn(&str) -> bool,
}

fn has(sql: &str, words: &str) -> bool {
    sql.contains(words)
}

/// `WORD(` as a function call (not part of a longer name).
fn calls(sql: &str, function: &str) -> bool {
    let needle = format!("{function}(");
    sql.match_indices(&needle).any(|(i, _)| {
        i == 0
            || !sql[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn word(sql: &str, w: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|t| t == w)
}

/// MariaDB functions MySQL 8.0 does not have.
const MARIADB_FUNCTIONS: &[&str] = &[
    "JSON_DETAILED",
    "JSON_COMPACT",
    "JSON_LOOSE",
    "JSON_EXISTS",
    "JSON_QUERY",
    "JSON_EQUALS",
    "JSON_NORMALIZE",
    "JSON_ARRAY_INTERSECT",
    "JSON_OBJECT_FILTER_KEYS",
    "JSON_OBJECT_TO_ARRAY",
    "JSON_KEY_VALUE",
    "COLUMN_CREATE",
    "COLUMN_GET",
    "COLUMN_ADD",
    "COLUMN_DELETE",
    "COLUMN_EXISTS",
    "COLUMN_LIST",
    "COLUMN_JSON",
    "COLUMN_CHECK",
    "NEXTVAL",
    "LASTVAL",
    "SETVAL",
    "SFORMAT",
    "NATURAL_SORT_KEY",
    "SYS_GUID",
    "ADD_MONTHS",
    "TO_CHAR",
    "DECODE_ORACLE",
    "CHR",
    "NVL",
    "NVL2",
    "KDF",
    "MEDIAN",
    "PERCENTILE_CONT",
    "PERCENTILE_DISC",
    "ROWNUM",
    "UUID_V4",
    "UUID_V7",
    "VEC_FROMTEXT",
];

const FORMS: &[Form] = &[
    Form {
        name: "CREATE [UNIQUE] INDEX IF NOT EXISTS",
        found: |s| has(s, "INDEX IF NOT EXISTS"),
    },
    Form {
        name: "ADD COLUMN/INDEX/KEY/CONSTRAINT/PARTITION IF NOT EXISTS",
        found: |s| {
            [
                "COLUMN",
                "INDEX",
                "KEY",
                "CONSTRAINT",
                "PARTITION",
                "FOREIGN KEY",
            ]
            .iter()
            .any(|w| has(s, &format!("ADD {w} IF NOT EXISTS")))
                || has(s, "ADD IF NOT EXISTS")
        },
    },
    Form {
        name: "DROP INDEX/KEY/COLUMN/CONSTRAINT/FOREIGN KEY/PARTITION IF EXISTS",
        found: |s| {
            [
                "INDEX",
                "KEY",
                "COLUMN",
                "CONSTRAINT",
                "FOREIGN KEY",
                "PARTITION",
            ]
            .iter()
            .any(|w| has(s, &format!("DROP {w} IF EXISTS")))
        },
    },
    Form {
        name: "CHANGE/MODIFY/RENAME ... IF EXISTS",
        found: |s| {
            [
                "CHANGE",
                "CHANGE COLUMN",
                "MODIFY",
                "MODIFY COLUMN",
                "RENAME COLUMN",
                "RENAME INDEX",
                "RENAME KEY",
            ]
            .iter()
            .any(|w| has(s, &format!("{w} IF EXISTS")))
        },
    },
    Form {
        name: "CREATE OR REPLACE",
        found: |s| has(s, "CREATE OR REPLACE"),
    },
    Form {
        name: "RETURNING",
        found: |s| word(s, "RETURNING"),
    },
    Form {
        name: "sequences (CREATE SEQUENCE, NEXT VALUE FOR, PREVIOUS VALUE FOR)",
        found: |s| {
            has(s, "CREATE SEQUENCE") || has(s, "NEXT VALUE FOR") || has(s, "PREVIOUS VALUE FOR")
        },
    },
    Form {
        name: "MariaDB-only function",
        found: |s| MARIADB_FUNCTIONS.iter().any(|f| calls(s, f)),
    },
    Form {
        name: "LIMIT ... ROWS EXAMINED",
        found: |s| has(s, "ROWS EXAMINED"),
    },
    Form {
        name: "FETCH FIRST/NEXT ... ROWS",
        found: |s| has(s, "FETCH FIRST") || has(s, "FETCH NEXT"),
    },
    Form {
        name: "lock WAIT n",
        found: |s| {
            s.split("WAIT ")
                .skip(1)
                .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        },
    },
    Form {
        name: "system-versioned tables",
        found: |s| has(s, "SYSTEM VERSIONING") || has(s, "FOR SYSTEM_TIME"),
    },
    Form {
        name: "ALGORITHM=NOCOPY / INSTANT-only MariaDB options",
        found: |s| has(s, "ALGORITHM=NOCOPY") || has(s, "ALGORITHM = NOCOPY"),
    },
    Form {
        name: "MariaDB-only engines (Aria, ColumnStore, Sequence)",
        found: |s| {
            ["ARIA", "COLUMNSTORE", "SEQUENCE"]
                .iter()
                .any(|e| has(s, &format!("ENGINE={e}")) || has(s, &format!("ENGINE = {e}")))
        },
    },
];

/// The names of the forms `sql` uses.
fn mariadb_only(sql: &str) -> Vec<&'static str> {
    let normalized = sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    FORMS
        .iter()
        .filter(|f| (f.found)(&normalized))
        .map(|f| f.name)
        .collect()
}

/// The statements of a migration file: split on `;` outside quotes, `--` comments dropped.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for line in text.lines() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '\'' || c == '"' || c == '`' => quote = Some(c),
                None if c == '-' && chars.peek() == Some(&'-') => break,
                None if c == ';' => {
                    out.push(std::mem::take(&mut current));
                    continue;
                }
                None => {}
            }
            current.push(c);
        }
        current.push('\n');
    }
    out.push(current);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The string literals of a Rust source file (`"..."` and `r#"..."#`), each with its line.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') || bytes.get(i + 1) == Some(&b'\\') => {
                // A char literal such as '"' or '\"'.
                let end = text[i + 1..]
                    .find('\'')
                    .map_or(bytes.len(), |e| i + 1 + e + 1);
                i = end.max(i + 1);
                continue;
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'#') | Some(b'"'))
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) == Some(&b'"') {
                    let start = i + 2 + hashes;
                    let close = format!("\"{}", "#".repeat(hashes));
                    let end = text[start..].find(&close).map_or(text.len(), |e| start + e);
                    let body = &text[start..end];
                    out.push((line, body.to_owned()));
                    line += body.matches('\n').count();
                    i = end + close.len();
                    continue;
                }
            }
            b'"' => {
                let mut j = i + 1;
                let mut body = String::new();
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    if let Some(&b) = bytes.get(j) {
                        body.push(b as char);
                    }
                    j += 1;
                }
                out.push((line, body.clone()));
                line += body.matches('\n').count();
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether a literal is (part of) SQL: it holds an upper-case SQL keyword as a word. The
/// project writes SQL keywords in upper case and prose in lower case.
fn looks_like_sql(literal: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "ALTER",
        "DROP",
        "WHERE",
        "FROM",
        "VALUES",
        "SET",
        "AND",
        "LIMIT",
        "ORDER",
        "RETURNING",
        "REPLACE",
        "JOIN",
    ];
    literal
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| KEYWORDS.contains(&w))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Every Rust source of the code that runs SQL (tests excluded: they hold the forms on purpose).
fn rust_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let r = root();
    for dir in [r.join("src"), r.join("workers/src")] {
        files_under(&dir, "rs", &mut files);
    }
    for parent in ["crates", "tools"] {
        if let Ok(entries) = std::fs::read_dir(r.join(parent)) {
            for e in entries.flatten() {
                files_under(&e.path().join("src"), "rs", &mut files);
            }
        }
    }
    files
}

fn migration_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&root().join("migrations"), "sql", &mut files);
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_named_form_is_caught() {
    for (sql, form) in [
        (
            "CREATE INDEX IF NOT EXISTS i ON t(c)",
            "CREATE [UNIQUE] INDEX IF NOT EXISTS",
        ),
        (
            "create unique index if not exists i on t(c)",
            "CREATE [UNIQUE] INDEX IF NOT EXISTS",
        ),
        (
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c INT",
            "ADD COLUMN/INDEX/KEY/CONSTRAINT/PARTITION IF NOT EXISTS",
        ),
        (
            "ALTER TABLE t ADD INDEX IF NOT EXISTS i (c)",
            "ADD COLUMN/INDEX/KEY/CONSTRAINT/PARTITION IF NOT EXISTS",
        ),
        (
            "DROP INDEX IF EXISTS i ON t",
            "DROP INDEX/KEY/COLUMN/CONSTRAINT/FOREIGN KEY/PARTITION IF EXISTS",
        ),
        (
            "ALTER TABLE t DROP COLUMN IF EXISTS c",
            "DROP INDEX/KEY/COLUMN/CONSTRAINT/FOREIGN KEY/PARTITION IF EXISTS",
        ),
        (
            "ALTER TABLE t MODIFY IF EXISTS c INT",
            "CHANGE/MODIFY/RENAME ... IF EXISTS",
        ),
        ("CREATE OR REPLACE TABLE t (c INT)", "CREATE OR REPLACE"),
        ("DELETE FROM t WHERE id = ? RETURNING id", "RETURNING"),
        ("INSERT INTO t (c) VALUES (1)\n  RETURNING c", "RETURNING"),
        (
            "SELECT NEXT VALUE FOR s",
            "sequences (CREATE SEQUENCE, NEXT VALUE FOR, PREVIOUS VALUE FOR)",
        ),
        ("SELECT JSON_DETAILED(j) FROM t", "MariaDB-only function"),
        ("SELECT nvl(a, b) FROM t", "MariaDB-only function"),
        (
            "SELECT * FROM t LIMIT 10 ROWS EXAMINED 100",
            "LIMIT ... ROWS EXAMINED",
        ),
        (
            "SELECT * FROM t FETCH FIRST 1 ROWS ONLY",
            "FETCH FIRST/NEXT ... ROWS",
        ),
        ("SELECT * FROM t FOR UPDATE WAIT 5", "lock WAIT n"),
        (
            "CREATE TABLE t (c INT) WITH SYSTEM VERSIONING",
            "system-versioned tables",
        ),
        (
            "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=NOCOPY",
            "ALGORITHM=NOCOPY / INSTANT-only MariaDB options",
        ),
        (
            "CREATE TABLE t (c INT) ENGINE=Aria",
            "MariaDB-only engines (Aria, ColumnStore, Sequence)",
        ),
    ] {
        assert!(
            mariadb_only(sql).contains(&form),
            "{sql:?} not caught as {form}"
        );
    }
    // What both servers run is not flagged.
    for sql in [
        "CREATE TABLE IF NOT EXISTS t (c INT)",
        "DROP TABLE IF EXISTS t",
        "SELECT GREATEST(a, b), JSON_EXTRACT(j, '$.a'), CHAR_LENGTH(x), NOW(6) FROM t FOR UPDATE NOWAIT",
        "SELECT channel FROM t WHERE returning_soon = 1",
        "PREPARE ddl FROM @ddl; EXECUTE ddl",
    ] {
        assert!(
            mariadb_only(sql).is_empty(),
            "{sql:?}: {:?}",
            mariadb_only(sql)
        );
    }
    assert_eq!(statements("A 'x;y' ; -- c;d\nB;\n\n"), ["A 'x;y' ", " \nB"]);
    let lits =
        string_literals("let a = \"SELECT 1\";\n// \"no\"\nlet b = r#\"x \"q\" y\"#; c('\"');");
    assert_eq!(
        lits,
        [(1, "SELECT 1".to_owned()), (3, "x \"q\" y".to_owned())]
    );
}

#[test]
fn no_migration_uses_a_mariadb_only_form_or_names_a_charset() {
    let files = migration_files();
    assert!(files.len() >= 7, "{files:?}");
    let mut found = Vec::new();
    for path in &files {
        for stmt in statements(&read(path)) {
            let mut forms = mariadb_only(&stmt);
            let upper = stmt.to_uppercase();
            if ["CHARACTER SET", "CHARSET", "COLLATE"]
                .iter()
                .any(|w| upper.contains(w))
            {
                forms.push("a charset or collation of its own");
            }
            for form in forms {
                found.push(format!("{}: {form}: {}", path.display(), stmt.trim()));
            }
        }
    }
    assert!(found.is_empty(), "MySQL 8.0 refuses:\n{}", found.join("\n"));
}

#[test]
fn no_sql_in_the_sources_uses_a_mariadb_only_form() {
    let files = rust_sources();
    assert!(
        files.iter().any(|f| f.ends_with("src/store/table.rs")),
        "sources found"
    );
    let mut found = Vec::new();
    let mut sql_literals = 0;
    for path in &files {
        for (line, literal) in string_literals(&read(path)) {
            if !looks_like_sql(&literal) {
                continue;
            }
            sql_literals += 1;
            for form in mariadb_only(&literal) {
                found.push(format!("{}:{line}: {form}: {literal}", path.display()));
            }
        }
    }
    assert!(
        sql_literals > 50,
        "only {sql_literals} SQL literals found: the scan is blind"
    );
    assert!(found.is_empty(), "MySQL 8.0 refuses:\n{}", found.join("\n"));
}

/// `(table, index, column type, characters, prefix length)` of one indexed column.
type IndexColumn = (String, String, String, Option<i64>, Option<i64>);

#[tokio::test]
async fn every_index_fits_the_key_limit_in_any_utf8() {
    let db = TestDb::migrated().await;
    // Bytes per indexed column, with 4 bytes a character; TEXT/JSON/BLOB cannot be indexed
    // whole, so a prefix length is required (sub_part).
    let rows: Vec<IndexColumn> = sqlx::query_as(
        "SELECT CAST(s.table_name AS CHAR), CAST(s.index_name AS CHAR), CAST(c.data_type AS CHAR), \
                CAST(c.character_maximum_length AS SIGNED), CAST(s.sub_part AS SIGNED) \
         FROM information_schema.statistics s \
         JOIN information_schema.columns c ON c.table_schema = s.table_schema \
              AND c.table_name = s.table_name AND c.column_name = s.column_name \
         WHERE s.table_schema = DATABASE()",
    )
    .fetch_all(&db.pool)
    .await
    .expect("index columns");
    let mut total = std::collections::BTreeMap::<(String, String), i64>::new();
    for (table, index, kind, chars, prefix) in rows {
        let bytes = match kind.as_str() {
            "varchar" | "char" => 4 * prefix.or(chars).unwrap_or(0) + 2,
            "binary" | "varbinary" => chars.unwrap_or(0),
            "datetime" | "bigint" => 8,
            "int" | "integer" => 4,
            "tinyint" => 1,
            other => {
                assert!(
                    prefix.is_some(),
                    "{table}.{index}: {other} indexed without a prefix"
                );
                4 * prefix.unwrap_or(0)
            }
        };
        *total.entry((table, index)).or_default() += bytes;
    }
    assert!(total.len() >= 19, "{total:?}");
    for ((table, index), bytes) in total {
        assert!(bytes <= 3072, "{table}.{index}: {bytes} bytes > 3072");
    }
}
