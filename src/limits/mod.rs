//! Bounds on hostile input, in one place: nesting depth of every value tree, the YAML
//! alias expansion budget, the template budgets (instructions, output, memory) and how
//! much of a value an error message or log line may echo.
//!
//! The template budgets are configurable with one environment variable each, read once
//! per process by `crate::environment::templates` (the table of variables is there).
//!
//! [`http`] holds the limits of the `tycho api` server (timeouts, connections, workers,
//! starts, the memory budget), with their flags.

pub mod http;

pub use crate::error::{cut_message, echo, ECHO_LIMIT, MESSAGE_LIMIT};
use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// Deepest nesting of mappings and sequences accepted anywhere (YAML, JSON, values
/// crossing from Python, YAML written out). Real specs nest fewer than 20 levels.
pub const MAX_DEPTH: usize = 128;

/// Stack size of the threads tycho starts that run Python code or the compiler.
pub const THREAD_STACK: usize = 16 << 20;

/// Stack the evaluation of a template that may build values nested without bound (one
/// with statements: a loop can wrap a value in itself as often as its fuel allows, and
/// dropping or printing such a value recurses) needs left, and the compilation of a
/// template text not seen before; less and it moves to a new segment.
pub const STACK_RED_ZONE: usize = 32 << 20;

/// Stack the rest of a request needs left (less and it moves to a new segment): the
/// model, reading YAML, the built-in templates (their values nest no deeper than their
/// input, itself at most [`MAX_DEPTH`] levels) and template texts without statements of
/// at most [`FLAT_TEMPLATE_LEN`] bytes (each expression runs once, so a value nests no
/// deeper than the input plus a few hundred levels). Less than the 8 MiB of Python's
/// main thread or the [`THREAD_STACK`] of tycho's threads, so a request there stays on
/// its thread's stack.
pub const STACK_BASE_RED_ZONE: usize = 4 << 20;

/// Longest template text without statements that is evaluated within
/// [`STACK_BASE_RED_ZONE`]; a longer one gets [`STACK_RED_ZONE`].
pub const FLAT_TEMPLATE_LEN: usize = 4096;

/// Size of the stack segment a request moves to (reserved, used pages only).
pub const STACK_GROWTH: usize = 256 << 20;

/// YAML aliases may copy at most this many nodes per byte of input (plus
/// [`ALIAS_BASE_NODES`]) before the document is refused.
pub const ALIAS_NODES_PER_BYTE: usize = 2;

/// Nodes aliases may always copy, whatever the input's size.
pub const ALIAS_BASE_NODES: usize = 10_000;

pub use crate::environment::templates::TemplateBudgets;

/// The template budgets of this process (environment read on first use, by
/// [`TemplateBudgets::from_env`]).
pub fn template_budgets() -> &'static TemplateBudgets {
    static B: OnceLock<TemplateBudgets> = OnceLock::new();
    B.get_or_init(TemplateBudgets::from_env)
}

/// How many nodes YAML aliases may copy in a document of `input_len` bytes.
pub fn alias_budget(input_len: usize) -> usize {
    ALIAS_BASE_NODES.saturating_add(input_len.saturating_mul(ALIAS_NODES_PER_BYTE))
}

/// A value as JSON text, cut to [`ECHO_LIMIT`] characters.
pub fn echo_value(v: &Value) -> String {
    match v {
        Value::String(s) => echo(&serde_json::to_string(s).unwrap_or_default()),
        other => echo(&other.to_string()),
    }
}

/// `bytes` for a message: `512 B`, `16.0 KiB`, `1.5 MiB`, `2.0 GiB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size in bytes from `text`: a whole number, optionally followed by a unit `K`, `M`,
/// `G` (powers of 1024; `Ki`, `KiB`, `KB` and lowercase the same), `_` separators
/// allowed. None when it is not one, or is 0.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" if unit.is_empty() || unit == "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift).filter(|n| *n > 0)
}

/// Reads `reader` to its end as UTF-8 text, refusing it once it passes `limit` bytes
/// (reading at most one byte more). `what` names the input in errors; `hint` follows the
/// size error (how to raise the limit).
pub fn read_text_limited(
    reader: impl std::io::Read,
    limit: u64,
    what: &str,
    hint: &str,
) -> Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::input(format!("cannot read {what}: {e}")).caused_by(e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(what, limit, hint));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::input(format!(
            "cannot read {what}: it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reads the file at `path` as UTF-8 text, refusing a file larger than `limit` bytes
/// before reading it (see [`read_text_limited`]).
pub fn read_file_limited(
    path: &std::path::Path,
    limit: u64,
    what: &str,
    hint: &str,
) -> std::io::Result<Result<String>> {
    let file = std::fs::File::open(path)?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Ok(Err(too_big(what, limit, hint)));
    }
    Ok(read_text_limited(file, limit, what, hint))
}

fn too_big(what: &str, limit: u64, hint: &str) -> Error {
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    };
    Error::input(format!("{what} is larger than {}{hint}", size_text(limit)))
}

/// Refuses a value nested deeper than [`MAX_DEPTH`] (walked without recursion).
pub fn check_depth(v: &Value, what: &str) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((node, depth)) = stack.pop() {
        if !matches!(node, Value::Array(_) | Value::Object(_)) {
            continue;
        }
        if depth > MAX_DEPTH {
            return Err(depth_error(what));
        }
        match node {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// The error for a value nested deeper than [`MAX_DEPTH`].
pub fn depth_error(what: &str) -> Error {
    Error::input(format!(
        "{what}: nested deeper than {MAX_DEPTH} levels of mappings and sequences"
    ))
}

/// Drops a value of any depth without recursing (serde_json's drop recurses).
pub fn drop_flat(v: Value) {
    let mut stack = vec![v];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_cuts_long_values() {
        assert_eq!(echo("short"), "short");
        let long = "x".repeat(100_000);
        let e = echo(&long);
        assert!(e.chars().count() < ECHO_LIMIT + 40, "{e}");
        assert!(e.contains("100000 characters"));
        assert!(echo_value(&json!(long)).chars().count() < ECHO_LIMIT + 40);
    }

    #[test]
    fn sizes_read_and_written() {
        assert_eq!(parse_size("512Mi"), Some(512 << 20));
        assert_eq!(parse_size(" 16 MiB "), Some(16 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("2KB"), Some(2048));
        assert_eq!(parse_size("1_000"), Some(1000));
        assert_eq!(parse_size("10b"), Some(10));
        for bad in [
            "",
            "0",
            "-1",
            "1.5M",
            "12 parsecs",
            "M",
            "99999999999999999999",
            "1iB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(size_text(100), "100 B");
        assert_eq!(size_text(16 << 20), "16.0 MiB");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(3 << 30), "3.0 GiB");
    }

    #[test]
    fn inputs_are_read_up_to_their_limit() {
        let text = read_text_limited(&b"0123456789"[..], 10, "x", "").unwrap();
        assert_eq!(text, "0123456789");
        let e = read_text_limited(&b"0123456789a"[..], 10, "the standard input", "raise it")
            .unwrap_err();
        assert_eq!(
            e.message,
            "the standard input is larger than 10 B; raise it"
        );
        let e = read_text_limited(&b"ab\xffc"[..], 10, "f", "").unwrap_err();
        assert!(
            e.message
                .contains("not UTF-8 text (invalid byte at offset 2)"),
            "{e}"
        );
        // An endless input is cut after the limit, not read to its end.
        let e = read_text_limited(std::io::repeat(b'x'), 1 << 20, "y", "").unwrap_err();
        assert!(e.message.contains("larger than 1.0 MiB"), "{e}");
        let dir = std::env::temp_dir().join(format!("tycho-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("big");
        std::fs::write(&file, vec![b'a'; 2048]).unwrap();
        let e = read_file_limited(&file, 1024, "big", "")
            .unwrap()
            .unwrap_err();
        assert!(e.message.contains("big is larger than 1.0 KiB"), "{e}");
        assert_eq!(
            read_file_limited(&file, 4096, "big", "")
                .unwrap()
                .unwrap()
                .len(),
            2048
        );
        assert!(read_file_limited(&dir.join("none"), 1, "none", "").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn depth_is_checked_without_recursion() {
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert!(check_depth(&v, "x").is_err());
        drop_flat(v);
        assert!(check_depth(&json!({"a": [[{"b": 1}]]}), "x").is_ok());
    }
}
