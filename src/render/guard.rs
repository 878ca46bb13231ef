//! Bounded template evaluation: what keeps a hostile template from allocating without
//! limit in a single instruction, where minijinja's fuel cannot see it.
//!
//! minijinja counts instructions (fuel, set in [`crate::render`]) but one instruction may
//! build a huge value: `'x' * 100000000`, `s ~ s` doubling in a few `set`s, `replace`,
//! `join`, `indent(100000000)`, chains of `escape`. Constant operands are even folded at
//! compile time. So before a template is compiled its source is parsed and every `*`,
//! `+` and `~` is rewritten into a call of a function that checks the size of the result
//! against the evaluation's memory budget *before* building it (no constant folding
//! happens on calls). The filters and Python-style methods that can grow a value are
//! replaced by wrappers that check their arguments first and charge what they built.
//! The budget is per evaluation ([`begin`]); everything written through the formatter is
//! charged too.

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::Span;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// Bytes still allowed to the evaluation running on this thread.
    static REMAINING: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Starts the memory budget of one template evaluation on this thread.
pub fn begin() {
    REMAINING.with(|r| r.set(crate::limits::template_budgets().memory));
}

/// Whether the last evaluation on this thread ran out of its memory budget.
pub fn exhausted() -> bool {
    REMAINING.with(|r| r.get() == 0)
}

fn too_big() -> Error {
    REMAINING.with(|r| r.set(0));
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the template builds more than {} bytes of values (TYCHO_TEMPLATE_MEMORY_LIMIT)",
            crate::limits::template_budgets().memory
        ),
    )
}

/// Charges `bytes` about to be built; an error once the budget is spent.
pub fn charge(bytes: usize) -> Result<(), Error> {
    REMAINING.with(|r| {
        let left = r.get();
        if bytes > left {
            Err(too_big())
        } else {
            r.set(left - bytes);
            Ok(())
        }
    })
}

/// Rough bytes a value occupies (strings by length, sequences and maps by entry).
fn size_of(v: &Value) -> usize {
    if let Some(s) = v.as_str() {
        return s.len();
    }
    match v.len() {
        Some(n) => n.saturating_mul(16),
        None => 0,
    }
}

fn as_count(v: &Value) -> Option<usize> {
    if v.is_integer() {
        i64::try_from(v.clone()).ok().map(|n| n.max(0) as usize)
    } else {
        None
    }
}

/// The plain environment the checked operations finally run in.
fn plain_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(super::filters::plain_environment)
}

fn eval_expr(expr: &'static str, ctx: Value) -> Result<Value, Error> {
    use std::collections::HashMap;
    use std::sync::RwLock;
    static CACHE: OnceLock<RwLock<HashMap<&'static str, minijinja::Expression<'static, 'static>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(e) = cache.read().unwrap_or_else(|p| p.into_inner()).get(expr) {
        return e.eval(ctx);
    }
    let compiled = plain_env().compile_expression(expr)?;
    let out = compiled.eval(ctx);
    cache
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(expr, compiled);
    out
}

fn op_mul(a: Value, b: Value) -> Result<Value, Error> {
    let predicted = match (as_count(&a), as_count(&b)) {
        (_, Some(n)) if !a.is_number() => size_of(&a).saturating_mul(n),
        (Some(n), _) if !b.is_number() => size_of(&b).saturating_mul(n),
        _ => 0,
    };
    charge(predicted)?;
    eval_expr("a * b", minijinja::context! { a, b })
}

/// `a` and `b` when both are strings (what minijinja's `+` joins as strings).
fn both_str<'a>(a: &'a Value, b: &'a Value) -> Option<(&'a str, &'a str)> {
    use minijinja::value::ValueKind;
    if a.kind() == ValueKind::String && b.kind() == ValueKind::String {
        Some((a.as_str()?, b.as_str()?))
    } else {
        None
    }
}

fn op_cat(a: Value, b: Value) -> Result<Value, Error> {
    charge(size_of(&a).saturating_add(size_of(&b)))?;
    // What minijinja's `~` computes (both sides printed with Display, undefined as
    // nothing), built here in one pre-sized string instead of a nested evaluation.
    if let Some((x, y)) = both_str(&a, &b) {
        let mut out = String::with_capacity(x.len() + y.len());
        out.push_str(x);
        out.push_str(y);
        return Ok(Value::from(out));
    }
    Ok(Value::from(format!("{a}{b}")))
}

fn op_add(a: Value, b: Value) -> Result<Value, Error> {
    if !(a.is_number() && b.is_number()) {
        charge(size_of(&a).saturating_add(size_of(&b)))?;
    }
    // Two strings: joined, as minijinja's `+` does; anything else goes through it.
    if let Some((x, y)) = both_str(&a, &b) {
        return Ok(Value::from([x, y].concat()));
    }
    eval_expr("a + b", minijinja::context! { a, b })
}

/// Longest run of digits in a format string (a width or precision).
fn widest_field(fmt: &str) -> usize {
    fmt.split(|c: char| !c.is_ascii_digit())
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0)
}

/// What `name` applied to `v` with `args` may build at most, checked before it runs.
fn predicted(name: &str, v: &Value, args: &[Value]) -> Result<usize, Error> {
    let arg_str = |i: usize| args.get(i).map(|a| a.to_string()).unwrap_or_default();
    let base = size_of(v);
    Ok(match name {
        "replace" => {
            let s = v.to_string();
            let (from, to) = (arg_str(0), arg_str(1));
            if to.len() <= from.len() {
                s.len()
            } else {
                let n = if from.is_empty() {
                    s.chars().count() + 1
                } else {
                    s.matches(from.as_str()).count()
                };
                s.len()
                    .saturating_add(n.saturating_mul(to.len() - from.len()))
            }
        }
        "join" => {
            let sep = args.first().filter(|a| a.as_str().is_some()).map(size_of);
            let n = v.len().unwrap_or(0);
            let items: usize = v
                .try_iter()
                .map(|it| it.map(|x| size_of(&x).max(8)).sum())
                .unwrap_or(0);
            items.saturating_add(n.saturating_mul(sep.unwrap_or(0)))
        }
        "indent" => {
            let width = args
                .first()
                .map(|w| as_count(w).unwrap_or_else(|| size_of(w)))
                .unwrap_or(4);
            let lines = v.as_str().map(|s| s.lines().count() + 1).unwrap_or(1);
            base.saturating_add(lines.saturating_mul(width))
        }
        "batch" | "slice" => {
            let count = args.first().and_then(as_count).unwrap_or(0);
            base.saturating_add(count.saturating_mul(16))
        }
        "tojson" => {
            let indent = args.iter().filter_map(as_count).max().unwrap_or(0);
            if indent > 64 {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson indent above 64 is refused",
                ));
            }
            base.saturating_mul(2)
        }
        "format" => {
            let w = widest_field(&v.to_string());
            if w > 100_000 {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("format field width {w} is refused (at most 100000)"),
                ));
            }
            base.saturating_add(w.saturating_mul(args.len().max(1)))
        }
        "escape" | "e" | "urlencode" => base.saturating_mul(6),
        _ => base,
    })
}

macro_rules! guarded_filter {
    ($env:ident, $name:literal) => {
        $env.add_filter(
            $name,
            |_state: &State,
             v: Value,
             args: Rest<Value>,
             kwargs: Kwargs|
             -> Result<Value, Error> {
                let mut all = args.0;
                for key in kwargs.args() {
                    all.push(kwargs.peek::<Value>(key)?);
                }
                charge(predicted($name, &v, &all)?)?;
                let named = kwargs.args().count();
                all.truncate(all.len() - named);
                let expr = if named == 0 {
                    concat!("v|", $name, "(*args)")
                } else {
                    concat!("v|", $name, "(*args, **kwargs)")
                };
                eval_expr(
                    expr,
                    minijinja::context! { v, args => Value::from(all), kwargs => Value::from(kwargs) },
                )
            },
        );
    };
}

/// Methods of strings (minijinja-contrib pycompat) that may grow a value.
fn guarded_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if value.as_str().is_some() && matches!(method, "replace" | "join" | "format") {
        let p = match method {
            // "sep".join(items): the items are the argument
            "join" => predicted(
                "join",
                args.first().unwrap_or(&Value::UNDEFINED),
                std::slice::from_ref(value),
            )?,
            other => predicted(other, value, args)?,
        };
        charge(p)?;
    }
    let out = minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)?;
    Ok(out)
}

/// Installs the checked operators, filters and methods into `env`.
pub fn install(env: &mut Environment<'static>) {
    env.add_function("__tycho_mul", op_mul);
    env.add_function("__tycho_cat", op_cat);
    env.add_function("__tycho_add", op_add);
    guarded_filter!(env, "replace");
    guarded_filter!(env, "join");
    guarded_filter!(env, "indent");
    guarded_filter!(env, "batch");
    guarded_filter!(env, "slice");
    guarded_filter!(env, "tojson");
    guarded_filter!(env, "format");
    guarded_filter!(env, "escape");
    guarded_filter!(env, "e");
    guarded_filter!(env, "urlencode");
    env.set_unknown_method_callback(guarded_method);
}

/// `source` with every `*`, `+` and `~` turned into a checked call (unchanged when it has
/// none); a syntax error is returned as minijinja reports it.
pub fn guard_source(source: &str) -> Result<Cow<'_, str>, Error> {
    if !source.contains(['*', '+', '~']) {
        return Ok(Cow::Borrowed(source));
    }
    let ast = minijinja::machinery::parse(source, "<template>", Default::default())?;
    let mut ops = Vec::new();
    walk_stmt(&ast, &mut ops);
    if ops.is_empty() {
        return Ok(Cow::Borrowed(source));
    }
    ops.sort_by_key(|o| (o.whole.0, std::cmp::Reverse(o.whole.1)));
    Ok(Cow::Owned(rewrite(source, &ops, 0, source.len())))
}

struct Op {
    func: &'static str,
    whole: (usize, usize),
    left: (usize, usize),
    right: (usize, usize),
}

fn range(s: Span) -> (usize, usize) {
    (s.start_offset as usize, s.end_offset as usize)
}

/// Source range of an expression: a filter's or test's span starts at its name, so
/// postfix nodes are widened to the operand they apply to.
fn extent(e: &Expr<'_>) -> (usize, usize) {
    let own = range(e.span());
    let inner = match e {
        Expr::Filter(f) => f.expr.as_ref().map(extent),
        Expr::Test(t) => Some(extent(&t.expr)),
        Expr::GetAttr(g) => Some(extent(&g.expr)),
        Expr::GetItem(g) => Some(extent(&g.expr)),
        Expr::Call(c) => Some(extent(&c.expr)),
        Expr::Slice(s) => Some(extent(&s.expr)),
        Expr::BinOp(b) => {
            let (l, r) = (extent(&b.left), extent(&b.right));
            Some((l.0.min(r.0), l.1.max(r.1)))
        }
        Expr::Compare(c) => Some(extent(&c.expr)),
        _ => None,
    };
    match inner {
        Some(i) => (own.0.min(i.0), own.1.max(i.1)),
        None => own,
    }
}

fn rewrite(src: &str, ops: &[Op], lo: usize, hi: usize) -> String {
    let mut out = String::with_capacity(hi - lo + 16);
    let mut pos = lo;
    let first = ops.partition_point(|o| o.whole.0 < lo);
    for op in &ops[first..] {
        if op.whole.0 >= hi {
            break;
        }
        if op.whole.0 < pos || op.whole.1 > hi {
            continue;
        }
        out.push_str(&src[pos..op.whole.0]);
        out.push_str(op.func);
        out.push('(');
        out.push_str(&rewrite(src, ops, op.left.0, op.left.1));
        out.push_str(", ");
        out.push_str(&rewrite(src, ops, op.right.0, op.right.1));
        out.push(')');
        pos = op.whole.1;
    }
    out.push_str(&src[pos..hi]);
    out
}

fn walk_body(body: &[Stmt<'_>], ops: &mut Vec<Op>) {
    for s in body {
        walk_stmt(s, ops);
    }
}

fn walk_stmt(s: &Stmt<'_>, ops: &mut Vec<Op>) {
    match s {
        Stmt::Template(t) => walk_body(&t.children, ops),
        Stmt::EmitExpr(e) => walk_expr(&e.expr, ops),
        Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
        Stmt::ForLoop(f) => {
            walk_expr(&f.target, ops);
            walk_expr(&f.iter, ops);
            if let Some(e) = &f.filter_expr {
                walk_expr(e, ops);
            }
            walk_body(&f.body, ops);
            walk_body(&f.else_body, ops);
        }
        Stmt::IfCond(c) => {
            walk_expr(&c.expr, ops);
            walk_body(&c.true_body, ops);
            walk_body(&c.false_body, ops);
        }
        Stmt::WithBlock(w) => {
            for (a, b) in &w.assignments {
                walk_expr(a, ops);
                walk_expr(b, ops);
            }
            walk_body(&w.body, ops);
        }
        Stmt::Set(x) => {
            walk_expr(&x.target, ops);
            walk_expr(&x.expr, ops);
        }
        Stmt::SetBlock(x) => {
            if let Some(f) = &x.filter {
                walk_expr(f, ops);
            }
            walk_body(&x.body, ops);
        }
        Stmt::AutoEscape(a) => {
            walk_expr(&a.enabled, ops);
            walk_body(&a.body, ops);
        }
        Stmt::FilterBlock(f) => {
            walk_expr(&f.filter, ops);
            walk_body(&f.body, ops);
        }
        Stmt::Block(b) => walk_body(&b.body, ops),
        Stmt::Import(i) => {
            walk_expr(&i.expr, ops);
        }
        Stmt::FromImport(i) => walk_expr(&i.expr, ops),
        Stmt::Extends(e) => walk_expr(&e.name, ops),
        Stmt::Include(i) => walk_expr(&i.name, ops),
        Stmt::Macro(m) => walk_macro(m, ops),
        Stmt::CallBlock(c) => {
            walk_call(&c.call, ops);
            walk_macro(&c.macro_decl, ops);
        }
        Stmt::Do(d) => walk_call(&d.call, ops),
    }
}

fn walk_macro(m: &ast::Macro<'_>, ops: &mut Vec<Op>) {
    for d in &m.defaults {
        walk_expr(d, ops);
    }
    walk_body(&m.body, ops);
}

fn walk_call(c: &ast::Call<'_>, ops: &mut Vec<Op>) {
    walk_expr(&c.expr, ops);
    walk_args(&c.args, ops);
}

fn walk_args(args: &[CallArg<'_>], ops: &mut Vec<Op>) {
    for a in args {
        match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => walk_expr(e, ops),
        }
    }
}

fn walk_expr(e: &Expr<'_>, ops: &mut Vec<Op>) {
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            walk_expr(&s.expr, ops);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                walk_expr(part, ops);
            }
        }
        Expr::UnaryOp(u) => walk_expr(&u.expr, ops),
        Expr::BinOp(b) => {
            let func = match b.op {
                BinOpKind::Mul => Some("__tycho_mul"),
                BinOpKind::Add => Some("__tycho_add"),
                BinOpKind::Concat => Some("__tycho_cat"),
                _ => None,
            };
            if let Some(func) = func {
                ops.push(Op {
                    func,
                    whole: extent(e),
                    left: extent(&b.left),
                    right: extent(&b.right),
                });
            }
            walk_expr(&b.left, ops);
            walk_expr(&b.right, ops);
        }
        Expr::Compare(c) => {
            walk_expr(&c.expr, ops);
            for op in &c.ops {
                walk_expr(&op.expr, ops);
            }
        }
        Expr::IfExpr(i) => {
            walk_expr(&i.test_expr, ops);
            walk_expr(&i.true_expr, ops);
            if let Some(f) = &i.false_expr {
                walk_expr(f, ops);
            }
        }
        Expr::Filter(f) => {
            if let Some(x) = &f.expr {
                walk_expr(x, ops);
            }
            walk_args(&f.args, ops);
        }
        Expr::Test(t) => {
            walk_expr(&t.expr, ops);
            walk_args(&t.args, ops);
        }
        Expr::GetAttr(g) => walk_expr(&g.expr, ops),
        Expr::GetItem(g) => {
            walk_expr(&g.expr, ops);
            walk_expr(&g.subscript_expr, ops);
        }
        Expr::Call(c) => walk_call(c, ops),
        Expr::List(l) => l.items.iter().for_each(|i| walk_expr(i, ops)),
        Expr::Tuple(t) => t.items.iter().for_each(|i| walk_expr(i, ops)),
        Expr::Map(m) => {
            m.keys.iter().for_each(|i| walk_expr(i, ops));
            m.values.iter().for_each(|i| walk_expr(i, ops));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_keep_meaning() {
        for (src, want) in [
            ("{{ 1+2 }}", "{{ __tycho_add(1, 2) }}"),
            ("{{ x|length * 2 }}", "{{ __tycho_mul(x|length, 2) }}"),
            ("{{ (a ~ b).upper() }}", "{{ (__tycho_cat(a, b)).upper() }}"),
            ("{{ (1+2)*3 }}", "{{ __tycho_mul(__tycho_add(1, 2), 3) }}"),
            ("{{ a*b*c }}", "{{ __tycho_mul(__tycho_mul(a, b), c) }}"),
            ("{{ -2*3 }}", "{{ __tycho_mul(-2, 3) }}"),
            (
                "{{ a|f(1) ~ b is x ~ c }}",
                "{{ __tycho_cat(__tycho_cat(a|f(1), b is x), c) }}",
            ),
            ("{{ a.b[1] + c(2)|d }}", "{{ __tycho_add(a.b[1], c(2)|d) }}"),
            (
                "{{ a ~ b ~ n + 1 }}",
                "{{ __tycho_add(__tycho_cat(__tycho_cat(a, b), n), 1) }}",
            ),
        ] {
            assert_eq!(guard_source(src).unwrap(), want, "{src}");
        }
    }
}
