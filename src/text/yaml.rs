//! YAML read the way PyYAML's `safe_load_all` reads it (YAML 1.1 implicit typing:
//! `0600` is 384, `yes` is true, `1_000` is 1000, `<<` merge keys, anchors), and
//! written back as block YAML whose every string stays a string.
//!
//! Parsing is done by `saphyr-parser`; this module only applies the YAML 1.1 resolver
//! that PyYAML uses to the plain scalars it reports.

use crate::error::{Error, Result};
use crate::limits::MAX_DEPTH;
use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Parses every document of `text` into JSON values, as `yaml.safe_load_all` would.
/// Empty documents are skipped when they are the only content between markers and
/// carry nothing (PyYAML yields `None` for them; callers drop `None` anyway).
///
/// Refused with an error: nesting deeper than [`MAX_DEPTH`] and aliases that would copy
/// more than [`crate::limits::alias_budget`] nodes (a "billion laughs" document).
pub fn load_all(text: &str) -> Result<Vec<Value>> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        alias_budget: crate::limits::alias_budget(text.len()),
        ..Builder::default()
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(Error::input(format!("YAML: {e}"))),
        };
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => builder.stack.clear(),
            Event::DocumentEnd => {
                docs.push(builder.finished.take().map(|f| f.0).unwrap_or(Value::Null));
                builder.anchors.clear();
            }
            ev => builder
                .event(ev)
                .map_err(|e| e.prefixed(format_args!("YAML line {}", span.start.line())))?,
        }
    }
    Ok(docs)
}

/// Parses a single-document YAML text (`yaml.safe_load`); an empty text is `null`.
pub fn load(text: &str) -> Result<Value> {
    Ok(load_all(text)?.into_iter().next().unwrap_or(Value::Null))
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize, Vec<Value>),
}

/// Size of a built node: (nodes in it, levels of nesting in it).
type Size = (usize, usize);

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Size of each open frame's content so far.
    sizes: Vec<Size>,
    anchors: HashMap<usize, (Value, Size)>,
    finished: Option<(Value, Size)>,
    /// Nodes copied by aliases and anchors so far, and the most allowed.
    copied: usize,
    alias_budget: usize,
}

impl Builder {
    fn event(&mut self, ev: Event<'_>) -> Result<()> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tagged = tag.is_some();
                let is_merge = style == ScalarStyle::Plain && text == "<<" && !tagged;
                if is_merge {
                    if let Some(Frame::Map(_, key @ None, _, _)) = self.stack.last_mut() {
                        *key = Some("<<".into());
                        return Ok(());
                    }
                }
                // a long scalar weighs more when an alias copies it
                let weight = 1 + text.len() / 32;
                let v = scalar_value(
                    text.into_owned(),
                    style,
                    tag.as_deref().map(|t| t.suffix.as_str()),
                );
                self.close(v, (weight, 0), anchor)
            }
            Event::Alias(id) => {
                let size = self
                    .anchors
                    .get(&id)
                    .map(|a| a.1)
                    .ok_or_else(|| Error::input(format!("unknown alias {id}")))?;
                self.charge(size.0)?;
                if self.stack.len() + size.1 > MAX_DEPTH {
                    return Err(Error::input(format!(
                        "nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                let v = self.anchors[&id].0.clone();
                self.push_value(v, size)
            }
            Event::SequenceStart(anchor, _) => self.open(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map(Map::new(), None, anchor, Vec::new()))
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq(items, anchor)) => {
                    let size = self.sizes.pop().unwrap_or_default();
                    self.close(Value::Array(items), (size.0 + 1, size.1 + 1), anchor)
                }
                _ => Err(Error::input("unbalanced sequence")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map(mut map, _, anchor, merges)) => {
                    let size = self.sizes.pop().unwrap_or_default();
                    for m in merges {
                        merge_into(&mut map, m);
                    }
                    self.close(Value::Object(map), (size.0 + 1, size.1 + 1), anchor)
                }
                _ => Err(Error::input("unbalanced mapping")),
            },
            _ => Ok(()),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::input(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        self.stack.push(frame);
        self.sizes.push((0, 0));
        Ok(())
    }

    /// Counts `nodes` copied by an alias or kept for an anchor against the budget.
    fn charge(&mut self, nodes: usize) -> Result<()> {
        self.copied = self.copied.saturating_add(nodes);
        if self.copied > self.alias_budget {
            return Err(Error::input(format!(
                "aliases expand to more than {} nodes (a document this size may copy at most that many)",
                self.alias_budget
            )));
        }
        Ok(())
    }

    fn close(&mut self, v: Value, size: Size, anchor: usize) -> Result<()> {
        if anchor > 0 {
            self.charge(size.0)?;
            self.anchors.insert(anchor, (v.clone(), size));
        }
        self.push_value(v, size)
    }

    fn push_value(&mut self, v: Value, size: Size) -> Result<()> {
        if let Some(parent) = self.sizes.last_mut() {
            parent.0 = parent.0.saturating_add(size.0);
            parent.1 = parent.1.max(size.1);
        }
        match self.stack.last_mut() {
            None => {
                self.finished = Some((v, size));
                Ok(())
            }
            Some(Frame::Seq(items, _)) => {
                items.push(v);
                Ok(())
            }
            Some(Frame::Map(map, key, _, merges)) => match key.take() {
                None => {
                    *key = Some(match v {
                        Value::String(s) => s,
                        other => key_string(&other),
                    });
                    Ok(())
                }
                Some(k)
                    if k == "<<"
                        && !map.contains_key("<<")
                        && matches!(v, Value::Object(_) | Value::Array(_)) =>
                {
                    match v {
                        Value::Object(_) => merges.push(v),
                        Value::Array(items) => {
                            for item in items {
                                if !item.is_object() {
                                    return Err(Error::input("merge key << expects mappings"));
                                }
                                merges.push(item);
                            }
                        }
                        _ => unreachable!(),
                    }
                    Ok(())
                }
                Some(k) => {
                    map.insert(k, v);
                    Ok(())
                }
            },
        }
    }
}

/// Keys explicitly set win over merged ones; earlier merge sources win over later ones.
fn merge_into(map: &mut Map<String, Value>, source: Value) {
    if let Value::Object(src) = source {
        for (k, v) in src {
            map.entry(k).or_insert(v);
        }
    }
}

fn key_string(v: &Value) -> String {
    crate::text::pyfmt::py_str(v)
}

/// The key a scalar value makes in a mapping (a non-string key as Python's `str()`).
pub(crate) fn key_value(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => key_string(&other),
    }
}

/// The value of an untagged scalar: resolved as YAML 1.1 when `plain`, else a string.
pub(crate) fn scalar_from(text: String, plain: bool) -> Value {
    if plain {
        resolve_plain_owned(text)
    } else {
        Value::String(text)
    }
}

fn scalar_value(text: String, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text),
        Some("int") | Some("float") | Some("bool") | Some("null") => {
            let v = resolve_plain(&text);
            if !v.is_string() {
                return v;
            }
        }
        _ => {}
    }
    if style == ScalarStyle::Plain && tag.is_none() {
        resolve_plain_owned(text)
    } else {
        Value::String(text)
    }
}

/// Like [`resolve_plain`], reusing `text` when the scalar is a string.
fn resolve_plain_owned(text: String) -> Value {
    let maybe_typed = match text.as_bytes().first() {
        None => true,
        Some(c) => {
            c.is_ascii_digit()
                || matches!(
                    c,
                    b'-' | b'+'
                        | b'.'
                        | b'~'
                        | b'y'
                        | b'Y'
                        | b'n'
                        | b'N'
                        | b't'
                        | b'T'
                        | b'f'
                        | b'F'
                        | b'o'
                        | b'O'
                )
        }
    };
    if maybe_typed {
        resolve_plain(&text)
    } else {
        Value::String(text)
    }
}

/// The value PyYAML's SafeLoader gives a plain (unquoted) scalar with this text.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::String(text.to_string());
    }
    if let Some(i) = parse_int(text) {
        return Value::Number(Number::from(i));
    }
    if let Some(f) = parse_float(text) {
        return match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => Value::String(text.to_string()),
        };
    }
    Value::String(text.to_string())
}

fn split_sign(text: &str) -> (i64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

fn parse_int(text: &str) -> Option<i64> {
    let (sign, body) = split_sign(text);
    let radix_digits = |digits: &str, radix: u32| -> Option<i64> {
        let clean: String = digits.chars().filter(|c| *c != '_').collect();
        if clean.is_empty() {
            return None;
        }
        i64::from_str_radix(&clean, radix).ok().map(|v| v * sign)
    };
    if let Some(d) = body.strip_prefix("0b") {
        return if all(d, |c| c == b'0' || c == b'1' || c == b'_') {
            radix_digits(d, 2)
        } else {
            None
        };
    }
    if let Some(d) = body.strip_prefix("0x") {
        return if all(d, |c| c.is_ascii_hexdigit() || c == b'_') {
            radix_digits(d, 16)
        } else {
            None
        };
    }
    if body == "0" {
        return Some(0);
    }
    if let Some(d) = body.strip_prefix('0') {
        return if all(d, |c| (b'0'..=b'7').contains(&c) || c == b'_') {
            radix_digits(d, 8)
        } else {
            None
        };
    }
    if body.contains(':') {
        // base 60: [1-9][0-9_]*(:[0-5]?[0-9])+
        let mut parts = body.split(':');
        let head = parts.next()?;
        if !(all(head, |c| c.is_ascii_digit() || c == b'_') && head.as_bytes()[0] != b'0') {
            return None;
        }
        let mut value = radix_digits(head, 10)? * sign;
        for p in parts {
            if p.is_empty()
                || p.len() > 2
                || !all(p, |c| c.is_ascii_digit())
                || (p.len() == 2 && p.as_bytes()[0] > b'5')
            {
                return None;
            }
            value = value * 60 + p.parse::<i64>().ok()?;
        }
        return Some(value * sign);
    }
    if all(body, |c| c.is_ascii_digit() || c == b'_') && body.as_bytes()[0] != b'_' {
        return radix_digits(body, 10);
    }
    None
}

fn parse_float(text: &str) -> Option<f64> {
    let (sign, body) = split_sign(text);
    let sign = sign as f64;
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if text == body => return Some(f64::NAN),
        _ => {}
    }
    if body.contains(':') {
        // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
        let (int_part, frac) = body.split_once('.')?;
        if !frac.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
            return None;
        }
        let mut parts = int_part.split(':');
        let head = parts.next()?;
        if !all(head, |c| c.is_ascii_digit() || c == b'_') || !head.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        let mut value: f64 = head.replace('_', "").parse().ok()?;
        for p in parts {
            if p.is_empty()
                || p.len() > 2
                || !all(p, |c| c.is_ascii_digit())
                || (p.len() == 2 && p.as_bytes()[0] > b'5')
            {
                return None;
            }
            value = value * 60.0 + p.parse::<f64>().ok()?;
        }
        let frac: String = frac.chars().filter(|c| *c != '_').collect();
        let frac_v: f64 = if frac.is_empty() {
            0.0
        } else {
            format!("0.{frac}").parse().ok()?
        };
        return Some(sign * (value + frac_v));
    }
    // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)?
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (ip, fp) = mantissa.split_once('.')?;
    if ip.is_empty() {
        if !all(fp, |c| c.is_ascii_digit() || c == b'_') {
            return None;
        }
    } else {
        let int_ok = ip.as_bytes()[0].is_ascii_digit()
            && ip.bytes().all(|c| c.is_ascii_digit() || c == b'_');
        let frac_ok = fp.bytes().all(|c| c.is_ascii_digit() || c == b'_');
        if !int_ok || !frac_ok {
            return None;
        }
    }
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['-', '+'])?;
        if !all(digits, |c| c.is_ascii_digit()) {
            return None;
        }
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let clean = if clean.starts_with('.') {
        format!("0{clean}")
    } else {
        clean
    };
    clean.parse::<f64>().ok().map(|v| v * sign)
}

/// Writes `value` as block-style YAML. Strings are quoted whenever a YAML 1.1 or 1.2
/// reader could take them for anything but that exact string.
pub fn dump(value: &Value) -> String {
    let mut out = String::new();
    write_node(&mut out, value, 0, false);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Writes several documents separated by `---`.
pub fn dump_all(values: &[Value]) -> String {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        out.push_str(&dump(v));
    }
    out
}

fn write_node(out: &mut String, v: &Value, indent: usize, in_seq: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (i, (k, item)) in map.iter().enumerate() {
                if !(i == 0 && in_seq) {
                    out.push_str(&pad);
                }
                out.push_str(&scalar_text(&Value::String(k.clone())));
                out.push(':');
                write_child(out, item, indent);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if !(i == 0 && in_seq) {
                    out.push_str(&pad);
                }
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => write_node(out, item, indent + 2, true),
                    Value::Array(a) if !a.is_empty() => write_node(out, item, indent + 2, true),
                    _ => {
                        out.push_str(&scalar_text(item));
                        out.push('\n');
                    }
                }
            }
        }
        _ => {
            out.push_str(&scalar_text(v));
            out.push('\n');
        }
    }
}

fn write_child(out: &mut String, item: &Value, indent: usize) {
    match item {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_node(out, item, indent + 2, false);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_node(out, item, indent, false);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar_text(item));
            out.push('\n');
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if plain_safe(s) {
                s.clone()
            } else {
                double_quoted(s)
            }
        }
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// `s` as a YAML double-quoted scalar that PyYAML (YAML 1.1) and YAML 1.2 readers read
/// back as exactly `s`: every character outside the printable set, and the line breaks
/// YAML 1.1 folds (NEL, LS, PS), is escaped.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    // The usual case, nothing to escape: copied whole.
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return out;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}'
                if c != '\u{2028}' && c != '\u{2029}' =>
            {
                out.push(c)
            }
            '\u{10000}'.. => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn plain_safe(s: &str) -> bool {
    if s.is_empty() || !resolve_plain(s).is_string() {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "y" | "n" | "=" | "<<") || s.parse::<f64>().is_ok() {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`~ \t".contains(first) || s.ends_with([' ', ':']) {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.chars().any(|c| c.is_control() || !c.is_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structure_errors_are_input_errors_with_their_line() {
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        let e = load(&deep).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Input);
        assert!(
            e.message
                .ends_with(&format!(": nested deeper than {MAX_DEPTH} levels")),
            "{}",
            e.message
        );
    }

    #[test]
    fn yaml11_scalars() {
        let docs = load_all("a: 0600\nb: yes\nc: 1_000\nd: '0600'\ne: 1.5\nf: 1e5\ng: ~\nh: 0x1F\ni: 1:30\nj: off\nk: 08\n").unwrap();
        assert_eq!(
            docs[0],
            json!({"a": 384, "b": true, "c": 1000, "d": "0600", "e": 1.5, "f": "1e5", "g": null, "h": 31, "i": 90, "j": false, "k": "08"})
        );
    }

    #[test]
    fn multi_document_and_merge() {
        let docs =
            load_all("---\nbase: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n---\n- 1\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["m"], json!({"y": 3, "x": 1}));
        assert_eq!(docs[1], json!([1]));
    }

    #[test]
    fn dump_round_trips_strings() {
        let v = json!({"a": "yes", "b": "0600", "c": "x: y", "d": ["1", 2, null, {"e": "#f", "g": []}], "h": "ünï\ncode", "i": "plain"});
        let text = dump(&v);
        assert_eq!(load(&text).unwrap(), v, "{text}");
    }
}
