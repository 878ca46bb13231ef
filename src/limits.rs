//! Bounds on hostile input, in one place: nesting depth of every value tree, the YAML
//! alias expansion budget, the template budgets (instructions, output, memory) and how
//! much of a value an error message or log line may echo.
//!
//! The template budgets are configurable with one environment variable each, read once
//! per process by `crate::environment::templates` (the table of variables is there).

use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// Deepest nesting of mappings and sequences accepted anywhere (YAML, JSON, values
/// crossing from Python, YAML written out). Real specs nest fewer than 20 levels.
pub const MAX_DEPTH: usize = 128;

/// Stack size of the threads tycho starts that run Python code or the compiler.
pub const THREAD_STACK: usize = 16 << 20;

/// Stack a request's template work needs left; less and it moves to a new segment.
pub const STACK_RED_ZONE: usize = 32 << 20;

/// Size of the stack segment a request moves to (reserved, used pages only).
pub const STACK_GROWTH: usize = 256 << 20;

/// Most characters of a value echoed in an error message or a log line.
pub const ECHO_LIMIT: usize = 200;

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

/// `text` cut to [`ECHO_LIMIT`] characters, saying how long it was when cut.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => text.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} characters in all)",
            &text[..cut],
            text.chars().count()
        ),
    }
}

/// Longest error message kept whole.
pub const MESSAGE_LIMIT: usize = 1000;

/// `message` whole when short, else its first and last parts around a note of the cut.
pub fn cut_message(message: String) -> String {
    let n = message.chars().count();
    if n <= MESSAGE_LIMIT {
        return message;
    }
    let head: String = message.chars().take(ECHO_LIMIT * 2).collect();
    let tail: String = message.chars().skip(n - ECHO_LIMIT).collect();
    format!("{head}… ({} characters cut) …{tail}", n - ECHO_LIMIT * 3)
}

/// A value as JSON text, cut to [`ECHO_LIMIT`] characters.
pub fn echo_value(v: &Value) -> String {
    match v {
        Value::String(s) => echo(&serde_json::to_string(s).unwrap_or_default()),
        other => echo(&other.to_string()),
    }
}

/// Refuses a value nested deeper than [`MAX_DEPTH`] (walked without recursion).
pub fn check_depth(v: &Value, what: &str) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((node, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match node {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return Err(depth_error(what));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
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
