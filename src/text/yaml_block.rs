//! A fast reader for the plain block YAML tycho's templates write (pod.yaml and friends:
//! block mappings and sequences, one scalar a line, every interpolated value quoted by
//! the `q` filter or typed by `v`).
//!
//! It reads only a strict subset of YAML and gives up (`None`) on anything else: flow
//! collections other than `[]` and `{}`, anchors, aliases, tags, block scalars, comments,
//! multi-line scalars, directives, tabs, merge keys, complex keys, escapes it does not
//! know, and nesting deeper than [`crate::limits::MAX_DEPTH`]. The caller then reads the
//! text with the full YAML 1.1 reader ([`super::yaml::load_all`]), which also gives the
//! errors. What it accepts it reads exactly as that reader does (the same scalar
//! resolution, the same key rule, later duplicate keys replacing earlier ones in place);
//! the tests below compare the two on generated texts.

use super::yaml::{key_value, load_all, scalar_from};
use crate::error::Result;
use crate::limits::MAX_DEPTH;
use serde_json::{Map, Value};

/// The documents of `text` that are not null, as [`load_all`] reads them: through
/// [`load_non_null`] when the text is in the subset, else through [`load_all`].
pub fn read_non_null(text: &str) -> Result<Vec<Value>> {
    match load_non_null(text) {
        Some(docs) => Ok(docs),
        None => Ok(load_all(text)?
            .into_iter()
            .filter(|d| !d.is_null())
            .collect()),
    }
}

/// The non-null documents of `text`, or `None` when `text` is not in the subset.
pub fn load_non_null(text: &str) -> Option<Vec<Value>> {
    let bytes = text.as_bytes();
    let mut docs = Vec::new();
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(bytes.len() / 24);
    let mut ascii = true;
    let mut start = 0;
    // One pass: the lines, and no byte the subset leaves to the full reader (tabs,
    // carriage returns, other control characters).
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            take_line(&text[start..i], &mut lines, &mut docs)?;
            start = i + 1;
        } else if b < b' ' || b == 0x7f {
            return None;
        } else if b >= 0x80 {
            ascii = false;
        }
    }
    take_line(&text[start..], &mut lines, &mut docs)?;
    if !ascii && !printable(text) {
        return None;
    }
    flush(&mut lines, &mut docs)?;
    Some(docs)
}

/// Adds one line of the text: a document marker ends the document read so far, a blank
/// line is skipped, a directive or a marker with content is outside the subset.
fn take_line<'a>(raw: &'a str, lines: &mut Vec<Line<'a>>, docs: &mut Vec<Value>) -> Option<()> {
    let content = raw.trim_start_matches(' ');
    if content.is_empty() {
        return Some(());
    }
    let indent = raw.len() - content.len();
    if indent == 0 {
        if content.starts_with("---") || content.starts_with("...") {
            if content != "---" {
                return None;
            }
            return flush(lines, docs);
        }
        if content.starts_with('%') {
            return None;
        }
    }
    lines.push(Line {
        indent,
        text: content,
    });
    Some(())
}

/// Reads the lines of one document into `docs` (nothing for an empty or null document).
fn flush(lines: &mut Vec<Line<'_>>, docs: &mut Vec<Value>) -> Option<()> {
    if lines.is_empty() {
        return Some(());
    }
    let mut reader = Reader {
        lines: std::mem::take(lines),
        pos: 0,
    };
    let indent = reader.lines[0].indent;
    let value = reader.node(indent, 0)?;
    if reader.pos != reader.lines.len() {
        return None;
    }
    if !value.is_null() {
        docs.push(value);
    }
    Some(())
}

/// Every character of a text with non-ASCII characters is one the `q` filter writes
/// unescaped (printable, and none of the line breaks YAML 1.1 reads: NEL, LS, PS).
fn printable(text: &str) -> bool {
    text.chars().all(|c| match c {
        '\n' | ' '..='~' => true,
        '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}' => {
            c != '\u{2028}' && c != '\u{2029}'
        }
        '\u{10000}'.. => true,
        _ => false,
    })
}

/// Longest key read, as written (quotes and escapes included): YAML limits an implicit
/// key to 1024 characters; a longer one is left to the full reader.
const MAX_KEY: usize = 256;

/// One non-blank line: its indentation and the text after it.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

/// A line's start: a sequence item, a key (with the rest of the line after `:`), or a
/// lone scalar.
enum Start<'a> {
    Item,
    Key(String, &'a str),
    Scalar(Value),
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.pos).copied()
    }

    /// The node whose first line is the current one, at `indent`.
    fn node(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth >= MAX_DEPTH - 1 {
            return None;
        }
        let line = self.peek()?;
        if is_item(line.text) {
            return self.sequence(indent, depth);
        }
        match start_of(line.text)? {
            Start::Item => self.sequence(indent, depth),
            Start::Key(key, rest) => self.mapping(indent, depth, Some((key, rest))),
            Start::Scalar(v) => {
                self.pos += 1;
                // a following deeper line would continue the scalar
                match self.peek() {
                    Some(next) if next.indent > indent => None,
                    _ => Some(v),
                }
            }
        }
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            // (A line that is no item ends the sequence; what it is, its reader says.)
            if !is_item(line.text) {
                break;
            }
            let inner = line.text[1..].trim_start_matches(' ');
            if inner.is_empty() {
                self.pos += 1;
                items.push(self.nested(indent, depth, false)?);
                continue;
            }
            // the item's content read as a line of its own, at its column
            let column = indent + (line.text.len() - inner.len());
            self.lines[self.pos] = Line {
                indent: column,
                text: inner,
            };
            items.push(self.node(column, depth + 1)?);
        }
        Some(Value::Array(items))
    }

    /// The mapping whose first line is the current one (its key and value text already
    /// read: `first`), at `indent`.
    fn mapping(
        &mut self,
        indent: usize,
        depth: usize,
        mut first: Option<(String, &'a str)>,
    ) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (key, rest) = match first.take() {
                Some(read) => read,
                None => match start_of(line.text)? {
                    Start::Key(key, rest) => (key, rest),
                    _ => return None,
                },
            };
            self.pos += 1;
            let value = if rest.is_empty() {
                self.nested(indent, depth, true)?
            } else {
                let v = inline_scalar(rest)?;
                if matches!(self.peek(), Some(next) if next.indent > indent) {
                    return None;
                }
                v
            };
            map.insert(key, value);
        }
        Some(Value::Object(map))
    }

    /// The value of a key or item with nothing after it on its line: the deeper block
    /// that follows (for a key also a sequence at the key's own indentation), else null.
    fn nested(&mut self, indent: usize, depth: usize, of_key: bool) -> Option<Value> {
        match self.peek() {
            Some(next) if next.indent > indent => self.node(next.indent, depth + 1),
            Some(next) if of_key && next.indent == indent && is_item(next.text) => {
                self.sequence(indent, depth + 1)
            }
            _ => Some(Value::Null),
        }
    }
}

/// Whether a line is a sequence item (`-` alone or followed by a space).
fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// What a line starts with; `None` for anything outside the subset.
fn start_of(text: &str) -> Option<Start<'_>> {
    if is_item(text) {
        return Some(Start::Item);
    }
    let (scalar, rest) = match text.as_bytes()[0] {
        b'"' => double_quoted(text)?,
        b'\'' => single_quoted(text)?,
        _ => {
            return Some(match plain_key_split(text) {
                Some((key, rest)) => {
                    let key = plain(key)?;
                    if key.len() > MAX_KEY || key == "<<" {
                        return None;
                    }
                    Start::Key(
                        key_value(scalar_from(key.to_string(), true)),
                        value_text(rest),
                    )
                }
                None => Start::Scalar(inline_scalar(text)?),
            })
        }
    };
    let after = rest.trim_start_matches(' ');
    if after.is_empty() {
        return Some(Start::Scalar(Value::String(scalar)));
    }
    let value = after.strip_prefix(':')?;
    if !(value.is_empty() || value.starts_with(' ')) || text.len() - after.len() > MAX_KEY {
        return None;
    }
    Some(Start::Key(scalar, value_text(value)))
}

/// The text after a key's `:`, without the spaces around it.
fn value_text(rest: &str) -> &str {
    rest.trim_matches(' ')
}

/// A plain key line split at its first `: ` (or a final `:`).
fn plain_key_split(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let mut i = text.find(':')?;
    loop {
        if i + 1 == bytes.len() || bytes[i + 1] == b' ' {
            return Some((&text[..i], &text[i + 1..]));
        }
        i += 1 + text[i + 1..].find(':')?;
    }
}

/// A value written after `key: ` on one line: a quoted or plain scalar, `[]` or `{}`.
fn inline_scalar(text: &str) -> Option<Value> {
    match text.as_bytes()[0] {
        b'"' | b'\'' => {
            let (s, rest) = if text.starts_with('"') {
                double_quoted(text)?
            } else {
                single_quoted(text)?
            };
            rest.trim_start_matches(' ')
                .is_empty()
                .then_some(Value::String(s))
        }
        _ if text == "[]" => Some(Value::Array(Vec::new())),
        _ if text == "{}" => Some(Value::Object(Map::new())),
        _ => {
            let text = plain(text.trim_end_matches(' '))?;
            if text.ends_with(':') {
                return None;
            }
            Some(scalar_from(text.to_string(), true))
        }
    }
}

/// `text` when it is a one-line plain scalar of the subset: no indicator first, and
/// none of `:#[]{},'"` anywhere (no comment, no key, nothing a flow reader could split).
fn plain(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    let second = bytes.get(1).copied();
    if b"&*!|>%@`?-".contains(&first) && (first != b'-' || matches!(second, None | Some(b' ')))
        || bytes.iter().any(|b| {
            matches!(
                b,
                b':' | b'#' | b'[' | b']' | b'{' | b'}' | b',' | b'\'' | b'"'
            )
        })
        || text.ends_with(' ')
    {
        return None;
    }
    Some(text)
}

/// A double-quoted scalar at the start of `text` (on this line) and the text after it.
/// Only the escapes the `q` filter writes are read (`\"`, `\\`, `\n`, `\t`, `\r`,
/// `\xXX`, `\uXXXX`).
fn double_quoted(text: &str) -> Option<(String, &str)> {
    let body = &text[1..];
    let b = body.as_bytes();
    let mut out = String::new();
    let (mut seg, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'"' => {
                out.push_str(&body[seg..i]);
                return Some((out, &body[i + 1..]));
            }
            b'\\' => {
                out.push_str(&body[seg..i]);
                let (c, used) = escape(&b[i + 1..])?;
                out.push(c);
                i += 1 + used;
                seg = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// The character of the escape after a `\` and the bytes it used.
fn escape(b: &[u8]) -> Option<(char, usize)> {
    let hex = |n: usize| -> Option<(char, usize)> {
        let digits = b.get(1..=n)?;
        let mut v = 0u32;
        for d in digits {
            v = v * 16 + (*d as char).to_digit(16)?;
        }
        Some((char::from_u32(v)?, n + 1))
    };
    match b.first()? {
        b'"' => Some(('"', 1)),
        b'\\' => Some(('\\', 1)),
        b'n' => Some(('\n', 1)),
        b't' => Some(('\t', 1)),
        b'r' => Some(('\r', 1)),
        b'x' => hex(2),
        b'u' => hex(4),
        _ => None,
    }
}

/// A single-quoted scalar at the start of `text` (on this line) and the text after it.
fn single_quoted(text: &str) -> Option<(String, &str)> {
    let body = &text[1..];
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    loop {
        let i = rest.find('\'')?;
        out.push_str(&rest[..i]);
        if rest[i + 1..].starts_with('\'') {
            out.push('\'');
            rest = &rest[i + 2..];
        } else {
            return Some((out, &rest[i + 1..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> Option<Vec<Value>> {
        super::super::yaml::load_all(text)
            .ok()
            .map(|d| d.into_iter().filter(|v| !v.is_null()).collect())
    }

    #[test]
    fn reads_what_the_templates_write() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    \"a\": \"b\"\nspec:\n  containers:\n  - name: \"x\"\n    command:\n    - \"sh\"\n    - \"-c\"\n    ports:\n    - containerPort: 8080\n      protocol: TCP\n    env: []\n  n: 0600\n  y: yes\n  e:\n---\nkind: Service\n";
        let fast = load_non_null(text).expect("in the subset");
        assert_eq!(Some(fast), generic(text));
    }

    #[test]
    fn gives_up_outside_the_subset() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: |\n  x\n",
            "a: b\n  c\n",
            "a: [1, 2]\n",
            "a: 1 # c\n",
            "<<: {a: 1}\n",
            "a:\tb\n",
            "a: b: c\n",
            "- a\nb: c\n",
        ] {
            assert!(load_non_null(text).is_none(), "{text:?}");
        }
    }

    const KEYS: &[&str] = &[
        "a", "b", "k-1", "\"q k\"", "'s'", "1", "yes", "~", "x y", "<<", "a:b", "-a", "? c",
        "\"a\":b", "é", "1.5", "0x1F", "08",
    ];
    const VALUES: &[&str] = &[
        "",
        "1",
        "0600",
        "yes",
        "x",
        "\"a\\nb\\u00e9\"",
        "'it''s'",
        "[]",
        "{}",
        "- z",
        "1:30",
        "1e5",
        ".5",
        "a b",
        "a: b",
        "\"x\": 1",
        "-",
        "- ",
        "-1",
        "&a x",
        "*a",
        "!!str 1",
        "|",
        "#c",
        "a #c",
        "null",
        "\"unterminated",
        "'",
        "\"\\q\"",
        "é",
        "---",
        "...",
        "\"\\x41\\t\"",
        "x  ",
        "\"\" ",
        "a,b",
        "[1]",
        "~",
        "Off",
        "+1",
        "0b11",
        ".inf",
        "1_000",
    ];

    /// A text of block YAML pieces (keys, items, scalars, markers) in pseudo-random
    /// order and indentation: valid YAML often, invalid or outside the subset often.
    fn text_of(mut seed: u64) -> String {
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % n as u64) as usize
        };
        let mut out = String::new();
        for _ in 0..1 + next(8) {
            let pad = " ".repeat(2 * next(4) + usize::from(next(10) == 0));
            let (k, v) = (KEYS[next(KEYS.len())], VALUES[next(VALUES.len())]);
            let line = match next(10) {
                0..=3 => format!("{pad}{k}:{}{v}", if v.is_empty() { "" } else { " " }),
                4 | 5 => format!("{pad}- {v}"),
                6 | 7 => format!("{pad}- {k}: {v}"),
                8 => format!("{pad}{v}"),
                _ => "---".to_string(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    #[test]
    fn what_it_reads_the_full_reader_reads_the_same() {
        let mut read = 0;
        for seed in 0..100_000u64 {
            let text = text_of(seed);
            if let Some(fast) = load_non_null(&text) {
                read += 1;
                assert_eq!(Some(fast), generic(&text), "{text}");
            }
        }
        // the comparison is worth something only if many texts are in the subset
        assert!(read > 10_000, "only {read} texts read");
    }
}
