//! The plain minijinja environment of tycho's templates: Python's `str()` printing, the
//! `q` and `v` filters (a value as a YAML string, or typed as PyYAML types bare text),
//! `tycho_group_by`, `tycho_username_label`, the `valid_label` test and `now()`, without
//! budgets ([`super::new_environment`] adds them; [`super::guard`] compiles its own
//! templates in this one).

use crate::text::pyfmt::mj_str;
use minijinja::value::Value as MjValue;
use minijinja::{Environment, State};
use serde_json::Value;

/// The text of a string value as it is, without a copy; None for other values.
pub(crate) fn plain_str(v: &MjValue) -> Option<&str> {
    if v.kind() == minijinja::value::ValueKind::String {
        v.as_str()
    } else {
        None
    }
}

fn q_filter(v: MjValue) -> String {
    match plain_str(&v) {
        Some(s) => crate::text::yaml::double_quoted(s),
        None => crate::text::yaml::double_quoted(&mj_str(&v)),
    }
}

fn v_filter(v: MjValue) -> String {
    if v.is_undefined() {
        return "null".into();
    }
    let text = mj_str(&v);
    if text.is_empty() {
        return "null".into();
    }
    match crate::text::yaml::resolve_plain(&text) {
        Value::String(s) => crate::text::yaml::double_quoted(&s),
        other => serde_json::to_string(&other).unwrap_or_default(),
    }
}

/// `items|tycho_group_by("attr")`: a mapping from each value of `attr` to the items
/// holding it, in their order. One pass, so a template that looks up the items of each
/// of N keys stays linear (`selectattr` per key is N²).
fn group_by_filter(items: MjValue, attr: &str) -> std::result::Result<MjValue, minijinja::Error> {
    let mut groups: std::collections::BTreeMap<MjValue, Vec<MjValue>> = Default::default();
    for item in items.try_iter()? {
        let key = item.get_attr(attr)?;
        groups.entry(key).or_default().push(item);
    }
    Ok(MjValue::from(groups))
}

fn now() -> String {
    chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// A minijinja environment configured like the original's Jinja2 templates, without
/// budgets: only for templates compiled by [`crate::render::guard`] itself.
pub fn plain_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_formatter(|out, _state: &mut State, value| {
        out.write_str(&mj_str(value))
            .map_err(minijinja::Error::from)
    });
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("now", now);
    // `q`: the value as a YAML string, whatever it contains.
    env.add_filter("q", q_filter);
    // `v`: the value typed as PyYAML would type it pasted bare, written safely.
    env.add_filter("v", v_filter);
    env.add_filter("tycho_group_by", group_by_filter);
    // `tycho_username_label`: the `username` label of a username (itself, or its slug).
    env.add_filter("tycho_username_label", |v: MjValue| {
        crate::text::names::username_label(&mj_str(&v)).into_owned()
    });
    env.add_test("valid_label", |v: MjValue| {
        crate::text::names::is_label_value(&mj_str(&v))
    });
    env
}
