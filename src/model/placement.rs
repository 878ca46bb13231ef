//! Where a system's pod runs and what it may pull: the pod spec fields `nodeSelector`,
//! `tolerations`, `affinity`, `priorityClassName`, `runtimeClassName` and
//! `imagePullSecrets`, with Kubernetes' own names and shapes, under a `placement` key.
//!
//! They come from, in increasing precedence: the configuration
//! (`tycho.compute.placement`), the start request's system (`placement` beside
//! `services`: where the registry puts its context's and app's placement, see
//! `crate::registry::placement`), and the compose services' `deploy.placement.constraints`,
//! converted as Kompose converts them ([`from_constraints`]). Each source is checked
//! ([`check`]) and merged over the one before with the registry's rule
//! ([`crate::registry::deep_merge`]): mappings merge key by key, lists and scalars are
//! replaced.

use super::warning::Warnings;
use crate::error::{Error, Result};
use crate::limits::{echo, echo_value};
use crate::text::names;
use serde_json::{json, Map, Value};

/// The fields a placement may hold.
pub const FIELDS: &[&str] = &[
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "runtimeClassName",
    "imagePullSecrets",
];

/// Most entries a placement list (tolerations, terms, expressions, values) may hold.
const MAX_ITEMS: usize = 256;

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63 of
/// `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    !name.is_empty() && names::is_label_value(name) && prefix.is_none_or(names::is_dns_subdomain)
}

/// Where a placement comes from: names it in errors (`what`) and gives the request
/// path errors point at (`path`).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// E.g. "configuration tycho.compute.placement".
    pub what: &'a str,
    /// E.g. "system.placement" (a field path into the request), "" for the configuration.
    pub path: &'a str,
}

struct Checker<'a> {
    source: Source<'a>,
}

impl Checker<'_> {
    fn fail(&self, at: &str, why: String) -> Error {
        let err = Error::input(format!(
            "placement ({}): {} {why}",
            self.source.what,
            echo(at)
        ));
        if self.source.path.is_empty() {
            err
        } else {
            err.at(format!("{}.{at}", self.source.path))
        }
    }

    fn mapping<'v>(&self, at: &str, v: &'v Value) -> Result<&'v Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.fail(at, format!("must be a mapping, got {}", echo_value(v))))
    }

    fn list<'v>(&self, at: &str, v: &'v Value) -> Result<&'v Vec<Value>> {
        let items = v
            .as_array()
            .ok_or_else(|| self.fail(at, format!("must be a list, got {}", echo_value(v))))?;
        if items.len() > MAX_ITEMS {
            return Err(self.fail(at, format!("has more than {MAX_ITEMS} entries")));
        }
        Ok(items)
    }

    fn keys(&self, at: &str, m: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
        match m.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.fail(
                &format!("{at}.{k}"),
                format!("is not a field here (use {})", allowed.join(", ")),
            )),
        }
    }

    fn string(&self, at: &str, v: &Value) -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(self.fail(at, format!("must be a string, got {}", echo_value(other)))),
        }
    }

    fn label_key(&self, at: &str, v: &Value) -> Result<String> {
        let key = self.string(at, v)?;
        if is_qualified_name(&key) {
            Ok(key)
        } else {
            Err(self.fail(
                at,
                format!("{} is not a valid Kubernetes label key", echo_value(v)),
            ))
        }
    }

    fn label_value(&self, at: &str, v: &Value) -> Result<String> {
        let value = self.string(at, v)?;
        if names::is_label_value(&value) {
            Ok(value)
        } else {
            Err(self.fail(
                at,
                format!("{} is not a valid Kubernetes label value", echo_value(v)),
            ))
        }
    }

    fn dns_name(&self, at: &str, v: &Value) -> Result<String> {
        let name = self.string(at, v)?;
        if names::is_dns_subdomain(&name) {
            Ok(name)
        } else {
            Err(self.fail(
                at,
                format!(
                    "{} is not a valid Kubernetes object name (lowercase letters, digits, '-' and '.')",
                    echo_value(v)
                ),
            ))
        }
    }

    fn int(&self, at: &str, v: &Value, range: std::ops::RangeInclusive<i64>) -> Result<i64> {
        v.as_i64().filter(|n| range.contains(n)).ok_or_else(|| {
            self.fail(
                at,
                format!(
                    "must be a whole number from {} to {}, got {}",
                    range.start(),
                    range.end(),
                    echo_value(v)
                ),
            )
        })
    }

    fn one_of(&self, at: &str, v: &Value, allowed: &[&str]) -> Result<String> {
        let text = self.string(at, v)?;
        if allowed.contains(&text.as_str()) {
            Ok(text)
        } else {
            Err(self.fail(
                at,
                format!("{} must be one of {}", echo_value(v), allowed.join(", ")),
            ))
        }
    }

    fn node_selector(&self, at: &str, v: &Value) -> Result<Value> {
        let mut out = Map::new();
        for (k, value) in self.mapping(at, v)? {
            let here = format!("{at}.{k}");
            let key = self.label_key(&here, &Value::String(k.clone()))?;
            out.insert(key, Value::String(self.label_value(&here, value)?));
        }
        Ok(Value::Object(out))
    }

    fn tolerations(&self, at: &str, v: &Value) -> Result<Value> {
        let mut out = Vec::new();
        for (i, t) in self.list(at, v)?.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let m = self.mapping(&here, t)?;
            self.keys(
                &here,
                m,
                &["key", "operator", "value", "effect", "tolerationSeconds"],
            )?;
            let mut entry = Map::new();
            if let Some(k) = m.get("key").filter(|k| !k.is_null()) {
                entry.insert(
                    "key".into(),
                    Value::String(self.label_key(&format!("{here}.key"), k)?),
                );
            }
            let operator = match m.get("operator").filter(|o| !o.is_null()) {
                Some(o) => {
                    Some(self.one_of(&format!("{here}.operator"), o, &["Exists", "Equal"])?)
                }
                None => None,
            };
            if let Some(o) = &operator {
                entry.insert("operator".into(), Value::String(o.clone()));
            }
            if let Some(value) = m.get("value").filter(|v| !v.is_null()) {
                if operator.as_deref() == Some("Exists") {
                    return Err(self.fail(
                        &format!("{here}.value"),
                        "must be empty when the operator is Exists".into(),
                    ));
                }
                entry.insert(
                    "value".into(),
                    Value::String(self.label_value(&format!("{here}.value"), value)?),
                );
            }
            if !entry.contains_key("key") && operator.as_deref() != Some("Exists") {
                return Err(self.fail(&here, "needs a key unless its operator is Exists".into()));
            }
            if let Some(e) = m.get("effect").filter(|e| !e.is_null()) {
                entry.insert(
                    "effect".into(),
                    Value::String(self.one_of(
                        &format!("{here}.effect"),
                        e,
                        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                    )?),
                );
            }
            if let Some(s) = m.get("tolerationSeconds").filter(|s| !s.is_null()) {
                let at_s = format!("{here}.tolerationSeconds");
                entry.insert(
                    "tolerationSeconds".into(),
                    json!(self.int(&at_s, s, i64::MIN..=i64::MAX)?),
                );
                if entry.get("effect").and_then(Value::as_str) != Some("NoExecute") {
                    return Err(self.fail(&at_s, "needs the effect NoExecute".into()));
                }
            }
            out.push(Value::Object(entry));
        }
        Ok(Value::Array(out))
    }

    fn requirements(&self, at: &str, v: &Value, fields: bool) -> Result<()> {
        for (i, r) in self.list(at, v)?.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let m = self.mapping(&here, r)?;
            self.keys(&here, m, &["key", "operator", "values"])?;
            let key = m.get("key").unwrap_or(&Value::Null);
            if fields {
                self.one_of(
                    &format!("{here}.key"),
                    key,
                    &["metadata.name", "metadata.namespace"],
                )?;
            } else {
                self.label_key(&format!("{here}.key"), key)?;
            }
            let operator = self.one_of(
                &format!("{here}.operator"),
                m.get("operator").unwrap_or(&Value::Null),
                &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"],
            )?;
            let values = match m.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => self.list(&format!("{here}.values"), v)?.clone(),
            };
            for (j, value) in values.iter().enumerate() {
                let at_v = format!("{here}.values[{j}]");
                if !value.is_string() {
                    return Err(self.fail(
                        &at_v,
                        format!("must be a string, got {}", echo_value(value)),
                    ));
                }
            }
            let wants = match operator.as_str() {
                "In" | "NotIn" => !values.is_empty(),
                "Exists" | "DoesNotExist" => values.is_empty(),
                _ => values.len() == 1,
            };
            if !wants {
                return Err(self.fail(
                    &format!("{here}.values"),
                    format!("does not fit the operator {operator} (In and NotIn take values, Exists and DoesNotExist none, Gt and Lt one)"),
                ));
            }
        }
        Ok(())
    }

    fn node_term(&self, at: &str, v: &Value) -> Result<()> {
        let m = self.mapping(at, v)?;
        self.keys(at, m, &["matchExpressions", "matchFields"])?;
        if let Some(e) = m.get("matchExpressions").filter(|e| !e.is_null()) {
            self.requirements(&format!("{at}.matchExpressions"), e, false)?;
        }
        if let Some(f) = m.get("matchFields").filter(|f| !f.is_null()) {
            self.requirements(&format!("{at}.matchFields"), f, true)?;
        }
        Ok(())
    }

    fn label_selector(&self, at: &str, v: &Value) -> Result<()> {
        let m = self.mapping(at, v)?;
        self.keys(at, m, &["matchLabels", "matchExpressions"])?;
        if let Some(l) = m.get("matchLabels").filter(|l| !l.is_null()) {
            self.node_selector(&format!("{at}.matchLabels"), l)?;
        }
        if let Some(e) = m.get("matchExpressions").filter(|e| !e.is_null()) {
            for (i, r) in self
                .list(&format!("{at}.matchExpressions"), e)?
                .iter()
                .enumerate()
            {
                let here = format!("{at}.matchExpressions[{i}]");
                let rm = self.mapping(&here, r)?;
                if let Some(op) = rm.get("operator") {
                    self.one_of(
                        &format!("{here}.operator"),
                        op,
                        &["In", "NotIn", "Exists", "DoesNotExist"],
                    )?;
                }
            }
            self.requirements(&format!("{at}.matchExpressions"), e, false)?;
        }
        Ok(())
    }

    fn pod_term(&self, at: &str, v: &Value) -> Result<()> {
        let m = self.mapping(at, v)?;
        self.keys(
            at,
            m,
            &[
                "labelSelector",
                "namespaceSelector",
                "namespaces",
                "topologyKey",
                "matchLabelKeys",
                "mismatchLabelKeys",
            ],
        )?;
        self.label_key(
            &format!("{at}.topologyKey"),
            m.get("topologyKey").unwrap_or(&Value::Null),
        )?;
        for key in ["labelSelector", "namespaceSelector"] {
            if let Some(s) = m.get(key).filter(|s| !s.is_null()) {
                self.label_selector(&format!("{at}.{key}"), s)?;
            }
        }
        for key in ["namespaces", "matchLabelKeys", "mismatchLabelKeys"] {
            if let Some(items) = m.get(key).filter(|s| !s.is_null()) {
                for (i, item) in self.list(&format!("{at}.{key}"), items)?.iter().enumerate() {
                    self.label_key(&format!("{at}.{key}[{i}]"), item)?;
                }
            }
        }
        Ok(())
    }

    fn weighted(&self, at: &str, v: &Value, term: &str, node: bool) -> Result<()> {
        for (i, w) in self.list(at, v)?.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let m = self.mapping(&here, w)?;
            self.keys(&here, m, &["weight", term])?;
            self.int(
                &format!("{here}.weight"),
                m.get("weight").unwrap_or(&Value::Null),
                1..=100,
            )?;
            let t = m.get(term).unwrap_or(&Value::Null);
            if node {
                self.node_term(&format!("{here}.{term}"), t)?;
            } else {
                self.pod_term(&format!("{here}.{term}"), t)?;
            }
        }
        Ok(())
    }

    fn affinity(&self, at: &str, v: &Value) -> Result<Value> {
        const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
        const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";
        let m = self.mapping(at, v)?;
        self.keys(at, m, &["nodeAffinity", "podAffinity", "podAntiAffinity"])?;
        if let Some(node) = m.get("nodeAffinity").filter(|n| !n.is_null()) {
            let here = format!("{at}.nodeAffinity");
            let n = self.mapping(&here, node)?;
            self.keys(&here, n, &[REQUIRED, PREFERRED])?;
            if let Some(r) = n.get(REQUIRED).filter(|r| !r.is_null()) {
                let at_r = format!("{here}.{REQUIRED}");
                let rm = self.mapping(&at_r, r)?;
                self.keys(&at_r, rm, &["nodeSelectorTerms"])?;
                let terms = self.list(
                    &format!("{at_r}.nodeSelectorTerms"),
                    rm.get("nodeSelectorTerms").unwrap_or(&Value::Null),
                )?;
                if terms.is_empty() {
                    return Err(self.fail(
                        &format!("{at_r}.nodeSelectorTerms"),
                        "must hold at least one term".into(),
                    ));
                }
                for (i, t) in terms.iter().enumerate() {
                    self.node_term(&format!("{at_r}.nodeSelectorTerms[{i}]"), t)?;
                }
            }
            if let Some(p) = n.get(PREFERRED).filter(|p| !p.is_null()) {
                self.weighted(&format!("{here}.{PREFERRED}"), p, "preference", true)?;
            }
        }
        for kind in ["podAffinity", "podAntiAffinity"] {
            if let Some(pod) = m.get(kind).filter(|p| !p.is_null()) {
                let here = format!("{at}.{kind}");
                let p = self.mapping(&here, pod)?;
                self.keys(&here, p, &[REQUIRED, PREFERRED])?;
                if let Some(r) = p.get(REQUIRED).filter(|r| !r.is_null()) {
                    let at_r = format!("{here}.{REQUIRED}");
                    for (i, t) in self.list(&at_r, r)?.iter().enumerate() {
                        self.pod_term(&format!("{at_r}[{i}]"), t)?;
                    }
                }
                if let Some(w) = p.get(PREFERRED).filter(|w| !w.is_null()) {
                    self.weighted(&format!("{here}.{PREFERRED}"), w, "podAffinityTerm", false)?;
                }
            }
        }
        Ok(v.clone())
    }

    fn pull_secrets(&self, at: &str, v: &Value) -> Result<Value> {
        let mut out = Vec::new();
        for (i, s) in self.list(at, v)?.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let m = self.mapping(&here, s).map_err(|_| {
                self.fail(
                    &here,
                    format!(
                        "must be a mapping {{name: <secret>}} (Kubernetes' shape), got {}",
                        echo_value(s)
                    ),
                )
            })?;
            self.keys(&here, m, &["name"])?;
            let name = self.dns_name(
                &format!("{here}.name"),
                m.get("name").unwrap_or(&Value::Null),
            )?;
            out.push(json!({ "name": name }));
        }
        Ok(Value::Array(out))
    }
}

/// Checks a placement (`null` is none) and returns it with its values in the form the
/// pod spec takes (label values as strings). An unknown field, a value of the wrong
/// shape or an invalid name is an input error naming `source`, the field and the value.
pub fn check(source: Source<'_>, v: &Value) -> Result<Map<String, Value>> {
    let c = Checker { source };
    let m = match v {
        Value::Null => return Ok(Map::new()),
        other => c.mapping("placement", other).map_err(|_| {
            Error::input(format!(
                "placement ({}) must be a mapping of {}, got {}",
                source.what,
                FIELDS.join(", "),
                echo_value(other)
            ))
        })?,
    };
    let mut out = Map::new();
    for (key, value) in m {
        if value.is_null() {
            continue;
        }
        let checked = match key.as_str() {
            "nodeSelector" => c.node_selector(key, value)?,
            "tolerations" => c.tolerations(key, value)?,
            "affinity" => c.affinity(key, value)?,
            "priorityClassName" | "runtimeClassName" => Value::String(c.dns_name(key, value)?),
            "imagePullSecrets" => c.pull_secrets(key, value)?,
            other => {
                return Err(c.fail(
                    other,
                    format!("is not a placement field (use {})", FIELDS.join(", ")),
                ))
            }
        };
        out.insert(key.clone(), checked);
    }
    Ok(out)
}

/// `base` with `addition` merged over it: mappings merge key by key, lists and
/// scalars are replaced (the registry's rule).
pub fn merge(base: Map<String, Value>, addition: Map<String, Value>) -> Map<String, Value> {
    match crate::registry::deep_merge(Value::Object(base), Value::Object(addition)) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A compose constraint's node attribute as a Kubernetes node label key, as Kompose
/// maps it (`node.labels.<key>` is the label itself); None when there is none.
fn constraint_key(attribute: &str) -> Option<String> {
    match attribute {
        "node.hostname" => Some("kubernetes.io/hostname".into()),
        "node.platform.os" | "engine.labels.operatingsystem" => Some("kubernetes.io/os".into()),
        "node.platform.arch" => Some("kubernetes.io/arch".into()),
        _ => attribute
            .strip_prefix("node.labels.")
            .filter(|k| is_qualified_name(k))
            .map(String::from),
    }
}

/// The `deploy.placement` of the compose services as a placement, as Kompose converts
/// it: each `<attribute> == <value>` constraint a nodeSelector entry, each
/// `<attribute> != <value>` a `NotIn` expression of a required node affinity. The
/// attributes are `node.labels.<key>`, `node.hostname` (kubernetes.io/hostname),
/// `node.platform.os` and `engine.labels.operatingsystem` (kubernetes.io/os) and
/// `node.platform.arch` (kubernetes.io/arch). Anything else (`node.role`, `node.id`,
/// `preferences`, a malformed constraint, a value that is no label value, a second
/// `==` of another value for the same key) is a warning and not converted.
pub fn from_constraints(
    services: &Map<String, Value>,
    warnings: &mut Warnings,
) -> Result<Map<String, Value>> {
    let mut selector = Map::new();
    let mut not_in: Vec<(String, Vec<String>)> = Vec::new();
    for (name, spec) in services {
        let Some(placement) = spec.get("deploy").and_then(|d| d.get("placement")) else {
            continue;
        };
        let placement = match placement {
            Value::Null => continue,
            Value::Object(m) => m,
            other => {
                return Err(Error::input(format!(
                    "service '{name}': deploy.placement must be a mapping, got {}",
                    echo_value(other)
                ))
                .at(format!("system.services.{name}.deploy.placement")))
            }
        };
        for key in placement.keys() {
            let dotted = format!("deploy.placement.{key}");
            match key.as_str() {
                "constraints" => {}
                "preferences" => warnings.push(
                    name,
                    &dotted,
                    "is ignored: a system runs one pod, there is nothing to spread (use an affinity in the registry's placement)",
                ),
                "max_replicas_per_node" => warnings.push(
                    name,
                    &dotted,
                    "is ignored: a system runs one pod; scale by starting more systems",
                ),
                _ => warnings.push(
                    name,
                    &dotted,
                    "is ignored: it is not a compose placement key (a typo?)",
                ),
            }
        }
        let constraints = match placement.get("constraints") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) if items.len() <= MAX_ITEMS => items,
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{name}': deploy.placement.constraints must be a list of at most {MAX_ITEMS} constraints, got {}",
                    echo_value(other)
                ))
                .at(format!("system.services.{name}.deploy.placement.constraints")))
            }
        };
        for c in constraints {
            let text = match c {
                Value::String(s) => s.as_str(),
                other => {
                    warnings.push(
                        name,
                        "deploy.placement.constraints",
                        format!(
                            "entry {} is not converted: a constraint is a string like 'node.labels.gpu == a100'",
                            echo_value(other)
                        ),
                    );
                    continue;
                }
            };
            let parsed = ["==", "!="]
                .iter()
                .find_map(|op| text.split_once(op).map(|(a, v)| (a.trim(), *op, v.trim())));
            let not_converted = |why: &str, warnings: &mut Warnings| {
                warnings.push(
                    name,
                    "deploy.placement.constraints",
                    format!("entry {} is not converted: {why}", echo(text)),
                );
            };
            let Some((attribute, op, value)) = parsed else {
                not_converted(
                    "it is not '<attribute> == <value>' nor '<attribute> != <value>'",
                    warnings,
                );
                continue;
            };
            let Some(key) = constraint_key(attribute) else {
                not_converted(
                    "Kubernetes has no such node attribute (use node.labels.<key>, node.hostname, node.platform.os or node.platform.arch)",
                    warnings,
                );
                continue;
            };
            if value.is_empty() || !names::is_label_value(value) {
                not_converted("the value is not a valid Kubernetes label value", warnings);
                continue;
            }
            if op == "==" {
                match selector.get(&key) {
                    Some(Value::String(existing)) if existing != value => not_converted(
                        &format!("another constraint already asks for {key} == {existing}"),
                        warnings,
                    ),
                    _ => {
                        selector.insert(key, Value::String(value.to_string()));
                    }
                }
            } else {
                match not_in.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => {
                        if !values.iter().any(|v| v == value) {
                            values.push(value.to_string());
                        }
                    }
                    None => not_in.push((key, vec![value.to_string()])),
                }
            }
        }
    }
    let mut out = Map::new();
    if !selector.is_empty() {
        out.insert("nodeSelector".into(), Value::Object(selector));
    }
    if !not_in.is_empty() {
        let expressions: Vec<Value> = not_in
            .into_iter()
            .map(|(key, values)| json!({"key": key, "operator": "NotIn", "values": values}))
            .collect();
        out.insert(
            "affinity".into(),
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }}}),
        );
    }
    Ok(out)
}

/// The placement of a system: the configuration's (`tycho.compute.placement`), then the
/// request's (`system.placement`), then the compose constraints, each merged over the
/// one before (see the module documentation).
pub fn resolve(
    config: &Value,
    doc: &Map<String, Value>,
    services: &Map<String, Value>,
    warnings: &mut Warnings,
) -> Result<Map<String, Value>> {
    let configured = check(
        Source {
            what: "configuration tycho.compute.placement",
            path: "",
        },
        crate::config::lookup(config, &["tycho", "compute", "placement"]).unwrap_or(&Value::Null),
    )?;
    let requested = check(
        Source {
            what: "the request's system.placement (the registry's)",
            path: "system.placement",
        },
        doc.get("placement").unwrap_or(&Value::Null),
    )?;
    let compose = from_constraints(services, warnings)?;
    Ok(merge(merge(configured, requested), compose))
}

/// The GPU resource name of the request (`system.gpu_resource`, the registry's app or
/// context `gpu_resource`), else `default` (TYCHO_APP_GPU_RESOURCE_NAME, `nvidia.com/gpu`).
pub fn gpu_resource(doc: &Map<String, Value>, default: &str) -> Result<String> {
    match doc.get("gpu_resource") {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) if is_qualified_name(s) && s.contains('/') => Ok(s.clone()),
        Some(other) => Err(Error::input(format!(
            "gpu_resource {} is not an extended resource name like nvidia.com/gpu or nvidia.com/mig-1g.5gb",
            echo_value(other)
        ))
        .at("system.gpu_resource")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: Source<'static> = Source {
        what: "test",
        path: "system",
    };

    #[test]
    fn checks_and_normalises() {
        let p = check(
            CONF,
            &json!({
                "nodeSelector": {"gpu": "a100", "zone/rack": 7},
                "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
                                {"operator": "Exists"},
                                {"key": "k", "effect": "NoExecute", "tolerationSeconds": 30}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}]}},
                    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                    [{"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                      "labelSelector": {"matchLabels": {"app": "x"}}}}]}},
                "priorityClassName": "high",
                "runtimeClassName": "nvidia",
                "imagePullSecrets": [{"name": "regcred"}],
                "nodeName": null
            }),
        )
        .unwrap();
        assert_eq!(p["nodeSelector"], json!({"gpu": "a100", "zone/rack": "7"}));
        assert_eq!(p["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(p.len(), 6);
        assert!(check(CONF, &Value::Null).unwrap().is_empty());
    }

    #[test]
    fn refuses_with_the_field() {
        for (bad, field, words) in [
            (json!({"nodeName": "n1"}), "system.nodeName", "not a placement field"),
            (json!({"nodeSelector": {"a b": "x"}}), "system.nodeSelector.a b", "label key"),
            (json!({"nodeSelector": {"a": "x y"}}), "system.nodeSelector.a", "label value"),
            (json!({"tolerations": {"key": "a"}}), "system.tolerations", "must be a list"),
            (json!({"tolerations": [{"key": "a", "effect": "Never"}]}), "system.tolerations[0].effect", "NoSchedule"),
            (json!({"tolerations": [{"value": "a"}]}), "system.tolerations[0]", "needs a key"),
            (json!({"tolerations": [{"key": "a", "operator": "Exists", "value": "v"}]}), "system.tolerations[0].value", "Exists"),
            (json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}),
             "system.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", "at least one"),
            (json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]}}}}),
             "system.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values", "operator In"),
            (json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "podAffinityTerm": {"topologyKey": "z"}}]}}}),
             "system.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "1 to 100"),
            (json!({"priorityClassName": "High!"}), "system.priorityClassName", "object name"),
            (json!({"imagePullSecrets": ["regcred"]}), "system.imagePullSecrets[0]", "{name: <secret>}"),
        ] {
            let e = check(CONF, &bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{bad}: {}", e.message);
            assert!(e.message.contains(words), "{bad}: {}", e.message);
        }
        let e = check(CONF, &json!(["x"])).unwrap_err();
        assert!(e.message.contains("must be a mapping"), "{}", e.message);
    }

    #[test]
    fn merge_rule() {
        let a = check(CONF, &json!({"nodeSelector": {"a": "1", "b": "2"}, "tolerations": [{"operator": "Exists"}], "priorityClassName": "low"})).unwrap();
        let b = check(CONF, &json!({"nodeSelector": {"b": "3"}, "tolerations": [{"key": "k", "operator": "Exists"}]})).unwrap();
        let m = merge(a, b);
        assert_eq!(m["nodeSelector"], json!({"a": "1", "b": "3"}));
        assert_eq!(
            m["tolerations"],
            json!([{"key": "k", "operator": "Exists"}])
        );
        assert_eq!(m["priorityClassName"], "low");
    }

    #[test]
    fn constraints_as_kompose_converts_them() {
        let services = json!({
            "a": {"deploy": {"placement": {"constraints": [
                "node.labels.gpu == a100", "node.hostname != n1", "node.hostname!=n2",
                "node.platform.os==linux", "node.role == manager", "bogus", 7]}}},
            "b": {"deploy": {"placement": {"constraints": ["node.labels.gpu == v100", "node.labels.zone != z 1"],
                                           "preferences": [{"spread": "node.labels.zone"}]}}},
            "c": {}
        });
        let mut w = Warnings::default();
        let p = from_constraints(services.as_object().unwrap(), &mut w).unwrap();
        assert_eq!(
            p["nodeSelector"],
            json!({"gpu": "a100", "kubernetes.io/os": "linux"})
        );
        assert_eq!(
            p["affinity"],
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n1", "n2"]}]}]}}})
        );
        let text: Vec<String> = w.as_slice().iter().map(|w| w.to_string()).collect();
        assert_eq!(text.len(), 6, "{text:#?}");
        for needle in [
            "node.role == manager",
            "entry bogus",
            "entry 7",
            "gpu == a100",
            "z 1",
            "preferences",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle}: {text:#?}"
            );
        }
        // the result is a valid placement
        check(CONF, &Value::Object(p)).unwrap();
    }

    #[test]
    fn precedence() {
        let config = json!({"tycho": {"compute": {"placement": {
            "nodeSelector": {"pool": "apps", "gpu": "any"}, "priorityClassName": "low",
            "imagePullSecrets": [{"name": "conf"}]}}}});
        let doc =
            json!({"placement": {"nodeSelector": {"gpu": "t4"}, "priorityClassName": "high"}});
        let services =
            json!({"s": {"deploy": {"placement": {"constraints": ["node.labels.gpu == a100"]}}}});
        let mut w = Warnings::default();
        let p = resolve(
            &config,
            doc.as_object().unwrap(),
            services.as_object().unwrap(),
            &mut w,
        )
        .unwrap();
        assert_eq!(p["nodeSelector"], json!({"pool": "apps", "gpu": "a100"}));
        assert_eq!(p["priorityClassName"], "high");
        assert_eq!(p["imagePullSecrets"], json!([{"name": "conf"}]));
        let bad = json!({"tycho": {"compute": {"placement": {"nodeSelector": []}}}});
        let e = resolve(&bad, &Map::new(), &Map::new(), &mut w).unwrap_err();
        assert!(
            e.message.contains("configuration tycho.compute.placement"),
            "{}",
            e.message
        );
    }

    #[test]
    fn gpu_resource_names() {
        let doc = |v: Value| json!({"gpu_resource": v}).as_object().unwrap().clone();
        assert_eq!(
            gpu_resource(&Map::new(), "nvidia.com/gpu").unwrap(),
            "nvidia.com/gpu"
        );
        assert_eq!(
            gpu_resource(&doc(json!("nvidia.com/mig-1g.5gb")), "x/y").unwrap(),
            "nvidia.com/mig-1g.5gb"
        );
        for bad in [json!("gpu"), json!("a b/c"), json!(3)] {
            assert!(gpu_resource(&doc(bad), "x/y").is_err());
        }
    }
}
