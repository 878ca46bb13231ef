//! The registry's part of an app's placement and GPU resource, and how a start request
//! carries them: the rule `TychoContext.start` (Python) and `tycho render/up --registry`
//! (the command line) both call.
//!
//! A context may hold `placement:` (Kubernetes pod spec fields, see
//! [`crate::model::placement`]) and `gpu_resource:` beside `apps:`; an app may hold them
//! beside `securityContext:`. A context's are inherited as its apps are: those of the
//! contexts it `extends` first (depth first), then its own, then those of its `mixin`
//! contexts (of the contexts extended first, then its own). Each placement is merged over
//! the one before (mappings merge, lists and scalars are replaced), a later
//! `gpu_resource` replaces an earlier one; the app's come last. The start request's
//! system gets the result as top-level `placement` and `gpu_resource`, which the model
//! merges over the configuration's and under the compose file's constraints.

use super::model::{context_error, contexts, name_list};
use crate::error::{ErrorKind, Result};
use crate::model::placement::{self, Source};
use serde_json::{Map, Value};

/// A context's or app's own placement, checked (errors name where it is).
fn own(holder: &Value, what: &str) -> Result<Map<String, Value>> {
    placement::check(
        Source { what, path: "" },
        holder.get("placement").unwrap_or(&Value::Null),
    )
    .map_err(|e| e.with_kind(ErrorKind::Context))
}

/// A context's or app's own `gpu_resource` (a string), if any.
fn own_gpu(holder: &Value, what: &str) -> Result<Option<String>> {
    match holder.get("gpu_resource") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(context_error(format!(
            "{what}: gpu_resource must be a resource name like nvidia.com/gpu, got {}",
            crate::limits::echo_value(other)
        ))),
    }
}

/// What a registry gives a start: the merged placement and the GPU resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartFields {
    /// The merged placement (empty: none).
    pub placement: Map<String, Value>,
    /// The GPU resource name, if the registry sets one.
    pub gpu_resource: Option<String>,
}

impl StartFields {
    fn apply(&mut self, holder: &Value, what: &str) -> Result<()> {
        let addition = own(holder, what)?;
        self.placement = placement::merge(std::mem::take(&mut self.placement), addition);
        if let Some(gpu) = own_gpu(holder, what)? {
            self.gpu_resource = Some(gpu);
        }
        Ok(())
    }
}

fn extends_into(
    all: &Map<String, Value>,
    context: &Value,
    name: &str,
    trail: &mut Vec<String>,
    out: &mut StartFields,
) -> Result<()> {
    for base in name_list(context, "extends") {
        let Some(base_context) = all.get(&base) else {
            return Err(context_error(format!(
                "context {base:?} extended by {name:?} is not in the registry"
            )));
        };
        if trail.contains(&base) {
            return Err(context_error(format!(
                "contexts extend each other in a cycle: {} -> {base}",
                trail.join(" -> ")
            )));
        }
        trail.push(base.clone());
        extends_into(all, base_context, &base, trail, out)?;
        trail.pop();
    }
    out.apply(context, &format!("registry context {name}"))
}

fn mixins_into(
    all: &Map<String, Value>,
    context: &Value,
    trail: &mut Vec<String>,
    out: &mut StartFields,
) -> Result<()> {
    for base in name_list(context, "extends") {
        if let Some(base_context) = all.get(&base) {
            if !trail.contains(&base) {
                trail.push(base.clone());
                mixins_into(all, base_context, trail, out)?;
                trail.pop();
            }
        }
    }
    for mixer in name_list(context, "mixin") {
        if let Some(mixer_context) = all.get(&mixer) {
            out.apply(
                mixer_context,
                &format!("registry context {mixer} (a mixin)"),
            )?;
        }
    }
    Ok(())
}

/// The placement and GPU resource of context `product` (see the module documentation);
/// none for a product the registry does not hold (compiling its apps has refused it
/// already; a caller that set its apps by hand gets no context placement).
pub fn context_fields(registry: &Value, product: &str) -> Result<StartFields> {
    let all = contexts(registry);
    let Some(context) = all.get(product) else {
        return Ok(StartFields::default());
    };
    let mut out = StartFields::default();
    extends_into(
        &all,
        context,
        product,
        &mut vec![product.to_string()],
        &mut out,
    )?;
    mixins_into(&all, context, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// The placement and GPU resource a start of `app` (app `app_id` of the compiled
/// registry of `product`) carries: the context's, then the app's.
pub fn start_fields(
    registry: &Value,
    product: &str,
    app_id: &str,
    app: &Value,
) -> Result<StartFields> {
    let mut out = context_fields(registry, product)?;
    out.apply(app, &format!("registry app {app_id}"))?;
    Ok(out)
}

/// Finishes the compose `spec` of a registry start of `app_id`: the resource request
/// replaced the service's whole `deploy` (as the original's `service.update` does), so
/// its `deploy.placement` and `deploy.resources.reservations.devices` from the spec
/// (`spec_deploy`, the service's `deploy` before the request) are put back where the
/// request has none; then the registry's `placement` and `gpu_resource` (`fields`)
/// become top-level keys of the spec (only when set, so a request is the original's
/// otherwise).
pub fn finish_spec(
    spec: &mut Value,
    app_id: &str,
    spec_deploy: Option<&Value>,
    fields: &StartFields,
) {
    let before = spec_deploy.and_then(Value::as_object);
    let kept_placement = before
        .and_then(|b| b.get("placement"))
        .filter(|p| !p.is_null());
    let kept_devices = before
        .and_then(|b| b.get("resources"))
        .and_then(|r| r.get("reservations"))
        .and_then(|r| r.get("devices"))
        .filter(|d| !d.is_null());
    let service = spec
        .get_mut("services")
        .and_then(|s| s.get_mut(app_id))
        .and_then(Value::as_object_mut);
    if let (Some(service), true) = (service, kept_placement.is_some() || kept_devices.is_some()) {
        let deploy = service
            .entry("deploy")
            .or_insert_with(|| Value::Object(Map::new()));
        if !deploy.is_object() {
            *deploy = Value::Object(Map::new());
        }
        if let Value::Object(deploy) = deploy {
            if let Some(p) = kept_placement {
                deploy.entry("placement").or_insert_with(|| p.clone());
            }
            if let Some(devices) = kept_devices {
                let resources = deploy
                    .entry("resources")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !resources.is_object() {
                    *resources = Value::Object(Map::new());
                }
                let reservations = resources.as_object_mut().map(|r| {
                    r.entry("reservations")
                        .or_insert_with(|| Value::Object(Map::new()))
                });
                if let Some(reservations) = reservations {
                    if !reservations.is_object() {
                        *reservations = Value::Object(Map::new());
                    }
                    if let Value::Object(reservations) = reservations {
                        reservations
                            .entry("devices")
                            .or_insert_with(|| devices.clone());
                    }
                }
            }
        }
    }
    if let Value::Object(doc) = spec {
        if !fields.placement.is_empty() {
            doc.insert("placement".into(), Value::Object(fields.placement.clone()));
        }
        if let Some(gpu) = &fields.gpu_resource {
            doc.insert("gpu_resource".into(), Value::String(gpu.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Value {
        json!({"contexts": {
            "gpus": {"placement": {"tolerations": [{"key": "gpu", "operator": "Exists"}]},
                     "gpu_resource": "nvidia.com/mig-1g.5gb", "apps": {}},
            "base": {"placement": {"nodeSelector": {"pool": "base", "zone": "a"},
                                   "priorityClassName": "low"}, "apps": {"a": {}}},
            "mid": {"extends": ["base"], "mixin": ["gpus"],
                    "placement": {"nodeSelector": {"pool": "mid"}}, "apps": {}},
            "top": {"extends": ["mid"], "placement": {"priorityClassName": "high",
                    "imagePullSecrets": [{"name": "top"}]}, "apps": {}},
            "bad": {"placement": {"nodeName": "x"}, "apps": {}},
            "loop": {"extends": ["loop"], "apps": {}}
        }})
    }

    #[test]
    fn contexts_inherit_through_extends_and_mixins() {
        let f = context_fields(&registry(), "top").unwrap();
        assert_eq!(
            Value::Object(f.placement.clone()),
            json!({"nodeSelector": {"pool": "mid", "zone": "a"}, "priorityClassName": "high",
                   "tolerations": [{"key": "gpu", "operator": "Exists"}],
                   "imagePullSecrets": [{"name": "top"}]})
        );
        assert_eq!(f.gpu_resource.as_deref(), Some("nvidia.com/mig-1g.5gb"));
        let app = json!({"placement": {"nodeSelector": {"zone": "b"}, "tolerations": []},
                         "gpu_resource": "nvidia.com/gpu"});
        let f = start_fields(&registry(), "top", "a", &app).unwrap();
        assert_eq!(
            f.placement["nodeSelector"],
            json!({"pool": "mid", "zone": "b"})
        );
        assert_eq!(f.placement["tolerations"], json!([]));
        assert_eq!(f.gpu_resource.as_deref(), Some("nvidia.com/gpu"));
    }

    #[test]
    fn errors_name_the_context() {
        let e = context_fields(&registry(), "bad").unwrap_err();
        assert!(e.message.contains("registry context bad"), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::Context);
        let e = context_fields(&registry(), "loop").unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
        assert_eq!(
            context_fields(&registry(), "nope").unwrap(),
            StartFields::default()
        );
        let e = start_fields(&registry(), "base", "a", &json!({"gpu_resource": 1})).unwrap_err();
        assert!(e.message.contains("registry app a"), "{}", e.message);
    }

    #[test]
    fn the_spec_keeps_its_placement_and_devices() {
        let before = json!({"placement": {"constraints": ["node.labels.gpu == a100"]},
            "resources": {"reservations": {"devices": [{"capabilities": ["gpu"], "count": 1}]},
                          "limits": {"cpus": 1}}});
        let mut spec = json!({"services": {"a": {"image": "x",
            "deploy": {"resources": {"limits": {"cpus": 2}, "reservations": {"cpus": 1}}}}}});
        let fields = StartFields {
            placement: json!({"priorityClassName": "high"})
                .as_object()
                .unwrap()
                .clone(),
            gpu_resource: None,
        };
        finish_spec(&mut spec, "a", Some(&before), &fields);
        assert_eq!(
            spec,
            json!({"services": {"a": {"image": "x", "deploy": {
                "resources": {"limits": {"cpus": 2}, "reservations": {"cpus": 1,
                    "devices": [{"capabilities": ["gpu"], "count": 1}]}},
                "placement": {"constraints": ["node.labels.gpu == a100"]}}}},
                "placement": {"priorityClassName": "high"}})
        );
        // Nothing to keep, nothing set: the request is unchanged.
        let mut plain = json!({"services": {"a": {"image": "x"}}});
        finish_spec(
            &mut plain,
            "a",
            Some(&json!({"resources": {"limits": {}}})),
            &StartFields::default(),
        );
        assert_eq!(plain, json!({"services": {"a": {"image": "x"}}}));
    }
}
