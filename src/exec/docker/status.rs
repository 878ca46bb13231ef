//! Status of running systems: one list of the containers labelled for the request
//! (`username=<u>`, else `tycho-guid=<name>`, else `executor=tycho`), then one inspect
//! per container (concurrently) for its state, health, limits and host ports.
//!
//! Rows have the Kubernetes executor's shape. `is_ready` is true when every container
//! of the system is running and, when it has a healthcheck, healthy. With `reasons`
//! each row also carries `reason`: why the system is not ready (a container's state
//! and exit code, or its last health check output), null when it is.

use super::client::{self, Settings};
use super::{describe, err, label_filter, selector, GUID_LABEL, SERVICE_LABEL};
use crate::error::{ErrorKind, Result};
use bollard::query_parameters::ListContainersOptions;
use futures::future::join_all;
use serde_json::{json, Map, Value};

const KIND: ErrorKind = ErrorKind::Kube;

/// Status rows (blocking). See [`status_async`].
pub fn status(
    config: &Value,
    name: Option<&str>,
    username: Option<&str>,
    reasons: bool,
) -> Result<Vec<Value>> {
    client::block_on(KIND, status_async(config, name, username, reasons))
}

/// Status rows of the systems with GUID `name`, of user `username`, or all:
/// `{name, app_id, sid, ip_address, port, creation_time, username, utilization,
/// workspace_name, is_ready}` per system (plus `reason` with `reasons`).
pub async fn status_async(
    config: &Value,
    name: Option<&str>,
    username: Option<&str>,
    reasons: bool,
) -> Result<Vec<Value>> {
    let settings = Settings::from_config(config).map_err(|e| err(KIND, e.message))?;
    let docker = client::connect(KIND, &settings).await?;
    let (key, value) = selector(name, username);
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filter(&[(key, value), ("executor", "tycho")])),
        ..Default::default()
    };
    let list = docker.list_containers(Some(options)).await.map_err(|e| {
        err(
            KIND,
            format!(
                "cannot list the containers labelled {key}={value}: {}",
                describe(&e)
            ),
        )
    })?;
    let inspected = join_all(list.iter().filter_map(|c| c.id.clone()).map(|id| {
        let docker = docker.clone();
        async move { docker.inspect_container(&id, None).await }
    }))
    .await;
    // Group by GUID, keeping the order in which systems were created.
    let mut systems: Vec<(String, Vec<Value>)> = Vec::new();
    for c in inspected {
        let c = match c {
            Ok(c) => serde_json::to_value(&c).unwrap_or_default(),
            // Removed between the list and the inspect.
            Err(e) if super::is_not_found(&e) => continue,
            Err(e) => {
                return Err(err(
                    KIND,
                    format!("cannot inspect a container: {}", describe(&e)),
                ))
            }
        };
        let Some(guid) = label(&c, GUID_LABEL).map(str::to_string) else {
            continue;
        };
        match systems.iter_mut().find(|(g, _)| *g == guid) {
            Some((_, list)) => list.push(c),
            None => systems.push((guid, vec![c])),
        }
    }
    let mut rows: Vec<(String, Value)> = systems
        .iter()
        .map(|(guid, containers)| row(guid, containers, reasons))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

fn label<'a>(c: &'a Value, key: &str) -> Option<&'a str> {
    c.pointer("/Config/Labels")?.get(key)?.as_str()
}

fn opt(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null)
}

/// Why a container is not ready, or None when it is.
fn not_ready(c: &Value) -> Option<String> {
    let service = label(c, SERVICE_LABEL).unwrap_or("?");
    let state = c
        .pointer("/State/Status")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if state != "running" {
        let code = c
            .pointer("/State/ExitCode")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let error = c
            .pointer("/State/Error")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let oom = if c.pointer("/State/OOMKilled").and_then(Value::as_bool) == Some(true) {
            " (OOMKilled)"
        } else {
            ""
        };
        return Some(format!(
            "container {service}: {state}, exit code {code}{oom}{error}"
        ));
    }
    let health = c.pointer("/State/Health/Status").and_then(Value::as_str);
    match health {
        None | Some("") | Some("none") | Some("healthy") => None,
        Some(h) => {
            let last = c
                .pointer("/State/Health/Log")
                .and_then(Value::as_array)
                .and_then(|l| l.last())
                .map(|entry| {
                    let output: String = entry
                        .get("Output")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .trim()
                        .chars()
                        .take(200)
                        .collect();
                    let code = entry.get("ExitCode").and_then(Value::as_i64).unwrap_or(0);
                    format!(
                        ": last check exit code {code}{}",
                        if output.is_empty() {
                            String::new()
                        } else {
                            format!(", {output}")
                        }
                    )
                })
                .unwrap_or_default();
            Some(format!("container {service}: {h}{last}"))
        }
    }
}

/// `month-day-year hour:minute:second` (UTC, unpadded) of an RFC 3339 time.
fn creation_time(c: &Value) -> Option<String> {
    let created = c.get("Created")?.as_str()?;
    crate::exec::kube::creation_time(created)
}

fn limits(c: &Value) -> Value {
    let host = c.get("HostConfig");
    let mut out = Map::new();
    if let Some(n) = host
        .and_then(|h| h.get("NanoCpus"))
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
    {
        let cpus = n as f64 / 1e9;
        out.insert(
            "cpu".into(),
            Value::String(crate::text::pyfmt::py_str(&json!(cpus))),
        );
    }
    if let Some(m) = host
        .and_then(|h| h.get("Memory"))
        .and_then(Value::as_i64)
        .filter(|m| *m > 0)
    {
        out.insert("memory".into(), Value::String(m.to_string()));
    }
    if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    }
}

fn row(guid: &str, containers: &[Value], reasons: bool) -> (String, Value) {
    let first = &containers[0];
    let app_id = label(first, "original-app-name");
    // The system's address: the container named like the app, else the first one
    // that publishes a port.
    let published = |c: &Value| -> Option<(Value, Value)> {
        let ports = c.pointer("/NetworkSettings/Ports")?.as_object()?;
        let mut keys: Vec<&String> = ports.keys().collect();
        keys.sort_by_key(|k| k.split('/').next().and_then(|p| p.parse::<u32>().ok()));
        keys.iter().find_map(|k| {
            let b = ports.get(*k)?.get(0)?;
            Some((
                b.get("HostIp").cloned().unwrap_or(Value::Null),
                b.get("HostPort").cloned().unwrap_or(Value::Null),
            ))
        })
    };
    let address = containers
        .iter()
        .find(|c| app_id.is_some() && label(c, SERVICE_LABEL) == app_id)
        .and_then(published)
        .or_else(|| containers.iter().find_map(published));
    let (ip_address, port) = address.unwrap_or((Value::Null, Value::Null));
    let mut utilization = Map::new();
    for c in containers {
        if let Some(service) = label(c, SERVICE_LABEL) {
            utilization.insert(service.to_string(), limits(c));
        }
    }
    let problems: Vec<String> = containers.iter().filter_map(not_ready).collect();
    let oldest = containers
        .iter()
        .min_by_key(|c| c.get("Created").and_then(Value::as_str).unwrap_or_default())
        .unwrap_or(first);
    let creation = creation_time(oldest);
    let created_sort = oldest
        .get("Created")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut row = json!({
        "name": opt(label(first, "name")),
        "app_id": opt(app_id),
        "sid": guid,
        "ip_address": ip_address,
        "port": port,
        "creation_time": creation,
        "username": opt(label(first, "username")),
        "utilization": utilization,
        "workspace_name": label(first, "app-name").unwrap_or(""),
        "is_ready": problems.is_empty(),
    });
    if reasons {
        row["reason"] = if problems.is_empty() {
            Value::Null
        } else {
            Value::String(problems.join("; "))
        };
    }
    (created_sort, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: &str, health: Option<&str>) -> Value {
        let mut c = json!({
            "Created": "2024-01-02T03:04:05.123456789Z",
            "Config": {"Labels": {"tycho-guid": "g", "tycho-service": "web", "name": "app-g",
                                  "original-app-name": "app", "app-name": "app", "username": "u"}},
            "State": {"Status": state, "ExitCode": 3},
            "HostConfig": {"NanoCpus": 500000000, "Memory": 52428800},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}},
        });
        if let Some(h) = health {
            c["State"]["Health"] =
                json!({"Status": h, "Log": [{"ExitCode": 1, "Output": "refused\n"}]});
        }
        c
    }

    #[test]
    fn ready_means_running_and_healthy() {
        let (_, r) = row("g", &[container("running", Some("healthy"))], true);
        assert_eq!(r["is_ready"], true);
        assert_eq!(r["reason"], Value::Null);
        assert_eq!(r["ip_address"], "127.0.0.1");
        assert_eq!(r["port"], "49153");
        assert_eq!(r["creation_time"], "1-2-2024 3:4:5");
        assert_eq!(
            r["utilization"],
            json!({"web": {"cpu": "0.5", "memory": "52428800"}})
        );
        let (_, r) = row("g", &[container("running", None)], false);
        assert_eq!(r["is_ready"], true);
        assert!(
            r.get("reason").is_none(),
            "no reason key without the opt-in"
        );
    }

    #[test]
    fn not_ready_names_the_state_or_the_health_log() {
        let (_, r) = row("g", &[container("running", Some("unhealthy"))], true);
        assert_eq!(r["is_ready"], false);
        assert_eq!(
            r["reason"],
            "container web: unhealthy: last check exit code 1, refused"
        );
        let (_, r) = row("g", &[container("exited", None)], true);
        assert_eq!(r["reason"], "container web: exited, exit code 3");
    }
}
