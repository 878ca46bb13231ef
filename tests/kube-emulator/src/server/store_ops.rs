//! Store operations: the API server semantics added in front of the
//! kube-fake-client store for create (defaults, generateName, allocations),
//! replace, patch (strategic merge, merge, JSON patch), status-preserving
//! writes, the `scale` subresource and list finishing (order, list
//! resourceVersion).

use super::routes::ApiPath;
use super::{meta_str, now_rfc3339, random_suffix, rv_of, App};
use crate::smp;
use crate::store::{status_body, status_error, StoreResponse};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

impl App {
    /// Deterministic order (namespace, name) and a meaningful list
    /// resourceVersion (the fake answers "1" always): the newest version
    /// handed out before the list began (`before`), or an item's if newer.
    /// Writes are serialised and take their version after the store holds
    /// them, so every event up to it is in the list: a watch from it has no
    /// gap.
    ///
    /// Pages as the API server does: `limit` cuts the list and gives a `continue`
    /// token (the list's resourceVersion and the last key served) and
    /// `remainingItemCount`; a request with that token answers the items after
    /// the key, with the first page's resourceVersion (a watch from it replays
    /// every write since, so nothing between the pages is lost). A token that
    /// does not decode is a 400.
    pub(super) fn finish_list(
        &self,
        r: &mut StoreResponse,
        before: u64,
        limit: Option<&str>,
        continue_token: Option<&str>,
    ) -> Result<(), StoreResponse> {
        let key = |o: &Value| {
            format!(
                "{}/{}",
                meta_str(o, "namespace").unwrap_or_default(),
                meta_str(o, "name").unwrap_or_default()
            )
        };
        let mut max_rv = before;
        let mut resume: Option<(u64, String)> = None;
        if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
            resume = Some(decode_continue(token).ok_or_else(|| {
                status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "continue key is not valid: the token does not decode",
                )
            })?);
        }
        let limit = limit
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let mut page: Option<(String, usize)> = None;
        if let Some(items) = r.body.get_mut("items").and_then(Value::as_array_mut) {
            items.sort_by(|a, b| {
                (meta_str(a, "namespace"), meta_str(a, "name"))
                    .cmp(&(meta_str(b, "namespace"), meta_str(b, "name")))
            });
            for i in items.iter() {
                max_rv = max_rv.max(rv_of(i));
            }
            if let Some((_, after)) = &resume {
                items.retain(|o| key(o).as_str() > after.as_str());
            }
            if let Some(n) = limit {
                if items.len() > n {
                    let remaining = items.len() - n;
                    items.truncate(n);
                    page = Some((key(&items[n - 1]), remaining));
                }
            }
        }
        let list_rv = resume.as_ref().map_or(max_rv, |(rv, _)| *rv);
        let mut metadata = json!({"resourceVersion": list_rv.to_string()});
        if let Some((last, remaining)) = page {
            metadata["continue"] = json!(encode_continue(list_rv, &last));
            metadata["remainingItemCount"] = json!(remaining);
        }
        r.body["metadata"] = metadata;
        Ok(())
    }

    pub(super) async fn create(
        &self,
        api: &ApiPath,
        fwd_query: &str,
        body: Bytes,
    ) -> StoreResponse {
        let mut obj = match decode_object(&body) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        if let Some(ns) = &api.namespace {
            match meta_str(&obj, "namespace") {
                Some(bns) if !bns.is_empty() && bns != ns => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        }
        if meta_str(&obj, "name").is_none_or(str::is_empty) {
            match meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
                Some(prefix) => {
                    let name = format!("{prefix}{}", random_suffix(5));
                    obj["metadata"]["name"] = json!(name);
                }
                None => {
                    let kind_group = if api.group.is_empty() {
                        api.kind.to_string()
                    } else {
                        format!("{}.{}", api.kind, api.group)
                    };
                    let mut b = status_body(
                        422,
                        "Invalid",
                        &format!("{kind_group} \"\" is invalid: metadata.name: Required value: name or generateName is required"),
                    );
                    b["details"] = json!({
                        "group": api.group, "kind": api.kind,
                        "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]
                    });
                    return StoreResponse {
                        status: StatusCode::UNPROCESSABLE_ENTITY,
                        body: b,
                    };
                }
            }
        }
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(api.api_version());
        }
        if obj.get("kind").is_none() {
            obj["kind"] = json!(api.kind);
        }
        self.apply_create_defaults(api, &mut obj);
        smp::normalize_quantities(&mut obj);
        smp::normalize_null_strings(&mut obj);
        smp::prune_unknown_fields(&api.group, api.kind, &mut obj);
        let path = if fwd_query.is_empty() {
            api.collection_path()
        } else {
            format!("{}?{}", api.collection_path(), fwd_query)
        };
        let mut r = self
            .send(
                Method::POST,
                &path,
                Some("application/json"),
                Bytes::from(obj.to_string()),
            )
            .await;
        if r.status == StatusCode::CONFLICT {
            // Real message: deployments.apps "x" already exists
            if let Some(name) = meta_str(&obj, "name") {
                r.body["message"] = json!(format!(
                    "{} \"{}\" already exists",
                    api.group_resource(),
                    name
                ));
                r.body["details"] = json!({"name": name, "group": api.group, "kind": api.resource});
            }
        }
        r
    }

    /// The few server-side defaults/allocations clients read back.
    pub(super) fn apply_create_defaults(&self, api: &ApiPath, obj: &mut Value) {
        match (api.group.as_str(), api.kind) {
            ("apps", "Deployment") | ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
                if obj.pointer("/spec/replicas").is_none()
                    && obj.get("spec").is_some_and(Value::is_object)
                {
                    obj["spec"]["replicas"] = json!(1);
                }
                let r = obj
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                // Status is the server's: what the controllers report right
                // after creation (nothing ready yet) until the test says
                // otherwise through /__emulator/deployments/.../status.
                obj["status"] = if api.kind == "Deployment" && r > 0 {
                    let now = now_rfc3339();
                    let name = meta_str(obj, "name").unwrap_or("").to_string();
                    json!({
                        "observedGeneration": 1, "replicas": r, "updatedReplicas": r,
                        "unavailableReplicas": r,
                        "conditions": [
                            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                             "message": "Deployment does not have minimum availability.",
                             "lastUpdateTime": now, "lastTransitionTime": now},
                            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                             "message": format!("ReplicaSet \"{name}\" is progressing."),
                             "lastUpdateTime": now, "lastTransitionTime": now}
                        ]
                    })
                } else if api.kind == "Deployment" {
                    json!({"observedGeneration": 1})
                } else {
                    json!({"replicas": 0})
                };
            }
            ("", "PersistentVolumeClaim") => obj["status"] = json!({"phase": "Pending"}),
            ("", "Pod") => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
            ("", "Secret") => secret_string_data(obj),
            ("", "Service") => {
                if !obj.get("spec").is_some_and(Value::is_object) {
                    obj["spec"] = json!({});
                }
                let spec = &mut obj["spec"];
                let ty = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                if spec.get("type").is_none() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec.get("clusterIP").is_none() && ty != "ExternalName" {
                    let n = self.next_cluster_ip.fetch_add(1, Ordering::SeqCst);
                    let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                    spec["clusterIP"] = json!(ip);
                    spec["clusterIPs"] = json!([ip]);
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            if p.get("nodePort").is_none() {
                                let n = self.next_node_port.fetch_add(1, Ordering::SeqCst);
                                p["nodePort"] = json!(30000 + (n % 2768));
                            }
                        }
                    }
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if p.get("protocol").is_none() {
                            p["protocol"] = json!("TCP");
                        }
                        if p.get("targetPort").is_none() {
                            if let Some(port) = p.get("port").cloned() {
                                p["targetPort"] = port;
                            }
                        }
                    }
                }
                let lb = match self.lb_ip.lock().unwrap().clone() {
                    Some(ip) if ty == "LoadBalancer" => json!({"ingress": [{"ip": ip}]}),
                    _ => json!({}),
                };
                obj["status"] = json!({"loadBalancer": lb});
            }
            _ => {}
        }
    }

    pub(super) async fn replace(&self, api: &ApiPath, path: &str, body: Bytes) -> StoreResponse {
        let mut obj = match decode_object(&body) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let name = api.name.as_deref().unwrap_or("");
        match meta_str(&obj, "name") {
            Some(n) if !n.is_empty() && n != name => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                )
            }
            _ => obj["metadata"]["name"] = json!(name),
        }
        if let Some(ns) = &api.namespace {
            match meta_str(&obj, "namespace") {
                Some(bns) if !bns.is_empty() && bns != ns => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        }
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(api.api_version());
        }
        if obj.get("kind").is_none() {
            obj["kind"] = json!(api.kind);
        }
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        self.write(api, path, obj, &current.body).await
    }

    /// PATCH (all but server-side apply): read, compute the patched object
    /// (strategic merge: smp.rs; merge and JSON patch: the json-patch crate,
    /// as kube-fake-client itself does), write back through `write`.
    pub(super) async fn patch(
        &self,
        api: &ApiPath,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> StoreResponse {
        let patch: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("error decoding patch: {e}"),
                )
            }
        };
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        let current_rv = meta_str(&current.body, "resourceVersion")
            .unwrap_or("")
            .to_string();
        let conflict = || {
            status_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    api.group_resource(),
                    api.name.as_deref().unwrap_or("")
                ),
            )
        };
        let mut new = if content_type.starts_with("application/json-patch+json") {
            let ops: json_patch::Patch = match serde_json::from_value(patch) {
                Ok(p) => p,
                Err(e) => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid JSON patch: {e}"),
                    )
                }
            };
            let mut doc = current.body.clone();
            if let Err(e) = json_patch::patch(&mut doc, &ops) {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!("the JSON patch could not be applied: {e}"),
                );
            }
            doc
        } else {
            if !patch.is_object() {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "a merge patch must be a JSON object",
                );
            }
            if let Some(want) = meta_str(&patch, "resourceVersion") {
                if !want.is_empty() && want != current_rv {
                    return conflict();
                }
            }
            if content_type.starts_with("application/merge-patch+json") {
                let mut doc = current.body.clone();
                json_patch::merge(&mut doc, &patch);
                doc
            } else {
                // application/strategic-merge-patch+json (the default)
                smp::strategic_merge(&api.group, api.kind, &current.body, &patch)
            }
        };
        if !new.is_object() {
            return status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "the patched object is not an object",
            );
        }
        // Identity fields are the server's, not the patch's.
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = json!({});
        }
        for f in ["name", "namespace", "uid", "creationTimestamp"] {
            match current.body.get("metadata").and_then(|m| m.get(f)) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().map(|m| m.remove(f));
                }
            }
        }
        if meta_str(&new, "resourceVersion").is_none_or(str::is_empty) {
            new["metadata"]["resourceVersion"] = json!(current_rv);
        }
        self.write(api, path, new, &current.body).await
    }

    /// Store an updated object via the fake's update. A write that leaves
    /// .spec unchanged goes through the status path with the current status
    /// so that metadata.generation does not move (the fake bumps it on every
    /// non-status update; the API server only when the spec changes).
    pub(super) async fn write(
        &self,
        api: &ApiPath,
        path: &str,
        mut new: Value,
        current: &Value,
    ) -> StoreResponse {
        if api.group.is_empty() && api.kind == "Secret" {
            secret_string_data(&mut new);
        }
        smp::normalize_quantities(&mut new);
        smp::normalize_null_strings(&mut new);
        smp::prune_unknown_fields(&api.group, api.kind, &mut new);
        let status_write = api.sub.as_deref() == Some("status");
        if !status_write && new.get("spec") == current.get("spec") {
            match current.get("status") {
                Some(st) => new["status"] = st.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
            let status_path = format!("{}/status", api.object_path());
            return self
                .send(
                    Method::PUT,
                    &status_path,
                    Some("application/json"),
                    Bytes::from(new.to_string()),
                )
                .await;
        }
        self.send(
            Method::PUT,
            path,
            Some("application/json"),
            Bytes::from(new.to_string()),
        )
        .await
    }

    /// The `scale` subresource of deployments, replicasets and statefulsets
    /// (autoscaling/v1 Scale), mapped onto spec.replicas.
    pub(super) async fn scale(
        &self,
        api: &ApiPath,
        method: &Method,
        content_type: &str,
        body: Bytes,
    ) -> StoreResponse {
        if !matches!(api.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let to_scale = |obj: &Value| {
            let sel = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {
                    "name": meta_str(obj, "name"), "namespace": meta_str(obj, "namespace"),
                    "uid": meta_str(obj, "uid"), "resourceVersion": meta_str(obj, "resourceVersion"),
                    "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
                },
                "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
                "status": {
                    "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                    "selector": sel.unwrap_or_default(),
                }
            })
        };
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        if *method == Method::GET {
            return StoreResponse {
                status: StatusCode::OK,
                body: to_scale(&current.body),
            };
        }
        let input: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("error decoding body: {e}"),
                )
            }
        };
        let mut scale = to_scale(&current.body);
        if *method == Method::PUT {
            scale = input;
        } else if content_type.starts_with("application/json-patch+json") {
            let ops: json_patch::Patch = match serde_json::from_value(input) {
                Ok(p) => p,
                Err(e) => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid JSON patch: {e}"),
                    )
                }
            };
            if let Err(e) = json_patch::patch(&mut scale, &ops) {
                return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e.to_string());
            }
        } else {
            json_patch::merge(&mut scale, &input);
        }
        let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
            return status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.replicas: Required value",
            );
        };
        let mut new = current.body.clone();
        new["spec"]["replicas"] = json!(replicas);
        let plain = ApiPath {
            sub: None,
            ..api.clone()
        };
        let r = self
            .write(&plain, &api.object_path(), new, &current.body)
            .await;
        if r.ok() {
            StoreResponse {
                status: r.status,
                body: to_scale(&r.body),
            }
        } else {
            r
        }
    }
}

/// The API server folds Secret.stringData into .data (base64) on write.
pub(super) fn secret_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(sd) = sd.as_object() else { return };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let raw = v.as_str().unwrap_or("");
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
    }
}

/// Decodes a request body that must be a JSON object and ensures it has a `metadata` map.
#[allow(clippy::result_large_err)]
pub(super) fn decode_object(body: &[u8]) -> Result<Value, StoreResponse> {
    let mut obj: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body must be a JSON object",
            ))
        }
        Err(e) => {
            return Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("error decoding body: {e}"),
            ))
        }
    };
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}

/// A list's `continue` token: base64 of `{"rv": N, "start": "<namespace>/<name>"}`.
fn encode_continue(rv: u64, start: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json!({"rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("start")?.as_str()?.to_string(),
    ))
}
