//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`,
//! `/apis/{group}/{version}`), rendered from kube-fake-client's generated
//! Kubernetes discovery tables (plural, kind, scope, verbs, short names,
//! subresources of every built-in resource).

use kube_fake_client::gen::discovery as d;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUBRESOURCES: &[&str] = &["status", "scale", "log", "exec", "eviction", "binding"];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-kube-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// Group name -> versions, in the order the discovery table lists them.
fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut g: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for (group, version, _, _) in d::list_resources() {
        if group.is_empty() {
            continue;
        }
        let vs = g.entry(group).or_default();
        if !vs.contains(version) {
            vs.push(version);
        }
    }
    g
}

fn group_doc(name: &str, versions: &[&str]) -> Value {
    // Prefer a GA version when there is one.
    let preferred = versions
        .iter()
        .find(|v| !v.contains("alpha") && !v.contains("beta"))
        .or(versions.first())
        .copied()
        .unwrap_or("v1");
    json!({
        "name": name,
        "versions": versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect::<Vec<_>>(),
        "preferredVersion": {"groupVersion": format!("{name}/{preferred}"), "version": preferred},
    })
}

pub fn api_groups() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(n, vs)| group_doc(n, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(name: &str) -> Option<Value> {
    let g = groups();
    let vs = g.get(name)?;
    let mut doc = group_doc(name, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for (g, v, kind, plural) in d::list_resources() {
        if *g != group || *v != version {
            continue;
        }
        let namespaced = d::is_namespaced(g, v, kind).unwrap_or(true);
        let verbs: Vec<&str> = VERBS
            .iter()
            .copied()
            .filter(|verb| d::supports_verb(g, v, kind, verb))
            .collect();
        let mut r = json!({
            "name": plural,
            "singularName": d::get_singular(g, v, kind).unwrap_or(""),
            "namespaced": namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        let short = d::get_short_names(g, v, kind);
        if !short.is_empty() {
            r["shortNames"] = json!(short);
        }
        resources.push(r);
        for sub in SUBRESOURCES {
            if d::has_subresource(g, v, kind, sub) {
                let (sub_kind, sub_verbs) = match *sub {
                    "scale" => ("Scale", vec!["get", "patch", "update"]),
                    "status" => (*kind, vec!["get", "patch", "update"]),
                    _ => (*kind, vec!["get"]),
                };
                resources.push(json!({
                    "name": format!("{plural}/{sub}"),
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": sub_kind,
                    "verbs": sub_verbs,
                }));
            }
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
