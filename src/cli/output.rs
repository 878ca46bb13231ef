//! What the command line prints: the original client's tables (`table`, the default),
//! kubectl's `-o yaml|json|name|wide`, and writing them to standard output (a write error
//! is a failure; a closed pipe, as with `| head`, is not).

use crate::error::{Error, ErrorKind, Result};
use clap::ValueEnum;
use serde_json::{json, Value};

/// Output of the cluster commands (`up`, `status`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The original client's table.
    Table,
    /// The table with more columns (every service, user, app).
    Wide,
    /// The GUIDs only, one a line (what `tycho down` takes).
    Name,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Output of `tycho render` and `up --dry-run`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The objects as a YAML stream (for `kubectl apply -f -`).
    Yaml,
    /// A `v1` `List` of the objects.
    Json,
    /// `kind.group/name` of each object, as `kubectl -o name` prints them.
    Name,
}

/// Writes to stdout. A closed pipe (`| head`) is not an error; any other write error is
/// (`/dev/full`, a full disk).
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(
            ErrorKind::Config,
            format!("cannot write the output: {e}"),
        )),
    }
}

/// Python's `str()` of a JSON value as the original prints table cells.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => crate::text::pyfmt::py_str(other),
    }
}

/// A table with the original's minimum column widths; a column grows to fit its longest
/// cell (plus two spaces), so nothing is cut. A last column without a minimum width is
/// not padded.
pub fn table(header: &[&str], min_widths: &[usize], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let longest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0);
            min_widths.get(i).copied().unwrap_or(0).max(longest + 2)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if i == last && min_widths.get(i).is_none() {
                out.push_str(c);
            } else {
                let w = widths[i];
                out.push_str(&format!("{c:<w$}"));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `value` as pretty JSON or YAML.
pub fn formatted(value: &Value, json: bool) -> String {
    if json {
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
    } else {
        crate::text::yaml::dump(value)
    }
}

/// `kind.group/name` of a Kubernetes object (`deployment.apps/x`, `service/x`).
pub fn object_name(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.rsplit_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

/// Kubernetes objects in `format`.
pub fn objects(objects: &[Value], format: Format) -> String {
    match format {
        Format::Yaml => crate::text::yaml::dump_all(objects),
        Format::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
        }
        Format::Name => objects.iter().map(|o| object_name(o) + "\n").collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_grow_to_fit() {
        let long = "x".repeat(40);
        let out = table(
            &["A", "B"],
            &[5],
            &[vec![long.clone(), "1".into()], vec!["y".into(), "2".into()]],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("{:<42} B", "A"));
        assert_eq!(lines[1], format!("{long}   1"));
        assert_eq!(
            table(&["A", "B"], &[5, 5], &[]),
            format!("{:<5} {:<5}\n", "A", "B")
        );
    }

    #[test]
    fn names_like_kubectl() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert_eq!(
            objects(&[d, s], Format::Name),
            "deployment.apps/d\nservice/s\n"
        );
    }
}
