//! Status of running systems: one list of Deployments and one of Services, made
//! concurrently and selected on the server by label (`username=<u>`, else
//! `tycho-guid=<name>`, else `executor=tycho`). A username that is no label value is
//! selected by its slug ([`crate::text::names::username_label`]), and only the Deployments
//! whose real name (the annotation `tycho.renci.org/username`, else the label) is the
//! username asked for are rows; a row's `username` is that real name.

use super::client;
use super::retry;
use super::{err, GUID_LABEL, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use kube::api::ListParams;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const KIND: ErrorKind = ErrorKind::Kube;

/// Status rows (blocking). See [`status_async`].
pub fn status(
    name: Option<&str>,
    username: Option<&str>,
    namespace: Option<&str>,
) -> Result<Vec<Value>> {
    client::block_on(KIND, status_async(name, username, namespace))
}

/// The label selector of a status request, as the original builds it: the username
/// wins over the GUID; neither selects every tycho system.
pub(crate) fn selector(name: Option<&str>, username: Option<&str>) -> String {
    match (
        name.filter(|s| !s.is_empty()),
        username.filter(|s| !s.is_empty()),
    ) {
        (_, Some(u)) => format!("username={}", crate::text::names::username_label(u)),
        (Some(n), None) => format!("{GUID_LABEL}={n}"),
        (None, None) => "executor=tycho".to_string(),
    }
}

/// The real username of a Deployment: its annotation, else its `username` label.
fn real_username(d: &Value) -> Option<&str> {
    d.pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::text::names::USERNAME_ANNOTATION))
        .and_then(Value::as_str)
        .or_else(|| label(d, "/metadata/labels", "username"))
}

/// Whether Deployment `d`, selected by the username's label, is `username`'s (a slug
/// shared by two names, or a name spelled like another's slug, selects both).
fn owned_by(d: &Value, username: Option<&str>) -> bool {
    match username.filter(|s| !s.is_empty()) {
        None => true,
        Some(u) => real_username(d) == Some(u),
    }
}

/// Status rows of the systems with GUID `name`, of user `username`, or all:
/// `{name, app_id, sid, ip_address, port, creation_time, username, utilization,
/// workspace_name, is_ready}` per Deployment. A GUID that is not a valid label value
/// matches no system (no request is made); any username is selected by its label.
pub async fn status_async(
    name: Option<&str>,
    username: Option<&str>,
    namespace: Option<&str>,
) -> Result<Vec<Value>> {
    if let Some(value) = name.filter(|n| !crate::text::names::is_label_value(n)) {
        log::debug!(target: LOG_TARGET, "status: {value:?} is not a label value; no system can match");
        return Ok(Vec::new());
    }
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let client = &connection.client;
    let selector = selector(name, username);
    if let Some(rows) = super::cache::namespace(&settings, &connection, &namespace)
        .and_then(|cache| from_cache(&cache, name, username))
    {
        return Ok(rows);
    }
    let list = ListParams::default().labels(&selector);
    let deployments_api = super::Kind::Deployment.api(client, &namespace);
    let services_api = super::Kind::Service.api(client, &namespace);
    let what_d = format!("deployments labelled {selector}");
    let what_s = format!("services labelled {selector}");
    let lists = async {
        tokio::join!(
            retry::idempotent(&what_d, || deployments_api.list(&list)),
            retry::idempotent(&what_s, || services_api.list(&list)),
        )
    };
    let timeout = settings.operation_timeout;
    let (deployments, services) = tokio::time::timeout(timeout, lists).await.map_err(|_| {
        err(
            KIND,
            format!("status of {selector}: timed out after {timeout:?} (TYCHO_KUBE_TIMEOUT)"),
        )
    })?;
    let deployments = deployments.map_err(|e| err(KIND, format!("cannot list {what_d}: {e}")))?;
    let services = services.map_err(|e| err(KIND, format!("cannot list {what_s}: {e}")))?;

    let services: Vec<Value> = services
        .items
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    let by_guid = by_guid(services.iter());
    let rows = deployments
        .items
        .iter()
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .filter(|d| owned_by(d, username))
        .map(|d| row(&d, &by_guid))
        .collect();
    Ok(rows)
}

/// The Services by their system's GUID, in list order.
fn by_guid<'a>(services: impl Iterator<Item = &'a Value>) -> HashMap<String, Vec<&'a Value>> {
    let mut by_guid: HashMap<String, Vec<&Value>> = HashMap::new();
    for service in services {
        if let Some(guid) = label(service, "/metadata/labels", GUID_LABEL) {
            by_guid.entry(guid.to_string()).or_default().push(service);
        }
    }
    by_guid
}

/// The rows from the watch cache, when its Deployments and Services are fresh. Every
/// object tycho creates is labelled `executor=tycho` (what the cache watches), so the
/// rows are those the lists would answer.
fn from_cache(
    cache: &super::cache::Namespace,
    name: Option<&str>,
    username: Option<&str>,
) -> Option<Vec<Value>> {
    use super::cache::Select;
    // A username is selected by its label (a slug for a name that is no label value).
    let label = username
        .filter(|s| !s.is_empty())
        .map(crate::text::names::username_label);
    let select = match (name.filter(|s| !s.is_empty()), label.as_deref()) {
        (_, Some(u)) => Select::Username(u),
        (Some(n), None) => Select::Guid(n),
        (None, None) => Select::All,
    };
    let deployments = cache.deployments.select(select)?;
    let services = cache.services.select(select)?;
    let deployments: Vec<_> = deployments
        .into_iter()
        .filter(|d| owned_by(d, username))
        .collect();
    let by_guid = by_guid(services.iter().map(|s| s.as_ref()));
    Some(deployments.iter().map(|d| row(d, &by_guid)).collect())
}

fn label<'a>(object: &'a Value, pointer: &str, key: &str) -> Option<&'a str> {
    object.pointer(pointer)?.get(key)?.as_str()
}

fn opt_str(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null)
}

/// `month-day-year hour:minute:second` without zero padding, in UTC, as the original
/// formats the Deployment's creationTimestamp.
pub(crate) fn creation_time(timestamp: &str) -> Option<String> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::parse_from_rfc3339(timestamp)
        .ok()?
        .with_timezone(&chrono::Utc);
    Some(format!(
        "{}-{}-{} {}:{}:{}",
        t.month(),
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn replicas(d: &Value, field: &str) -> i64 {
    d.pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn row(d: &Value, services: &HashMap<String, Vec<&Value>>) -> Value {
    let template_labels = "/spec/template/metadata/labels";
    let guid = label(d, "/metadata/labels", GUID_LABEL);
    let app_id = label(d, template_labels, "original-app-name");
    let mut utilization = Map::new();
    for c in d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = c.get("name").and_then(Value::as_str) {
            let limits = c
                .pointer("/resources/limits")
                .cloned()
                .unwrap_or(Value::Null);
            utilization.insert(name.to_string(), limits);
        }
    }
    // The system's Service: the one of the container named like the app, else the first.
    let candidates = guid.and_then(|g| services.get(g));
    let service = candidates.and_then(|list| {
        let prefix = app_id.map(|a| format!("{a}-"));
        list.iter()
            .find(|s| {
                prefix.as_ref().is_some_and(|p| {
                    s.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with(p.as_str()))
                })
            })
            .or_else(|| list.first())
            .copied()
    });
    let ip_address = service
        .map(super::start::ingress_address)
        .unwrap_or(Value::Null);
    let port = service
        .and_then(|s| s.pointer("/spec/ports/0/port"))
        .map(|p| match p {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        })
        .unwrap_or(Value::Null);
    let creation = d
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(creation_time);
    json!({
        "name": d.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "app_id": opt_str(app_id),
        "sid": opt_str(guid),
        "ip_address": ip_address,
        "port": port,
        "creation_time": creation,
        "username": opt_str(real_username(d)),
        "utilization": utilization,
        "workspace_name": label(d, template_labels, "app-name").unwrap_or(""),
        "is_ready": replicas(d, "readyReplicas") == replicas(d, "replicas"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_the_original() {
        assert_eq!(selector(None, None), "executor=tycho");
        assert_eq!(selector(Some(""), None), "executor=tycho");
        assert_eq!(selector(Some("g"), None), "tycho-guid=g");
        assert_eq!(selector(Some("g"), Some("u")), "username=u");
        assert_eq!(selector(None, Some("u")), "username=u");
        assert_eq!(
            selector(None, Some("Jane.Doe@example.org")),
            format!(
                "username={}",
                crate::text::names::username_label("Jane.Doe@example.org")
            )
        );
    }

    #[test]
    fn rows_carry_the_real_name_and_only_its_systems() {
        let email = "Jane.Doe@example.org";
        let slug = crate::text::names::username_label(email).into_owned();
        let mine = json!({"metadata": {"name": "a", "labels": {"username": slug},
            "annotations": {crate::text::names::USERNAME_ANNOTATION: email}}});
        // A user whose real name is spelled like the slug: same label, no annotation.
        let other = json!({"metadata": {"name": "b", "labels": {"username": slug}}});
        assert_eq!(row(&mine, &HashMap::new())["username"], email);
        assert_eq!(row(&other, &HashMap::new())["username"], slug.as_str());
        assert!(owned_by(&mine, Some(email)) && !owned_by(&other, Some(email)));
        assert!(owned_by(&other, Some(&slug)) && !owned_by(&mine, Some(&slug)));
        assert!(owned_by(&mine, None));
    }

    #[test]
    fn creation_time_is_unpadded() {
        assert_eq!(
            creation_time("2024-01-02T03:04:05Z").as_deref(),
            Some("1-2-2024 3:4:5")
        );
        assert_eq!(
            creation_time("2024-11-22T13:45:59Z").as_deref(),
            Some("11-22-2024 13:45:59")
        );
        assert_eq!(creation_time("bogus"), None);
    }

    #[test]
    fn rows_tolerate_missing_fields() {
        let d = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        let r = row(&d, &HashMap::new());
        assert_eq!(r["name"], "x");
        assert_eq!(r["sid"], Value::Null);
        assert_eq!(r["utilization"], json!({"c": null}));
        assert_eq!(r["workspace_name"], "");
        assert_eq!(r["is_ready"], true);
        assert_eq!(r["ip_address"], Value::Null);
        assert_eq!(r["port"], Value::Null);
    }

    /// Status reads the cache's slim objects: its rows of them are its rows of the whole
    /// objects.
    #[test]
    fn rows_of_slim_objects_are_rows_of_whole_ones() {
        use super::super::{slim, Kind};
        let d = slim::tests::deployment("d", 5_000);
        let services = [
            json!({"metadata": {"name": "other-g-d", "labels": {"tycho-guid": "g-d", "executor": "tycho"},
                                "annotations": {"getambassador.io/config": "x".repeat(5_000)}},
                   "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
                            "selector": {"tycho-guid": "g-d"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}}),
            json!({"metadata": {"name": "jupyter-ds-g-d", "labels": {"tycho-guid": "g-d", "executor": "tycho"}},
                   "spec": {"type": "LoadBalancer", "ports": [{"port": 8888, "nodePort": 30001}]},
                   "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.org"}]}}}),
        ];
        let slim_services: Vec<Value> = services
            .iter()
            .map(|s| slim::slim(Kind::Service, s.clone()))
            .collect();
        let whole = row(&d, &by_guid(services.iter()));
        assert_eq!(whole["port"], "8888");
        assert_eq!(
            row(
                &slim::slim(Kind::Deployment, d),
                &by_guid(slim_services.iter())
            ),
            whole
        );
        for (s, slim_s) in services.iter().zip(&slim_services) {
            assert_eq!(
                super::super::start::ingress_address(slim_s),
                super::super::start::ingress_address(s)
            );
        }
    }
}
