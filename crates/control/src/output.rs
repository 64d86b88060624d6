//! What a command prints: an [`Output`] carries both the JSON value (for `--json`) and the human
//! rendering, so every command decides its table once and the caller picks the form. Also the
//! small aligned-table formatter, written here to avoid a dependency for a few columns.

use serde_json::Value;

/// The result of a successful command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Machine form, printed pretty with `--json`.
    pub json: Value,
    /// Human form (ends with a newline unless empty).
    pub human: String,
}

impl Output {
    /// The text to print for the chosen form.
    pub fn render(&self, json: bool) -> String {
        if json {
            let mut s = serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "null".into());
            s.push('\n');
            s
        } else {
            self.human.clone()
        }
    }
}

/// An aligned, left-justified text table with a header row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are blank, extra cells are kept).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Table {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table, columns separated by two spaces, no trailing blanks.
    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut width = vec![0usize; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in width.iter().enumerate() {
                let cell = r.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()),
                ));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A two-column `FIELD  VALUE` table of a JSON object's scalar fields (nested values as compact
/// JSON), in the object's own field order.
pub fn record(value: &Value) -> String {
    let Some(obj) = value.as_object() else {
        return format!("{}\n", cell(value));
    };
    let mut t = Table::new(["FIELD", "VALUE"]);
    for (k, v) in obj {
        t.row([k.clone(), cell(v)]);
    }
    t.render()
}

/// A table of the given fields of each object in a JSON array, plus a row count line.
pub fn records(value: &Value, fields: &[&str]) -> String {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut t = Table::new(fields.iter().map(|f| f.to_uppercase()));
    for item in items {
        t.row(
            fields
                .iter()
                .map(|f| cell(item.get(*f).unwrap_or(&Value::Null))),
        );
    }
    let mut out = t.render();
    out.push_str(&format!("({} rows)\n", t.len()));
    out
}

/// One JSON value as a table cell: strings bare, `null` as `-`, the rest compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(["A", "LONGER"]);
        t.row(["xxxx", "y"]).row(["z", ""]);
        assert_eq!(t.render(), "A     LONGER\nxxxx  y\nz\n");
    }

    #[test]
    fn record_and_records() {
        let v = json!({"id": "1", "n": 3, "s": null, "o": {"a": 1}});
        assert_eq!(
            record(&v),
            "FIELD  VALUE\nid     1\nn      3\ns      -\no      {\"a\":1}\n"
        );
        let list = json!([{"id": "a", "name": "x"}, {"id": "bb"}]);
        assert_eq!(
            records(&list, &["id", "name"]),
            "ID  NAME\na   x\nbb  -\n(2 rows)\n"
        );
        let o = Output {
            json: json!({"a": 1}),
            human: "h\n".into(),
        };
        assert_eq!(o.render(true), "{\n  \"a\": 1\n}\n");
        assert_eq!(o.render(false), "h\n");
    }
}
