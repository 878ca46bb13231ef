//! What the cluster's controllers would write, on request of the control
//! API: a deployment's status, and a ReplicaSet with Running/Ready pods
//! owned by it.

use super::{meta_str, now_rfc3339, random_suffix, store_response, App, RespBody};
use crate::store::StoreResponse;
use bytes::Bytes;
use http::{Method, Response};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

impl App {
    pub(super) async fn set_deployment_status(
        &self,
        ns: &str,
        name: &str,
        input: &Value,
    ) -> Response<RespBody> {
        let _guard = self.rmw.lock().await;
        let dep_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let dep = self.store.get(&dep_path).await;
        if !dep.ok() {
            return store_response(dep);
        }
        let dep = dep.body;
        let spec_replicas = dep
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let get_i = |k: &str| input.get(k).and_then(Value::as_i64);
        let replicas = get_i("replicas").unwrap_or(spec_replicas);
        let ready = get_i("readyReplicas").unwrap_or(replicas);
        let available = get_i("availableReplicas").unwrap_or(ready);
        let updated = get_i("updatedReplicas").unwrap_or(replicas);
        let mut status = json!({
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "updatedReplicas": updated,
            "observedGeneration": get_i("observedGeneration")
                .or_else(|| dep.pointer("/metadata/generation").and_then(Value::as_i64))
                .unwrap_or(1),
        });
        status["unavailableReplicas"] = if replicas - available > 0 {
            json!(replicas - available)
        } else {
            Value::Null // merge patch: remove
        };
        let now = now_rfc3339();
        status["conditions"] = match input.get("conditions") {
            Some(c) => c.clone(),
            None => {
                let avail = available >= spec_replicas;
                json!([
                    {"type": "Available", "status": if avail {"True"} else {"False"},
                     "reason": if avail {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"},
                     "message": if avail {"Deployment has minimum availability."} else {"Deployment does not have minimum availability."},
                     "lastUpdateTime": now, "lastTransitionTime": now},
                    {"type": "Progressing", "status": "True",
                     "reason": if avail {"NewReplicaSetAvailable"} else {"ReplicaSetUpdated"},
                     "message": format!("ReplicaSet \"{name}\" is progressing."),
                     "lastUpdateTime": now, "lastTransitionTime": now}
                ])
            }
        };
        // Any other camelCase status fields given are passed through.
        if let Some(obj) = input.as_object() {
            for (k, v) in obj {
                if !["pods", "conditions"].contains(&k.as_str()) && status.get(k).is_none() {
                    status[k] = v.clone();
                }
            }
        }
        let patch = json!({"status": status});
        let r = self
            .send(
                Method::PATCH,
                &format!("{dep_path}/status"),
                Some("application/merge-patch+json"),
                Bytes::from(patch.to_string()),
            )
            .await;
        if !r.ok() {
            return store_response(r);
        }
        if input.get("pods").and_then(Value::as_bool) == Some(true) {
            if let Err(resp) = self.sync_pods(ns, name, &dep, ready).await {
                return store_response(resp);
            }
        }
        store_response(r)
    }

    /// A ReplicaSet owned by the deployment and `ready` Running pods owned by
    /// it (so ownerReferences cascades reach them when the deployment goes).
    pub(super) async fn sync_pods(
        &self,
        ns: &str,
        name: &str,
        dep: &Value,
        ready: i64,
    ) -> Result<(), StoreResponse> {
        let template = dep.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash: String = {
            let mut h: u64 = 1469598103934665603;
            for b in template.to_string().bytes() {
                h = (h ^ b as u64).wrapping_mul(1099511628211);
            }
            const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            (0..10)
                .map(|i| A[((h >> (i * 6)) % A.len() as u64) as usize] as char)
                .collect()
        };
        let rs_name = format!("{name}-{hash}");
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let dep_uid = meta_str(dep, "uid").unwrap_or("").to_string();
        let rs_path = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
        let mut rs = self.store.get(&format!("{rs_path}/{rs_name}")).await;
        if !rs.ok() {
            let selector = dep.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            let mut sel = selector.clone();
            sel["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"] = labels.clone();
            let body = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                          "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {"replicas": ready, "selector": sel, "template": tpl},
                "status": {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready, "fullyLabeledReplicas": ready}
            });
            rs = self
                .send(
                    Method::POST,
                    &rs_path,
                    Some("application/json"),
                    Bytes::from(body.to_string()),
                )
                .await;
            if !rs.ok() {
                return Err(rs);
            }
        }
        let rs_uid = meta_str(&rs.body, "uid").unwrap_or("").to_string();
        let pods_path = format!("/api/v1/namespaces/{ns}/pods");
        let existing = self.store.get(&pods_path).await;
        let mut owned: Vec<String> = existing
            .body
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter(|p| {
                        p.pointer("/metadata/ownerReferences")
                            .and_then(Value::as_array)
                            .is_some_and(|refs| {
                                refs.iter().any(|r| {
                                    r.get("uid").and_then(Value::as_str) == Some(rs_uid.as_str())
                                })
                            })
                    })
                    .filter_map(|p| meta_str(p, "name").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        owned.sort();
        let ready = ready.max(0) as usize;
        while owned.len() > ready {
            let victim = owned.pop().unwrap();
            let _ = self
                .send(
                    Method::DELETE,
                    &format!("{pods_path}/{victim}"),
                    None,
                    Bytes::new(),
                )
                .await;
        }
        let now = now_rfc3339();
        for _ in owned.len()..ready {
            let n = self.next_pod_ip.fetch_add(1, Ordering::SeqCst);
            let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 1);
            let spec = template
                .get("spec")
                .cloned()
                .unwrap_or(json!({"containers": []}));
            let statuses: Vec<Value> = spec
                .get("containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            json!({
                                "name": c.get("name"), "image": c.get("image"), "imageID": "",
                                "ready": true, "started": true, "restartCount": 0,
                                "state": {"running": {"startedAt": now}}
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut spec = spec;
            spec["nodeName"] = json!("kube-emulator-node");
            let body = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": format!("{rs_name}-{}", random_suffix(5)), "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                          "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": spec,
                "status": {
                    "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                    "startTime": now, "qosClass": "BestEffort",
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
                    ],
                    "containerStatuses": statuses
                }
            });
            let r = self
                .send(
                    Method::POST,
                    &pods_path,
                    Some("application/json"),
                    Bytes::from(body.to_string()),
                )
                .await;
            if !r.ok() {
                return Err(r);
            }
        }
        Ok(())
    }
}
