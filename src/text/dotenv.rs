//! Settings substitution of the command line: `$NAME` / `${NAME}` in a compose file's
//! text replaced by the values of a `.env` file before the text is parsed, with the
//! semantics of Python's `string.Template(text).safe_substitute(mapping)` that the
//! original's `TemplateUtils.apply_environment` uses.

use std::collections::HashMap;

/// The `.env` text as the original's `apply_environment` reads it: every line (split on
/// `\n` only, so a `\r` stays in the value) that contains `=` gives `name = value`,
/// split at the first `=`; a later line wins over an earlier one.
pub fn settings_mapping(settings: &str) -> HashMap<String, String> {
    settings
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn is_id_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Python's `string.Template(text).safe_substitute(mapping)`: `$$` becomes `$`;
/// `$name` and `${name}` (a name is an ASCII letter or `_` followed by ASCII letters,
/// digits and `_`) become the mapping's value, or stay as written when the name is not
/// in the mapping; any other `$` stays as it is. Values are inserted as they are (never
/// substituted again).
pub fn safe_substitute(text: &str, mapping: &HashMap<String, String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Everything between placeholders is copied as a slice; `$`, `{`, `}` and name
    // characters are ASCII, so every cut falls on a character boundary.
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&text[copied..i]);
        let next = bytes.get(i + 1).copied();
        let (replacement, end): (Option<&str>, usize) = match next {
            Some(b'$') => (Some("$"), i + 2),
            Some(b) if is_id_start(b) => {
                let mut j = i + 2;
                while j < bytes.len() && is_id_char(bytes[j]) {
                    j += 1;
                }
                (mapping.get(&text[i + 1..j]).map(String::as_str), j)
            }
            Some(b'{') if bytes.get(i + 2).copied().is_some_and(is_id_start) => {
                let mut j = i + 3;
                while j < bytes.len() && is_id_char(bytes[j]) {
                    j += 1;
                }
                if bytes.get(j) == Some(&b'}') {
                    (mapping.get(&text[i + 2..j]).map(String::as_str), j + 1)
                } else {
                    // Not a braced name: the `$` is an invalid placeholder and stays.
                    (None, i + 1)
                }
            }
            // `$` at the end, or before anything else: an invalid placeholder, kept.
            _ => (None, i + 1),
        };
        match replacement {
            Some(value) => out.push_str(value),
            None => out.push_str(&text[i..end]),
        }
        i = end;
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Substitutes the settings of a `.env` text into `text` (see [`safe_substitute`]).
pub fn apply_settings(settings: &str, text: &str) -> String {
    if settings.is_empty() {
        // The original substitutes only when there are settings at all (`$$` stays).
        return text.to_string();
    }
    safe_substitute(text, &settings_mapping(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_braces_and_escapes() {
        let m = map(&[("A", "1"), ("b_2", "two"), ("PORT", "8080")]);
        assert_eq!(safe_substitute("$A ${b_2} $$A $$", &m), "1 two $A $");
        assert_eq!(safe_substitute("\"$PORT:$PORT\"", &m), "\"8080:8080\"");
        assert_eq!(safe_substitute("${A}x $Ax", &m), "1x $Ax");
    }

    #[test]
    fn unknown_and_invalid_stay_as_written() {
        let m = map(&[("A", "1")]);
        assert_eq!(safe_substitute("$NOPE ${NOPE} $", &m), "$NOPE ${NOPE} $");
        assert_eq!(
            safe_substitute("${A ${ $1 $-x ${1A} $}", &m),
            "${A ${ $1 $-x ${1A} $}"
        );
        assert_eq!(safe_substitute("$$$A$", &m), "$1$");
        assert_eq!(safe_substitute("é$A€${A}ü", &m), "é1€1ü");
    }

    #[test]
    fn values_are_inserted_verbatim() {
        let m = map(&[("V", "a$A ${A} $$ {x} \"q' \n line"), ("A", "no")]);
        assert_eq!(
            safe_substitute("[$V]", &m),
            "[a$A ${A} $$ {x} \"q' \n line]"
        );
    }

    #[test]
    fn names_are_ascii_and_case_sensitive() {
        let m = map(&[("a", "lower"), ("A", "upper")]);
        assert_eq!(safe_substitute("$a $A $é", &m), "lower upper $é");
    }

    #[test]
    fn settings_text_is_read_like_the_original() {
        let m = settings_mapping("A=1\nB=x=y\r\nnot a setting\nA=2\n=empty\n");
        assert_eq!(m["A"], "2");
        assert_eq!(m["B"], "x=y\r");
        assert_eq!(m[""], "empty");
        assert_eq!(apply_settings("", "$$ $A"), "$$ $A");
        assert_eq!(apply_settings("A=1", "$$ $A"), "$ 1");
    }
}
