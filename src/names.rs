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
}
