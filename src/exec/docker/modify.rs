//! Modifying a running system: cpu and memory of every container of the system
//! (labelled `executor=tycho` and `tycho-guid`, as status selects them) with
//! `container update` (reverted on the already updated ones when one update fails).
//! Labels cannot change: the Engine cannot relabel a container, so a request with
//! labels is refused with a ModifyException before anything changes.

use super::client::{self, Settings};
use super::mapping::{cpus_to_nano, memory_to_bytes};
use super::{describe, err, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use bollard::models::ContainerUpdateBody;
use serde_json::{json, Map, Value};

const KIND: ErrorKind = ErrorKind::Modify;

/// Modifies a system (blocking). See [`modify_async`].
pub fn modify(config: &Value, request: &Value) -> Result<Value> {
    client::block_on(KIND, modify_async(config, request))
}

/// Applies `request` (`tycho.model.ModifySystem.to_dict()`: `guid`, `labels`,
/// `resources: {cpu, memory}`) and returns `{"patches": [{"container", "resources"}]}`.
pub async fn modify_async(config: &Value, request: &Value) -> Result<Value> {
    let guid = match request.get("guid") {
        Some(Value::String(g)) if !g.is_empty() => g.clone(),
        _ => return Err(err(KIND, "Failed to modify system: no GUID given")),
    };
    if !crate::text::names::is_label_value(&guid) {
        return Err(err(
            KIND,
            format!("Failed to modify system: the GUID {guid:?} is not valid"),
        ));
    }
    if let Some(labels) = request
        .get("labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
    {
        let keys: Vec<&String> = labels.keys().collect();
        return Err(err(
            KIND,
            format!(
                "Failed to modify system {guid}: the Docker backplane cannot change labels ({keys:?}): the Docker Engine cannot relabel a running container"
            ),
        ));
    }
    let resources = request
        .get("resources")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut update = ContainerUpdateBody::default();
    let mut applied = Map::new();
    for (key, value) in &resources {
        match key.as_str() {
            "cpu" => {
                update.nano_cpus = Some(cpus_to_nano(value).map_err(|e| err(KIND, format!("Failed to modify system {guid}: cpu {e}")))?);
            }
            "memory" => {
                let bytes = memory_to_bytes(value).map_err(|e| err(KIND, format!("Failed to modify system {guid}: memory {e}")))?;
                update.memory = Some(bytes);
                update.memory_swap = Some(bytes);
            }
            other => return Err(err(KIND, format!("Failed to modify system {guid}: resource name {other:?} is not valid (cpu, memory)"))),
        }
        applied.insert(key.clone(), value.clone());
    }
    let settings = Settings::from_config(config).map_err(|e| err(KIND, e.message))?;
    let docker = client::connect(KIND, &settings).await?;
    let ids = super::delete::containers_of(&docker, &guid)
        .await
        .map_err(|e| err(KIND, format!("Failed to modify system {guid}: {e}")))?;
    if ids.is_empty() {
        return Err(err(
            KIND,
            format!("Failed to modify system {guid}: no container labelled executor=tycho, tycho-guid={guid}"),
        ));
    }
    if resources.is_empty() {
        return Ok(json!({"patches": []}));
    }
    let mut patches = Vec::new();
    let mut done: Vec<(String, ContainerUpdateBody)> = Vec::new();
    for id in &ids {
        let before = docker.inspect_container(id, None).await.map_err(|e| {
            err(
                KIND,
                format!(
                    "Failed to modify system {guid}: cannot inspect container {id:?}: {}",
                    describe(&e)
                ),
            )
        })?;
        let service = before
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(super::SERVICE_LABEL).cloned())
            .unwrap_or_else(|| id.clone());
        let host = before.host_config.unwrap_or_default();
        let previous = ContainerUpdateBody {
            nano_cpus: update.nano_cpus.map(|_| host.nano_cpus.unwrap_or(0)),
            memory: update.memory.map(|_| host.memory.unwrap_or(0)),
            memory_swap: update.memory.map(|_| host.memory_swap.unwrap_or(0)),
            ..Default::default()
        };
        if let Err(e) = docker.update_container(id, update.clone()).await {
            let failure = format!("cannot update container {service:?}: {}", describe(&e));
            let mut problems = Vec::new();
            for (done_id, previous) in done.iter().rev() {
                if let Err(e) = docker.update_container(done_id, previous.clone()).await {
                    problems.push(format!(
                        "cannot put back container {done_id:?}: {}",
                        describe(&e)
                    ));
                }
            }
            let tail = if problems.is_empty() {
                " (the containers already updated were put back)".to_string()
            } else {
                format!("; {}", problems.join("; "))
            };
            return Err(err(
                KIND,
                format!("Failed to modify system {guid}: {failure}{tail}"),
            ));
        }
        done.push((id.clone(), previous));
        patches.push(json!({"container": service, "resources": applied}));
    }
    log::info!(target: LOG_TARGET, "modified system {guid}: {}", Value::Object(applied));
    Ok(json!({ "patches": patches }))
}
