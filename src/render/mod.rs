//! Template rendering with minijinja, made to behave like the original's Jinja2 setup:
//! values print as Python's `str()` does, `now()` exists, `.items()` and friends work
//! (minijinja-contrib pycompat), and the output is read as YAML 1.1 like PyYAML reads it.
//!
//! Built-in templates are compiled into the binary; a directory listed in the config's
//! `tycho.templates.paths` that holds a file of the same name overrides one.

pub mod filters;
pub mod guard;

pub use filters::plain_environment;
use filters::plain_str;

use crate::error::{Error, Result};
use crate::text::pyfmt::mj_str;
use minijinja::value::Value as MjValue;
use minijinja::{Environment, State};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{OnceLock, RwLock};
use std::time::SystemTime;

/// Built-in templates by file name.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("pod.yaml", include_str!("../../templates/pod.yaml")),
    ("service.yaml", include_str!("../../templates/service.yaml")),
    ("patch.yaml", include_str!("../../templates/patch.yaml")),
    ("pvc.yaml", include_str!("../../templates/pvc.yaml")),
    ("pv.yaml", include_str!("../../templates/pv.yaml")),
    (
        "policy/tycho-default-netpolicy.yaml",
        include_str!("../../templates/policy/tycho-default-netpolicy.yaml"),
    ),
];

/// A minijinja environment configured like the original's Jinja2 templates, with the
/// budgets of [`crate::limits::template_budgets`]: instruction fuel, checked operators,
/// filters and methods, and every printed value charged to the memory budget. Templates
/// must be added through [`add_guarded`].
pub fn new_environment() -> Environment<'static> {
    let mut env = plain_environment();
    env.set_fuel(Some(crate::limits::template_budgets().fuel));
    env.set_formatter(|out, _state: &mut State, value| {
        if let Some(text) = plain_str(value) {
            crate::render::guard::charge(text.len())?;
            return out.write_str(text).map_err(minijinja::Error::from);
        }
        let text = mj_str(value);
        crate::render::guard::charge(text.len())?;
        out.write_str(&text).map_err(minijinja::Error::from)
    });
    crate::render::guard::install(&mut env);
    env
}

/// Adds template `name` to a [`new_environment`] with its operators made checked calls.
pub fn add_guarded(
    env: &mut Environment<'static>,
    name: String,
    source: &str,
) -> std::result::Result<(), minijinja::Error> {
    let guarded = crate::render::guard::guard_source(source)?.into_owned();
    env.add_template_owned(name, guarded)
}

thread_local! {
    /// Instructions still allowed to the templates of the request being compiled.
    static TOTAL_FUEL: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with one instruction budget shared by every template it evaluates
/// (`TYCHO_TEMPLATE_TOTAL_FUEL`); nested calls share the outer budget.
pub fn with_total_budget<T>(f: impl FnOnce() -> T) -> T {
    let outer = TOTAL_FUEL.with(|t| t.get());
    if outer.is_some() {
        return f();
    }
    TOTAL_FUEL.with(|t| t.set(Some(crate::limits::template_budgets().total_fuel)));
    // The request's own work needs a few MiB at most; the evaluations that may need
    // more ask for it themselves (`evaluate`, `with_deep_stack`).
    let out = stacker::maybe_grow(
        crate::limits::STACK_BASE_RED_ZONE,
        crate::limits::STACK_GROWTH,
        f,
    );
    TOTAL_FUEL.with(|t| t.set(None));
    out
}

/// Runs `f` with [`crate::limits::STACK_RED_ZONE`] of stack left, on a new segment when
/// the thread has less: for the evaluation of a template that may build values nested as
/// deep as its fuel allows (dropping and printing them recurses), and for compiling a
/// template text not seen before.
fn with_deep_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(
        crate::limits::STACK_RED_ZONE,
        crate::limits::STACK_GROWTH,
        f,
    )
}

/// Whether a template text may build values nested deeper than its input: it has
/// statements (a loop or a `set` can wrap a value in itself again and again), or it is
/// long enough to chain many nesting expressions. Such a template is evaluated with
/// [`with_deep_stack`]; the others within the request's own stack.
fn may_nest(source: &str) -> bool {
    source.len() > crate::limits::FLAT_TEMPLATE_LEN || source.contains("{%")
}

/// An output that refuses to grow past its cap instead of allocating.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("template output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Evaluates `tmpl` within the budgets; errors name the template (`name`). `deep`: the
/// template may build values nested deeper than its input ([`may_nest`]), so it runs
/// with [`with_deep_stack`].
fn evaluate(
    tmpl: &minijinja::Template<'_, '_>,
    ctx: MjValue,
    name: &dyn std::fmt::Display,
    deep: bool,
) -> Result<String> {
    if deep {
        with_deep_stack(|| evaluate_in(tmpl, ctx, name))
    } else {
        evaluate_in(tmpl, ctx, name)
    }
}

fn evaluate_in(
    tmpl: &minijinja::Template<'_, '_>,
    ctx: MjValue,
    name: &dyn std::fmt::Display,
) -> Result<String> {
    let budgets = crate::limits::template_budgets();
    crate::render::guard::begin();
    let mut out = CappedWriter {
        // pod.yaml of a system renders a few KiB: room for it up front, within the cap.
        buf: Vec::with_capacity(budgets.output.min(8 << 10)),
        cap: budgets.output,
        over: false,
    };
    let result = tmpl.render_captured_to(ctx, &mut out);
    let consumed = match &result {
        Ok(captured) => captured.state().fuel_levels().map(|l| l.0).unwrap_or(0),
        Err(_) => budgets.fuel,
    };
    let total_left = TOTAL_FUEL.with(|t| {
        let left = t.get()?;
        let now = left.saturating_sub(consumed);
        t.set(Some(now));
        Some(now)
    });
    match result {
        Err(_) if out.over => Err(Error::template(format!(
            "template {name}: output exceeds {} bytes (TYCHO_TEMPLATE_OUTPUT_LIMIT)",
            budgets.output
        ))),
        Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(Error::template(format!(
            "template {name}: exceeds the budget of {} instructions (TYCHO_TEMPLATE_FUEL)",
            budgets.fuel
        ))),
        Err(e) => Err(format_error(&name.to_string(), e)),
        Ok(_) if total_left == Some(0) => Err(Error::template(format!(
            "template {name}: the templates of this request exceed the budget of {} instructions (TYCHO_TEMPLATE_TOTAL_FUEL)",
            budgets.total_fuel
        ))),
        Ok(_) => String::from_utf8(out.buf)
            .map_err(|e| Error::template(format!("template {name}: output is not UTF-8: {e}"))),
    }
}

fn builtin_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = new_environment();
        for (name, text) in BUILTIN_TEMPLATES {
            add_guarded(&mut env, name.to_string(), text).expect("built-in template compiles");
        }
        env
    })
}

type OverrideKey = (PathBuf, Option<SystemTime>);

fn override_env() -> &'static RwLock<(Environment<'static>, HashMap<PathBuf, OverrideKey>)> {
    static ENV: OnceLock<RwLock<(Environment<'static>, HashMap<PathBuf, OverrideKey>)>> =
        OnceLock::new();
    ENV.get_or_init(|| RwLock::new((new_environment(), HashMap::new())))
}

fn find_override(paths: &[String], name: &str) -> Option<PathBuf> {
    paths
        .iter()
        .map(|p| PathBuf::from(p).join(name))
        .find(|p| p.is_file())
}

fn format_error(name: &str, e: minijinja::Error) -> Error {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    let at = e.name().unwrap_or(name).to_string();
    Error::template(format!("template {name}: {}", crate::limits::echo(&msg)))
        .in_template(at, e.line())
        .caused_by(e)
}

/// Renders template `name` (a user override from `paths` first, else the built-in) with
/// `context` and returns the text.
pub fn render_text(paths: &[String], name: &str, context: MjValue) -> Result<String> {
    with_total_budget(|| render_text_in(paths, name, context))
}

fn render_text_in(paths: &[String], name: &str, context: MjValue) -> Result<String> {
    if let Some(path) = find_override(paths, name) {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let key = format!("{}", path.display());
        {
            let guard = override_env().read().unwrap_or_else(|p| p.into_inner());
            if guard.1.get(&path).map(|k| k.1) == Some(mtime) {
                let tmpl = guard
                    .0
                    .get_template(&key)
                    .map_err(|e| format_error(name, e))?;
                return evaluate(&tmpl, context, &name, true);
            }
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::template(format!("cannot read template {}: {e}", path.display()))
        })?;
        let mut guard = override_env().write().unwrap_or_else(|p| p.into_inner());
        with_deep_stack(|| add_guarded(&mut guard.0, key.clone(), &text))
            .map_err(|e| format_error(name, e))?;
        guard.1.insert(path.clone(), (path.clone(), mtime));
        let tmpl = guard
            .0
            .get_template(&key)
            .map_err(|e| format_error(name, e))?;
        return evaluate(&tmpl, context, &name, true);
    }
    let tmpl = builtin_env().get_template(name).map_err(|_| {
        Error::template(format!(
            "no template {name:?} found in {paths:?} or among the built-in templates ({})",
            BUILTIN_TEMPLATES
                .iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    // The built-in templates are tycho's own: their values nest as deep as their input.
    evaluate(&tmpl, context, &name, false)
}

/// Renders template `name` and reads the output as YAML documents (null documents dropped).
pub fn render(paths: &[String], name: &str, context: MjValue) -> Result<Vec<Value>> {
    let text = render_text(paths, name, context)?;
    crate::text::yaml_block::read_non_null(&text)
        .map_err(|e| Error::template(format!("template {name} produced invalid YAML: {e}")))
}

/// Renders a template given as text (Jinja2 semantics, Python value printing).
///
/// Compiled templates are cached by their text (settings and compose values repeat
/// from one start to the next); the cache is dropped when it grows past 4096 entries.
pub fn render_string(source: &str, context: &Value) -> Result<String> {
    with_total_budget(|| render_string_in(source, context))
}

thread_local! {
    /// The context pinned by [`PinnedContext`]: its address and its template value.
    static PINNED: std::cell::RefCell<Option<(usize, MjValue)>> = const { std::cell::RefCell::new(None) };
}

/// While alive, [`render_string`] calls with this very context reuse one conversion of
/// it (rendering each of 20,000 settings with all settings is then linear). The borrow
/// keeps the context unchanged and in place for as long as it is pinned.
pub struct PinnedContext<'a>(&'a Value);

impl<'a> PinnedContext<'a> {
    /// Pins `context` on this thread.
    pub fn new(context: &'a Value) -> Self {
        let mj = MjValue::from(minijinja::value::Serde(context));
        PINNED.with(|p| *p.borrow_mut() = Some((context as *const Value as usize, mj)));
        PinnedContext(context)
    }
}

impl Drop for PinnedContext<'_> {
    fn drop(&mut self) {
        PINNED.with(|p| {
            let mut p = p.borrow_mut();
            if p.as_ref().map(|x| x.0) == Some(self.0 as *const Value as usize) {
                *p = None;
            }
        });
    }
}

fn context_value(context: &Value) -> MjValue {
    let addr = context as *const Value as usize;
    PINNED
        .with(|p| {
            p.borrow()
                .as_ref()
                .filter(|x| x.0 == addr)
                .map(|x| x.1.clone())
        })
        .unwrap_or_else(|| MjValue::from(minijinja::value::Serde(context)))
}

/// A template text named by its first 60 characters, quoted (`"{{ x }}..."`).
struct Snippet<'a>(&'a str);

impl std::fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snippet: String = self.0.chars().take(60).collect();
        write!(f, "{snippet:?}")
    }
}

fn render_string_in(source: &str, context: &Value) -> Result<String> {
    static CACHE: OnceLock<RwLock<(Environment<'static>, usize)>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| RwLock::new((new_environment(), 0)));
    let ctx = context_value(context);
    // The template's name in errors: its first 60 characters, spelled out only for an error.
    let label = Snippet(source);
    let err = |e: minijinja::Error| format_error(&label.to_string(), e);
    {
        let guard = cache.read().unwrap_or_else(|p| p.into_inner());
        if let Ok(tmpl) = guard.0.get_template(source) {
            return evaluate(&tmpl, ctx, &label, may_nest(source));
        }
    }
    let mut guard = cache.write().unwrap_or_else(|p| p.into_inner());
    if guard.1 >= 4096 {
        *guard = (new_environment(), 0);
    }
    with_deep_stack(|| add_guarded(&mut guard.0, source.to_string(), source)).map_err(err)?;
    guard.1 += 1;
    let tmpl = guard.0.get_template(source).map_err(err)?;
    evaluate(&tmpl, ctx, &label, may_nest(source))
}

/// The top-level variables `source` reads that neither `context` nor the environment's
/// globals (`now`, `range`, ...) define, sorted: they render empty. Found statically
/// (minijinja's undeclared variables), so the rendered output is not affected; a
/// variable read only under `{% if x is defined %}` is reported too.
pub fn undefined_variables(source: &str, context: &Value) -> Vec<String> {
    static GLOBALS: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    let globals = GLOBALS.get_or_init(|| {
        new_environment()
            .globals()
            .map(|(name, _)| name.to_string())
            .collect()
    });
    let mut names: Vec<String> = undeclared_of(source)
        .iter()
        .filter(|name| !globals.contains(*name) && context.get(name.as_str()).is_none())
        .cloned()
        .collect();
    names.sort();
    names
}

/// The undeclared top-level variables of `source`, found once per distinct text (the
/// same compose and settings strings come back from one start to the next); the cache
/// is dropped when it grows past 4096 entries, like [`render_string`]'s.
fn undeclared_of(source: &str) -> std::sync::Arc<[String]> {
    type Seen = RwLock<HashMap<String, std::sync::Arc<[String]>>>;
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    static SEEN: OnceLock<Seen> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(names) = seen.read().unwrap_or_else(|p| p.into_inner()).get(source) {
        return names.clone();
    }
    let env = ENV.get_or_init(plain_environment);
    let names: std::sync::Arc<[String]> = with_deep_stack(|| match env.template_from_str(source) {
        Ok(tmpl) => tmpl.undeclared_variables(false).into_iter().collect(),
        Err(_) => std::sync::Arc::from(Vec::new()),
    });
    let mut guard = seen.write().unwrap_or_else(|p| p.into_inner());
    if guard.len() >= 4096 {
        guard.clear();
    }
    guard.insert(source.to_string(), names.clone());
    names
}

/// `text` written so that rendering it as a template gives back `text`: when it holds
/// template syntax every `{` becomes `{{ '{' }}`, so no tag, expression or comment can
/// open (text without template syntax is not rendered and is left as it is).
pub fn literal_text(text: &str) -> String {
    if !(text.contains("{{") || text.contains("{%") || text.contains("{#")) {
        return text.to_string();
    }
    text.replace('{', "{{ '{' }}")
}

/// [`literal_text`] applied to every string (keys too) of `v`.
pub fn literal_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(literal_text(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(literal_value).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (literal_text(&k), literal_value(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checked_operators_give_what_minijinja_gives() {
        let ctx = json!({"s": "ab", "t": "cd", "n": 3, "l": [1]});
        for (src, want) in [
            ("{{ s ~ t }}", "abcd"),
            ("{{ s ~ n ~ missing }}", "ab3"),
            ("{{ s + t }}", "abcd"),
            ("{{ n + 2 }}", "5"),
            ("{{ (l + [2])|length }}", "2"),
            ("{{ s * 2 }}", "abab"),
        ] {
            let plain = plain_environment()
                .render_str(src, MjValue::from(minijinja::value::Serde(&ctx)))
                .unwrap();
            assert_eq!(plain, want, "{src}");
            assert_eq!(render_string(src, &ctx).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn literal_text_renders_as_itself() {
        for t in [
            "{{ 7*7 }}G",
            "{% raw %}x{% endraw %}",
            "{# c #}",
            "a{b}c",
            "plain",
        ] {
            let lit = literal_text(t);
            assert_eq!(render_string(&lit, &json!({})).unwrap(), t, "{lit}");
        }
    }
}
