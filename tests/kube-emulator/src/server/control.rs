//! The `/__emulator/` control API: faults, latency, request log, reset,
//! object dump, deployment status, load-balancer ingress, shutdown.

use super::faults::Fault;
use super::{failure, json_response, meta_str, App, RespBody};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl App {
    pub(super) async fn control(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: Bytes,
    ) -> Response<RespBody> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(1).collect();
        let input: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return failure(400, "BadRequest", &format!("bad JSON: {e}")),
            }
        };
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["faults"]) => {
                let f: Vec<Value> = self
                    .faults
                    .lock()
                    .unwrap()
                    .iter()
                    .map(Fault::describe)
                    .collect();
                json_response(StatusCode::OK, &json!({"faults": f}))
            }
            ("POST", ["faults"]) => match self.add_fault(&input) {
                Ok(id) => json_response(StatusCode::OK, &json!({"id": id})),
                Err(e) => failure(400, "BadRequest", &e),
            },
            ("DELETE", ["faults"]) => {
                self.faults.lock().unwrap().clear();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("DELETE", ["faults", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                self.faults.lock().unwrap().retain(|f| f.id != id);
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("GET", ["latency"]) => json_response(
                StatusCode::OK,
                &json!({"latency_ms": self.latency_ms.load(Ordering::Relaxed)}),
            ),
            ("POST", ["latency"]) => {
                let ms = input.get("latency_ms").and_then(Value::as_u64).unwrap_or(0);
                self.latency_ms.store(ms, Ordering::Relaxed);
                json_response(StatusCode::OK, &json!({"latency_ms": ms}))
            }
            ("GET", ["requests"]) => {
                let r = self.requests.lock().unwrap().clone();
                json_response(StatusCode::OK, &json!({"requests": r}))
            }
            ("DELETE", ["requests"]) => {
                self.requests.lock().unwrap().clear();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("POST", ["reset"]) => {
                let _guard = self.rmw.lock().await;
                self.store.reset().await;
                self.record_reset();
                if input.get("store_only").and_then(Value::as_bool) != Some(true) {
                    self.faults.lock().unwrap().clear();
                    self.requests.lock().unwrap().clear();
                    self.latency_ms.store(0, Ordering::Relaxed);
                    self.watch_delay_ms.store(0, Ordering::Relaxed);
                    *self.lb_ip.lock().unwrap() = None;
                }
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("GET", ["objects"]) => json_response(StatusCode::OK, &self.dump_objects().await),
            ("POST", ["deployments", ns, name, "status"]) => {
                self.set_deployment_status(ns, name, &input).await
            }
            ("GET", ["loadbalancer"]) => json_response(
                StatusCode::OK,
                &json!({"ip": self.lb_ip.lock().unwrap().clone()}),
            ),
            ("POST", ["loadbalancer"]) => {
                let ip = input.get("ip").and_then(Value::as_str).map(str::to_string);
                *self.lb_ip.lock().unwrap() = ip.clone();
                let updated = self.apply_lb_ip(ip).await;
                json_response(StatusCode::OK, &json!({"ok": true, "updated": updated}))
            }
            ("GET", ["watch-delay"]) => json_response(
                StatusCode::OK,
                &json!({"ms": self.watch_delay_ms.load(Ordering::Relaxed)}),
            ),
            ("POST", ["watch-delay"]) => {
                let Some(ms) = input.get("ms").and_then(Value::as_u64) else {
                    return failure(400, "BadRequest", "body must be {\"ms\": N}");
                };
                self.watch_delay_ms.store(ms, Ordering::Relaxed);
                json_response(StatusCode::OK, &json!({"ms": ms}))
            }
            ("POST", ["watch-cut"]) => {
                let open = self.open_watches.load(Ordering::SeqCst);
                let _ = self.cut.send(());
                json_response(StatusCode::OK, &json!({"cut": open}))
            }
            ("POST", ["compact"]) => {
                let _guard = self.rmw.lock().await;
                let rv = self.store.current_rv();
                self.events.compact(rv);
                json_response(StatusCode::OK, &json!({"resourceVersion": rv.to_string()}))
            }
            ("GET", ["watches"]) => json_response(
                StatusCode::OK,
                &json!({"open": self.open_watches.load(Ordering::SeqCst)}),
            ),
            ("POST", ["shutdown"]) => {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    std::process::exit(0);
                });
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            _ => failure(
                404,
                "NotFound",
                &format!("no control endpoint {method} {path}"),
            ),
        }
    }

    pub(super) async fn dump_objects(&self) -> Value {
        let mut items = Vec::new();
        for (g, v, _kind, plural) in kube_fake_client::gen::discovery::list_resources() {
            let path = if g.is_empty() {
                format!("/api/{v}/{plural}")
            } else {
                format!("/apis/{g}/{v}/{plural}")
            };
            let r = self.store.get(&path).await;
            if let Some(list) = r.body.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
        }
        let key = |o: &Value| {
            (
                o.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                o.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                meta_str(o, "namespace").unwrap_or("").to_string(),
                meta_str(o, "name").unwrap_or("").to_string(),
            )
        };
        items.sort_by_key(key);
        json!({"kind": "List", "apiVersion": "v1", "items": items})
    }

    pub(super) async fn apply_lb_ip(&self, ip: Option<String>) -> usize {
        let _guard = self.rmw.lock().await;
        let list = self.store.get("/api/v1/services").await;
        let lb = match &ip {
            Some(ip) => json!({"ingress": [{"ip": ip}]}),
            None => json!({"ingress": null}),
        };
        let mut n = 0;
        for svc in list
            .body
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if svc.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
                continue;
            }
            let (Some(ns), Some(name)) = (meta_str(&svc, "namespace"), meta_str(&svc, "name"))
            else {
                continue;
            };
            let path = format!("/api/v1/namespaces/{ns}/services/{name}/status");
            let patch = json!({"status": {"loadBalancer": lb}});
            let r = self
                .send(
                    Method::PATCH,
                    &path,
                    Some("application/merge-patch+json"),
                    Bytes::from(patch.to_string()),
                )
                .await;
            if r.ok() {
                n += 1;
            }
        }
        n
    }
}
