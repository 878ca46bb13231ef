//! Modifying a running system: labels of the pod template and cpu/memory (limits and
//! requests) of every container, as a strategic-merge patch rendered from
//! `patch.yaml` per Deployment. Checked before anything is sent; when a patch fails,
//! the Deployments already patched are put back as they were.

use super::client;
use super::retry;
use super::{check_label_value, err, GUID_LABEL, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use crate::text::names;
use crate::text::pyfmt::py_str;
use futures::future::join_all;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Map, Value};

const KIND: ErrorKind = ErrorKind::Modify;

/// Applies a modify request (blocking). See [`modify_async`].
pub fn modify(config: &Value, request: &Value, namespace: Option<&str>) -> Result<Value> {
    client::block_on(KIND, modify_async(config, request, namespace))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63 of
/// `[A-Za-z0-9-_.]` starting and ending alphanumeric.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(names::is_dns_subdomain) && !name.is_empty() && names::is_label_value(name)
}

/// Labels tycho selects a system's objects by (status, delete, the Deployment's and
/// Services' selectors): modify refuses to change them on the pod template.
pub(crate) const RESERVED_LABELS: &[&str] = &[GUID_LABEL, "username", "executor", "name"];

/// The checked request: GUID, labels and resources with string values.
struct Request {
    guid: String,
    labels: Map<String, Value>,
    resources: Map<String, Value>,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) => Some(py_str(v)),
        _ => None,
    }
}

fn check(request: &Value) -> Result<Request> {
    let guid = request
        .get("guid")
        .or_else(|| request.get(GUID_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if guid.is_empty() {
        return Err(err(KIND, "Failed to modify system: no GUID given"));
    }
    check_label_value(KIND, "GUID", &guid)?;
    let mapping = |field: &str| -> Result<Map<String, Value>> {
        match request.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(other) => Err(err(
                KIND,
                format!("modify {field} must be a mapping, got {other}"),
            )),
        }
    };
    let mut labels = Map::new();
    for (key, value) in mapping("labels")? {
        if !is_label_key(&key) {
            return Err(err(
                KIND,
                format!("label key {key:?} is not a valid Kubernetes label key"),
            ));
        }
        if RESERVED_LABELS.contains(&key.as_str()) {
            return Err(err(
                KIND,
                format!(
                    "Failed to modify system: label {key:?} is reserved (tycho selects the system's objects by {}); it cannot be modified",
                    RESERVED_LABELS.join(", ")
                ),
            ));
        }
        let text = scalar_text(&value).ok_or_else(|| {
            err(
                KIND,
                format!("label {key:?}: value {value} is not a string"),
            )
        })?;
        if !names::is_label_value(&text) {
            return Err(err(
                KIND,
                format!("label {key:?}: value {text:?} is not a valid Kubernetes label value (at most 63 characters of A-Z, a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit)"),
            ));
        }
        labels.insert(key, Value::String(text));
    }
    let mut resources = Map::new();
    for (key, value) in mapping("resources")? {
        if value.is_null() {
            continue;
        }
        if !is_label_key(&key) {
            return Err(err(KIND, format!("resource name {key:?} is not valid")));
        }
        let text = scalar_text(&value)
            .filter(|t| names::is_quantity(t))
            .ok_or_else(|| {
                err(
                    KIND,
                    format!("{key} {value} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi, 250M)"),
                )
            })?;
        resources.insert(key, Value::String(text));
    }
    Ok(Request {
        guid,
        labels,
        resources,
    })
}

/// What a patch changes, as it was before: the pod template's labels named by the patch
/// (null when absent) and the containers.
fn revert_patch(deployment: &Value, request: &Request) -> Value {
    let mut template = Map::new();
    if !request.labels.is_empty() {
        let current = deployment.pointer("/spec/template/metadata/labels");
        let labels: Map<String, Value> = request
            .labels
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    current
                        .and_then(|l| l.get(k))
                        .cloned()
                        .unwrap_or(Value::Null),
                )
            })
            .collect();
        template.insert("metadata".into(), json!({ "labels": labels }));
    }
    if !request.resources.is_empty() {
        let containers = deployment
            .pointer("/spec/template/spec/containers")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        template.insert("spec".into(), json!({ "containers": containers }));
    }
    json!({"spec": {"template": template}})
}

/// Applies `request` (`tycho.model.ModifySystem.to_dict()`: guid, labels, resources) to
/// the Deployments labelled with its GUID and returns `{"patches": [...]}`. Errors are
/// `ErrorKind::Modify` and name the value or the API server's message.
pub async fn modify_async(
    config: &Value,
    request: &Value,
    namespace: Option<&str>,
) -> Result<Value> {
    let request = check(request)?;
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let timeout = settings.operation_timeout;
    let guid = request.guid.clone();
    let cache = super::cache::namespace(&settings, &connection, &namespace);
    let work = run(
        config,
        &request,
        &connection.client,
        &namespace,
        cache.as_deref(),
    );
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(err(
            KIND,
            format!(
                "Failed to modify system {guid}: timed out after {timeout:?} (TYCHO_KUBE_TIMEOUT)"
            ),
        )),
    }
}

async fn run(
    config: &Value,
    request: &Request,
    client: &kube::Client,
    namespace: &str,
    cache: Option<&super::cache::Namespace>,
) -> Result<Value> {
    let guid = &request.guid;
    // Read your own writes: a patched (or reverted) Deployment as the server answered.
    let wrote = |object: &DynamicObject| {
        if let (Some(cache), Ok(value)) = (cache, serde_json::to_value(object)) {
            cache.deployments.wrote(value);
        }
    };
    let fail = |message: String| err(KIND, format!("Failed to modify system {guid}: {message}"));
    let api = super::Kind::Deployment.api(client, namespace);
    let selector = format!("{GUID_LABEL}={guid}");
    let what = format!("deployments labelled {selector}");
    let params = ListParams::default().labels(&selector);
    let list = retry::idempotent(&what, || api.list(&params))
        .await
        .map_err(|e| fail(format!("cannot list {what}: {e}")))?;
    if list.items.is_empty() {
        return Err(err(
            KIND,
            format!("no system with GUID {guid} in namespace {namespace} (no Deployment labelled {selector})"),
        ));
    }
    let paths = crate::config::template_paths(config);
    let patch_wanted = !request.labels.is_empty() || !request.resources.is_empty();
    let mut plans: Vec<(String, Value, Value)> = Vec::new(); // (name, patch, revert)
    for deployment in &list.items {
        let deployment: Value = serde_json::to_value(deployment).unwrap_or_default();
        let name = deployment
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let containers: Vec<Value> = deployment
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| json!({"name": c.get("name"), "image": c.get("image")}))
            .collect();
        let context = json!({"system_modify": {
            "guid": guid,
            "labels": request.labels,
            "resources": request.resources,
            "patch": patch_wanted,
            "containers": containers,
        }});
        let docs = crate::render::render(
            &paths,
            "patch.yaml",
            minijinja::Value::from(minijinja::value::Serde(&context)),
        )
        .map_err(|e| fail(e.message))?;
        let patch = docs
            .into_iter()
            .find(|d| !d.is_null())
            .unwrap_or_else(|| json!({}));
        plans.push((name, patch, revert_patch(&deployment, request)));
    }
    let patches: Vec<Value> = plans.iter().map(|(_, p, _)| p.clone()).collect();
    let to_send: Vec<&(String, Value, Value)> = plans
        .iter()
        .filter(|(_, p, _)| p.as_object().is_some_and(|m| !m.is_empty()))
        .collect();
    let results: Vec<std::result::Result<DynamicObject, super::KubeError>> =
        join_all(to_send.iter().map(|(name, patch, _)| {
            let api = &api;
            async move {
                let what = format!("Deployment {name:?}");
                let params = PatchParams::default();
                let body = Patch::Strategic(patch);
                retry::idempotent(&what, || api.patch(name, &params, &body)).await
            }
        }))
        .await;
    let problems: Vec<String> = to_send
        .iter()
        .zip(&results)
        .filter_map(|((name, _, _), r)| {
            r.as_ref()
                .err()
                .map(|e| format!("cannot patch Deployment {name:?}: {e}"))
        })
        .collect();
    results.iter().flatten().for_each(wrote);
    if problems.is_empty() {
        log::info!(target: LOG_TARGET, "modified system {guid}: {} deployment(s)", to_send.len());
        return Ok(json!({ "patches": patches }));
    }
    // Put back every Deployment that was patched or may have been (a failure whose
    // outcome is unknown); one the server refused was not changed.
    log::warn!(target: LOG_TARGET, "modifying system {guid} failed: {}; reverting", problems.join("; "));
    let touched: Vec<&&(String, Value, Value)> = to_send
        .iter()
        .zip(&results)
        .filter(|(_, r)| match r {
            Ok(_) => true,
            Err(e) => e.transient(),
        })
        .map(|(plan, _)| plan)
        .collect();
    let reverts = join_all(touched.iter().map(|(name, _, revert)| {
        let api = &api;
        async move {
            let what = format!("Deployment {name:?}");
            let params = PatchParams::default();
            let body = Patch::Merge(revert);
            let r: std::result::Result<DynamicObject, super::KubeError> =
                retry::idempotent(&what, || api.patch(name, &params, &body)).await;
            r.as_ref().map(wrote).ok();
            r.map(|_| ())
                .map_err(|e| format!("cannot revert {what}: {e}"))
        }
    }))
    .await;
    let revert_problems: Vec<String> = reverts.into_iter().filter_map(|r| r.err()).collect();
    if revert_problems.is_empty() {
        Err(fail(format!(
            "{} (no change was kept)",
            problems.join("; ")
        )))
    } else {
        Err(fail(format!(
            "{}; putting the system back failed too: {}",
            problems.join("; "),
            revert_problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for k in ["a", "app-name", "example.com/x", "a.b_c"] {
            assert!(is_label_key(k), "{k}");
        }
        for k in ["", "/a", "a/", "Example.com/x", "a b", "-a", "a:b"] {
            assert!(!is_label_key(k), "{k}");
        }
    }

    #[test]
    fn checks_name_the_bad_value() {
        let e = check(&json!({"guid": "g", "resources": {"cpu": "lots"}}))
            .err()
            .unwrap();
        assert!(e.message.contains("lots"), "{}", e.message);
        let e = check(&json!({"guid": "g", "labels": {"a": "b c"}}))
            .err()
            .unwrap();
        assert!(e.message.contains("b c"), "{}", e.message);
        let e = check(&json!({"guid": "", "labels": {}})).err().unwrap();
        assert!(e.message.contains("GUID"));
        let ok = check(
            &json!({"guid": "g", "labels": {"a": "b"}, "resources": {"cpu": 1, "memory": "1G"}}),
        )
        .unwrap();
        assert_eq!(ok.resources["cpu"], "1");
    }

    #[test]
    fn reserved_labels_are_refused_by_name() {
        for key in ["tycho-guid", "username", "executor", "name"] {
            let e = check(&json!({"guid": "g", "labels": {"a": "b", key: "x"}}))
                .err()
                .unwrap();
            assert_eq!(e.kind, KIND);
            assert!(
                e.message.contains(&format!("label {key:?} is reserved")),
                "{}",
                e.message
            );
        }
        assert!(check(&json!({"guid": "g", "labels": {"app-name": "renamed"}})).is_ok());
    }

    #[test]
    fn revert_restores_labels_and_containers() {
        let d = json!({"spec": {"template": {"metadata": {"labels": {"a": "old"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let r = check(
            &json!({"guid": "g", "labels": {"a": "new", "b": "x"}, "resources": {"cpu": "1"}}),
        )
        .unwrap();
        let p = revert_patch(&d, &r);
        assert_eq!(
            p["spec"]["template"]["metadata"]["labels"],
            json!({"a": "old", "b": null})
        );
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c", "image": "i"}])
        );
    }
}
