//! Kubernetes naming rules: what a name or label value may look like, checked before any
//! object is built so a bad value is refused with a message naming it.

use crate::error::{Error, Result};

/// Where Kubernetes mounts the pod's service-account namespace.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The pod's service-account namespace (the file's first line, trimmed), if the file is
/// there and names one.
pub fn service_account_namespace() -> Option<String> {
    let text = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE).ok()?;
    let first = text.lines().next().unwrap_or("").trim();
    (!first.is_empty()).then(|| first.to_string())
}

/// The namespace rule, written once: `explicit`, else `variable` (the NAMESPACE
/// environment variable, read by the caller), else the pod's service-account namespace
/// (empty values count as unset). None: the caller falls back to the kubeconfig
/// context's namespace or "default".
pub fn namespace_from(explicit: Option<&str>, variable: Option<String>) -> Option<String> {
    explicit
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| variable.filter(|s| !s.is_empty()))
        .or_else(service_account_namespace)
}

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| is_dns_label(l, 63))
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// Refuses `value` for `what` unless it is a valid label value.
pub fn check_label_value(what: &str, value: &str) -> Result<()> {
    if is_label_value(value) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{what} {} is not a valid Kubernetes label value (at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit)",
            crate::limits::echo(&format!("{value:?}"))
        )))
    }
}

/// Longest username accepted (bytes): it is a directory name and an env value.
pub const USERNAME_MAX: usize = 256;

/// Annotation holding the real username on every object whose `username` label is a
/// slug ([`username_label`]); status rows read it.
pub const USERNAME_ANNOTATION: &str = "tycho.renci.org/username";

/// Refuses a username that cannot name a home directory: empty, over
/// [`USERNAME_MAX`] bytes, `.` or `..`, or holding `/`, `\`, `:` (the separator of the
/// `pvc://` home volume) or a control character.
/// Anything else is accepted (an e-mail address, a long name); see [`username_label`].
pub fn check_username(value: &str) -> Result<()> {
    let why = if value.is_empty() {
        Some("is empty")
    } else if value.len() > USERNAME_MAX {
        Some("is longer than 256 bytes")
    } else if value == "." || value == ".." {
        Some("is not a directory name")
    } else if value.contains(['/', '\\', ':']) {
        Some("contains '/', '\\' or ':' (it names the home directory in a pvc:// volume)")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::input(format!(
            "principal username {} {why}",
            crate::limits::echo(&format!("{value:?}"))
        ))
        .at("principal.username")),
    }
}

/// The value of a system's `username` label. A username that is a valid label value is
/// its own label (as the original labels it). Any other (an e-mail address, more than
/// 63 characters, ...) gets a slug: the name with each run of characters other than
/// `[A-Za-z0-9._-]` turned into one `-`, cut to 52 characters and trimmed to start and
/// end with a letter or digit, then `--` and the first 8 hex digits of the name's
/// SHA-256: `Jane.Doe@example.org` → `Jane.Doe-example.org--<8 hex>`. Deterministic, at
/// most 63 characters, and always a valid label value. Two names whose slugs agree (a
/// hash collision, or a real name spelled like another's slug) are told apart by
/// [`USERNAME_ANNOTATION`], which status compares too.
pub fn username_label(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.is_empty() && is_label_value(name) {
        return std::borrow::Cow::Borrowed(name);
    }
    std::borrow::Cow::Owned(username_slug(name))
}

/// Whether `name` is labelled with a slug (not with itself).
pub fn username_is_slugged(name: &str) -> bool {
    name.is_empty() || !is_label_value(name)
}

fn username_slug(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len().min(64));
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            escaped.push(c);
            in_run = false;
        } else if !in_run {
            escaped.push('-');
            in_run = true;
        }
        if escaped.len() >= 52 {
            break;
        }
    }
    let escaped = escaped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if escaped.is_empty() {
        hash
    } else {
        format!("{escaped}--{hash}")
    }
}

/// A Kubernetes quantity such as `500m`, `1`, `2.5`, `250Mi` or `1e3`.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let num_ok = !num.is_empty() && num != "." && num.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || (suffix.starts_with(['e', 'E']) && {
        let e = &suffix[1..];
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    num_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(is_dns_label("jupyter-ds", 63));
        assert!(!is_dns_label("Jupyter", 63));
        assert!(!is_dns_label("-a", 63));
        assert!(is_label_value("j.doe_1"));
        assert!(!is_label_value("jdoe@example.org"));
        assert!(!is_label_value("a: b"));
        for q in ["500m", "1", "2.5", "250Mi", "1e3", "0.2", "1G"] {
            assert!(is_quantity(q), "{q}");
        }
        for q in ["", "abc", "1 G", "5Q", "1.2.3"] {
            assert!(!is_quantity(q), "{q}");
        }
    }

    #[test]
    fn usernames() {
        for ok in ["jdoe", "Jane.Doe@example.org", &"x".repeat(100), "a b", "ü"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a: b",
            "a\nb",
            &"x".repeat(257),
        ] {
            let e = check_username(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("principal.username"), "{bad}");
        }
    }

    #[test]
    fn username_labels() {
        // Valid label values are their own label, byte for byte.
        for same in ["jdoe", "j.doe_1", "renci", &"a".repeat(63)] {
            assert_eq!(username_label(same), same);
            assert!(!username_is_slugged(same));
        }
        let email = username_label("Jane.Doe@example.org");
        assert!(email.starts_with("Jane.Doe-example.org--"), "{email}");
        assert_eq!(email.len(), "Jane.Doe-example.org--".len() + 8);
        // Deterministic; different names, different labels, even when they escape alike.
        assert_eq!(username_label("Jane.Doe@example.org"), email);
        assert_ne!(username_label("Jane.Doe#example.org"), email);
        let long = "y".repeat(100);
        let long_label = username_label(&long);
        assert_ne!(username_label(&"y".repeat(101)), long_label);
        for name in [
            "Jane.Doe@example.org",
            &long,
            "@@@",
            "-lead@x-",
            "a b",
            "ü@ü",
            "",
            &"é".repeat(80),
        ] {
            let label = username_label(name);
            assert!(
                is_label_value(&label) && !label.is_empty(),
                "{name:?} -> {label}"
            );
            assert!(label.len() <= 63);
            assert!(username_is_slugged(name));
        }
        assert_eq!(username_label("@@@").len(), 8);
    }
}
