//! Strategic merge patch.
//!
//! kube-fake-client 0.3 applies `application/strategic-merge-patch+json` as a
//! plain RFC 7396 merge (lists replaced wholesale). The list strategies of the
//! Kubernetes schema (containers merged by `name`, ports by `containerPort`,
//! ownerReferences by `uid`, ...) are known to k8s-openapi, whose generated
//! `DeepMerge` impls encode `x-kubernetes-patch-merge-key` / list-map keys.
//! So: RFC 7396 merge (json-patch crate) for scalars, maps and `null`
//! deletions, then a typed `DeepMerge` of that result onto the current object
//! so that keyed lists merge instead of being replaced.
//!
//! Not handled: `$patch`, `$retainKeys`, `$setElementOrder/...`,
//! `$deleteFromPrimitiveList/...` directives (stripped), and `null` inside
//! list items (cannot delete a field of a merged list item).

use k8s_openapi_028::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service},
    networking::v1::NetworkPolicy,
};
use k8s_openapi_028::DeepMerge;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn typed_merge<T>(current: &Value, merged: &Value) -> Option<Value>
where
    T: DeserializeOwned + Serialize + DeepMerge,
{
    let mut base: T = serde_json::from_value(current.clone()).ok()?;
    let over: T = serde_json::from_value(merged.clone()).ok()?;
    base.merge_from(over);
    serde_json::to_value(base).ok()
}

/// Remove `$...` directive keys; collect object paths whose patch value is
/// `null` (field deletions) that are reachable without crossing a list.
fn strip(patch: &Value, path: &mut Vec<String>, nulls: &mut Vec<Vec<String>>) -> Value {
    match patch {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    let mut p = path.clone();
                    p.push(k.clone());
                    nulls.push(p);
                }
                path.push(k.clone());
                out.insert(k.clone(), strip(v, path, nulls));
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            // Paths below a list are not tracked (no list index semantics).
            let mut ignored = Vec::new();
            Value::Array(
                items
                    .iter()
                    .filter(|i| {
                        // `{"$patch": "delete", ...}` items: cannot be honoured
                        // by a plain merge; drop them rather than insert them.
                        i.get("$patch").and_then(Value::as_str) != Some("delete")
                    })
                    .map(|i| strip(i, &mut Vec::new(), &mut ignored))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(obj) = cur.as_object_mut() {
        obj.remove(last.as_str());
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Option<Value> {
    serde_json::to_value(serde_json::from_value::<T>(v.clone()).ok()?).ok()
}

/// Drop fields the schema does not know (the API server's default
/// field validation, "Warn", drops them), by a typed round trip through
/// k8s-openapi. Objects that do not decode are kept as they are.
pub fn prune_unknown_fields(group: &str, kind: &str, v: &mut Value) {
    let typed = match (group, kind) {
        ("apps", "Deployment") => roundtrip::<Deployment>(v),
        ("apps", "ReplicaSet") => roundtrip::<ReplicaSet>(v),
        ("", "Pod") => roundtrip::<Pod>(v),
        ("", "Service") => roundtrip::<Service>(v),
        ("", "Secret") => roundtrip::<Secret>(v),
        ("", "ConfigMap") => roundtrip::<ConfigMap>(v),
        ("", "PersistentVolumeClaim") => roundtrip::<PersistentVolumeClaim>(v),
        ("networking.k8s.io", "NetworkPolicy") => roundtrip::<NetworkPolicy>(v),
        _ => None,
    };
    if let Some(t) = typed {
        *v = t;
    }
}

/// Keys whose values are maps of resource.Quantity.
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "overhead",
];

/// The API server accepts JSON numbers for quantities (`"cpu": 1`) and
/// stores them as strings (`"1"`); typed clients (k8s-openapi) only read
/// strings. Canonicalise the same way.
pub fn normalize_quantities(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if QUANTITY_MAPS.contains(&k.as_str()) {
                    if let Value::Object(q) = child {
                        for qv in q.values_mut() {
                            if let Value::Number(n) = qv {
                                *qv = Value::String(n.to_string());
                            }
                        }
                    }
                }
                normalize_quantities(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_quantities),
        _ => {}
    }
}

/// Keys whose values are `map[string]string` in the Kubernetes schema.
const STRING_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "selector",
    "nodeSelector",
    "data",
    "stringData",
];

/// The API server decodes JSON `null` inside a `map[string]string` as ""
/// (Go's encoding/json), e.g. a template rendering `conn_string: ` into a
/// label. kube-fake-client rejects such metadata, typed clients cannot read
/// it back: store "" like the API server does.
pub fn normalize_null_strings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if STRING_MAPS.contains(&k.as_str()) {
                    if let Value::Object(m) = child {
                        let plain = !m.contains_key("matchLabels")
                            && !m.contains_key("matchExpressions")
                            && m.values().all(|x| x.is_string() || x.is_null());
                        if plain {
                            for x in m.values_mut() {
                                if x.is_null() {
                                    *x = Value::String(String::new());
                                }
                            }
                        }
                    }
                }
                normalize_null_strings(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_null_strings),
        _ => {}
    }
}

/// Apply a strategic merge patch to `current` (an object of `group`/`kind`).
pub fn strategic_merge(group: &str, kind: &str, current: &Value, patch: &Value) -> Value {
    let mut nulls = Vec::new();
    let mut clean = strip(patch, &mut Vec::new(), &mut nulls);
    normalize_quantities(&mut clean);
    let mut current = current.clone();
    normalize_quantities(&mut current);
    let current = &current;
    let mut merged = current.clone();
    json_patch::merge(&mut merged, &clean);
    let typed = match (group, kind) {
        ("apps", "Deployment") => typed_merge::<Deployment>(current, &merged),
        ("apps", "ReplicaSet") => typed_merge::<ReplicaSet>(current, &merged),
        ("", "Pod") => typed_merge::<Pod>(current, &merged),
        ("", "Service") => typed_merge::<Service>(current, &merged),
        ("", "Secret") => typed_merge::<Secret>(current, &merged),
        ("", "ConfigMap") => typed_merge::<ConfigMap>(current, &merged),
        ("", "PersistentVolumeClaim") => typed_merge::<PersistentVolumeClaim>(current, &merged),
        ("networking.k8s.io", "NetworkPolicy") => typed_merge::<NetworkPolicy>(current, &merged),
        _ => None,
    };
    let mut out = typed.unwrap_or(merged);
    for p in &nulls {
        remove_path(&mut out, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default", "labels": {"a": "1", "b": "2"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [
                        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
                        {"name": "side", "image": "busybox"}
                    ]}
                }
            }
        })
    }

    #[test]
    fn containers_merge_by_name() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2"}
        ]}}}});
        let out = strategic_merge("apps", "Deployment", &dep(), &patch);
        let cs = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["image"], "nginx:2");
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(cs[1]["name"], "side");
    }

    #[test]
    fn null_deletes_and_scalars_replace() {
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 3}});
        let out = strategic_merge("apps", "Deployment", &dep(), &patch);
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(out["spec"]["replicas"], 3);
    }

    #[test]
    fn numeric_quantities_merge_into_named_container() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "resources": {"limits": {"cpu": 1, "memory": "1G"}}}
        ]}}}});
        let out = strategic_merge("apps", "Deployment", &dep(), &patch);
        let cs = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(
            cs[0]["resources"]["limits"],
            json!({"cpu": "1", "memory": "1G"})
        );
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
    }

    #[test]
    fn null_label_values_become_empty_strings() {
        let mut v = json!({"metadata": {"labels": {"a": null, "b": "x"}},
                           "spec": {"selector": {"matchLabels": {"a": null}, "matchExpressions": null}}});
        normalize_null_strings(&mut v);
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"a": "", "b": "x"}},
                             "spec": {"selector": {"matchLabels": {"a": ""}, "matchExpressions": null}}})
        );
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let mut v = dep();
        v["resourceversion"] = json!("v1");
        v["spec"]["template"]["spec"]["containers"][0]["bogus"] = json!(1);
        prune_unknown_fields("apps", "Deployment", &mut v);
        assert!(v.get("resourceversion").is_none());
        assert!(v["spec"]["template"]["spec"]["containers"][0]
            .get("bogus")
            .is_none());
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1"
        );
    }

    #[test]
    fn unknown_kind_is_plain_merge() {
        let cur = json!({"spec": {"l": [1, 2]}});
        let out = strategic_merge("x", "Y", &cur, &json!({"spec": {"l": [3]}}));
        assert_eq!(out, json!({"spec": {"l": [3]}}));
    }
}
