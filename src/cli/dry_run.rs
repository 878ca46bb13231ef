//! `tycho up --dry-run=server`: every object of a system sent to the API server as a
//! create with `dryRun=All` — the server checks it (schema, admission) and answers with
//! the object it would store, and stores nothing.

use crate::error::{Error, ErrorKind, Result};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// Sends each of `objects` as a `dryRun=All` create in `namespace` (default: as the
/// executor chooses it); returns the server's answers. The first refusal is the error,
/// naming the object.
pub fn create_all(namespace: Option<&str>, objects: Vec<Value>) -> Result<Vec<Value>> {
    crate::exec::kube::wait::block_on(async move {
        let settings = crate::exec::kube::settings();
        let connection = crate::exec::kube::client::connection(ErrorKind::Start, &settings).await?;
        let namespace = crate::exec::kube::client::resolve_namespace(
            ErrorKind::Start,
            namespace,
            &connection,
            &settings,
        )?;
        let client = connection.client;
        let params = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let mut answers = Vec::with_capacity(objects.len());
        for object in objects {
            let shown = super::output::object_name(&object);
            let (group, version) = match object.get("apiVersion").and_then(Value::as_str) {
                Some(v) => match v.split_once('/') {
                    Some((g, v)) => (g.to_string(), v.to_string()),
                    None => (String::new(), v.to_string()),
                },
                None => return Err(Error::input(format!("{shown}: no apiVersion"))),
            };
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, &kind));
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let typed: DynamicObject = serde_json::from_value(object)
                .map_err(|e| Error::input(format!("{shown}: {e}")))?;
            let created = api.create(&params, &typed).await.map_err(|e| {
                Error::new(
                    ErrorKind::Start,
                    format!("{shown} (server dry run, namespace {namespace}): {e}"),
                )
            })?;
            answers.push(serde_json::to_value(&created).unwrap_or_default());
        }
        Ok(answers)
    })
}
