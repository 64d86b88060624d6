//! What a command prints: an [`Output`] carries both the JSON value (for `--json`) and the human
//! rendering, so every command decides its table once and the caller picks the form. Tables are
//! laid out by comfy-table, which measures cells in terminal columns (a Korean syllable takes
//! two), so names in any script line up; [`Table`] keeps the CLI's plain borderless look.

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
    /// Nothing to print (the command printed as it went).
    pub fn empty() -> Output {
        Output {
            json: Value::Null,
            human: String::new(),
        }
    }

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

    /// Renders the table: no borders, columns separated by two spaces and as wide as their
    /// widest cell on screen, no trailing blanks.
    pub fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
            .set_header(self.header.clone());
        for r in &self.rows {
            t.add_row(r.clone());
        }
        let last = t.column_count().saturating_sub(1);
        for (i, c) in t.column_iter_mut().enumerate() {
            c.set_padding((0, if i == last { 0 } else { 2 }));
        }
        let mut out = String::new();
        for line in t.lines() {
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
    fn wide_characters_take_two_columns() {
        let mut t = Table::new(["NAME", "STATUS"]);
        t.row(["서울 캠페인", "run"]).row(["ab", "stop"]);
        // "서울 캠페인" is 5 wide characters and a space: 11 columns on screen.
        assert_eq!(
            t.render(),
            "NAME         STATUS\n서울 캠페인  run\nab           stop\n"
        );
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
