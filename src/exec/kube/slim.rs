//! What the watch cache keeps of an object: the fields the executor reads out of it,
//! nothing else.
//!
//! The readers are `status` (each row: the Deployment's name, labels, creation time,
//! pod-template labels, containers' names and limits, replica counts; the Service's
//! labels, first port and load-balancer ingress), readiness (`wait.rs`: the
//! Deployment's replicas, generation and status conditions; the pods' phase, conditions
//! and container states), start (whether the Ambassador Service and each claim exist,
//! the `<app>-env` Secret's data, whether its Deployment's uid was deleted) and the
//! cache itself (name, uid, resourceVersion, the `tycho-guid` label). Of the
//! annotations only `tycho.renci.org/username` is kept (status's real username of a
//! system labelled with a slug). Other annotations,
//! managedFields, owner references, the rest of the pod template, a pod's spec and
//! everything else are dropped as the object arrives, so what one object costs does not
//! grow with what others put on it (a 50 KB annotation costs nothing).
//!
//! A reader of a field not kept here adds it to the kind's list below (the tests compare
//! what status and readiness make of a whole object and of its slim form).

use super::Kind;
use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// What is kept of a value: all of it, its listed fields (of an object, or of each
/// object of an array), or a string cut to [`MAX_TEXT`] bytes.
pub(crate) enum Keep {
    All,
    Fields(&'static [(&'static str, Keep)]),
    Text,
}

use Keep::{All, Fields, Text};

/// The longest message kept (condition and container-state messages: readiness shows
/// them in one line).
pub(crate) const MAX_TEXT: usize = 1024;

/// The object labels read from cached objects: status selects by `username` and
/// `tycho-guid`; delete, readiness and start select by `tycho-guid`.
const LABELS: &[(&str, Keep)] = &[("executor", All), ("tycho-guid", All), ("username", All)];

/// The pod-template labels status and readiness read.
const TEMPLATE_LABELS: &[(&str, Keep)] = &[
    ("app-name", All),
    ("executor", All),
    ("original-app-name", All),
];

/// The one annotation read: status's real username of a system labelled with a slug.
const ANNOTATIONS: &[(&str, Keep)] = &[(crate::text::names::USERNAME_ANNOTATION, Text)];

const METADATA: &[(&str, Keep)] = &[
    ("name", All),
    ("uid", All),
    ("resourceVersion", All),
    ("generation", All),
    ("creationTimestamp", All),
    ("labels", Fields(LABELS)),
    ("annotations", Fields(ANNOTATIONS)),
];

const CONDITIONS: &[(&str, Keep)] = &[
    ("type", All),
    ("status", All),
    ("reason", All),
    ("message", Text),
];

const DEPLOYMENT: &[(&str, Keep)] = &[
    ("metadata", Fields(METADATA)),
    (
        "spec",
        Fields(&[
            ("replicas", All),
            (
                "template",
                Fields(&[
                    ("metadata", Fields(&[("labels", Fields(TEMPLATE_LABELS))])),
                    (
                        "spec",
                        Fields(&[(
                            "containers",
                            Fields(&[("name", All), ("resources", Fields(&[("limits", All)]))]),
                        )]),
                    ),
                ]),
            ),
        ]),
    ),
    (
        "status",
        Fields(&[
            ("replicas", All),
            ("readyReplicas", All),
            ("availableReplicas", All),
            ("observedGeneration", All),
            ("conditions", Fields(CONDITIONS)),
        ]),
    ),
];

const CONTAINER_STATUSES: &[(&str, Keep)] = &[
    ("name", All),
    (
        "state",
        Fields(&[
            ("waiting", Fields(&[("reason", All), ("message", Text)])),
            ("running", Fields(&[])),
            ("terminated", Fields(&[("reason", All)])),
        ]),
    ),
];

const POD: &[(&str, Keep)] = &[
    ("metadata", Fields(METADATA)),
    (
        "status",
        Fields(&[
            ("phase", All),
            ("conditions", Fields(CONDITIONS)),
            ("containerStatuses", Fields(CONTAINER_STATUSES)),
            ("initContainerStatuses", Fields(CONTAINER_STATUSES)),
        ]),
    ),
];

const SERVICE: &[(&str, Keep)] = &[
    ("metadata", Fields(METADATA)),
    (
        "spec",
        Fields(&[("ports", Fields(&[("name", All), ("port", All)]))]),
    ),
    (
        "status",
        Fields(&[(
            "loadBalancer",
            Fields(&[("ingress", Fields(&[("ip", All), ("hostname", All)]))]),
        )]),
    ),
];

/// Start reads the `<app>-env` Secret's values.
const SECRET: &[(&str, Keep)] = &[
    ("metadata", Fields(METADATA)),
    ("data", All),
    ("stringData", All),
];

/// NetworkPolicies, claims, ReplicaSets: only whether they exist (and their labels).
const METADATA_ONLY: &[(&str, Keep)] = &[("metadata", Fields(METADATA))];

/// What is kept of an object of `kind`.
pub(crate) fn fields(kind: Kind) -> &'static [(&'static str, Keep)] {
    match kind {
        Kind::Deployment => DEPLOYMENT,
        Kind::Pod => POD,
        Kind::Service => SERVICE,
        Kind::Secret => SECRET,
        Kind::NetworkPolicy | Kind::PersistentVolumeClaim | Kind::ReplicaSet => METADATA_ONLY,
    }
}

/// The slim form of `object` (a whole object of `kind`, as JSON).
pub(crate) fn slim(kind: Kind, object: Value) -> Value {
    let mut out = project(object, fields(kind)).unwrap_or_else(|| Value::Object(Map::new()));
    // Annotations without the username one are not kept at all.
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        if meta
            .get("annotations")
            .is_some_and(|a| a.as_object().is_none_or(Map::is_empty))
        {
            meta.shift_remove("annotations");
        }
    }
    out
}

/// The slim form of an object from a list or a watch. The metadata's big parts are
/// dropped before anything is converted.
pub(crate) fn from_dynamic(kind: Kind, object: DynamicObject) -> Value {
    let DynamicObject {
        mut metadata, data, ..
    } = object;
    // Only the real username of a slug-labelled system (status reads it).
    metadata.annotations = metadata
        .annotations
        .take()
        .and_then(|mut a| a.remove_entry(crate::text::names::USERNAME_ANNOTATION))
        .map(|entry| std::iter::once(entry).collect());
    metadata.managed_fields = None;
    metadata.owner_references = None;
    metadata.finalizers = None;
    let mut whole = match data {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    whole.insert(
        "metadata".into(),
        serde_json::to_value(&metadata).unwrap_or_default(),
    );
    slim(kind, Value::Object(whole))
}

/// `value` with only the fields `keep` lists; None when it is neither an object nor an
/// array (a structure was expected: a hostile scalar is not kept).
fn project(value: Value, keep: &[(&str, Keep)]) -> Option<Value> {
    match value {
        Value::Object(mut map) => {
            let mut out = Map::new();
            for (key, sub) in keep {
                let Some(v) = map.remove(*key) else {
                    continue;
                };
                let kept = match sub {
                    All => Some(v),
                    Text => Some(cut(v)),
                    Fields(f) => project(v, f),
                };
                if let Some(v) = kept {
                    out.insert((*key).to_string(), v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(|v| project(v, keep)).collect(),
        )),
        _ => None,
    }
}

/// A string cut to [`MAX_TEXT`] bytes (at a character boundary); other values as they are.
fn cut(value: Value) -> Value {
    match value {
        Value::String(mut s) if s.len() > MAX_TEXT => {
            let mut end = MAX_TEXT;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.shrink_to_fit();
            Value::String(s)
        }
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment as tycho renders it and the API server returns it, with `annotation`
    /// bytes of annotations and the usual server-side metadata.
    pub(crate) fn deployment(name: &str, annotation: usize) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": format!("uid-{name}"),
                "resourceVersion": "12345",
                "generation": 2,
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"executor": "tycho", "tycho-guid": format!("g-{name}"),
                           "username": "alice", "name": name, "app-name": "jupyter-ds"},
                "annotations": {"big": "x".repeat(annotation),
                                "deployment.kubernetes.io/revision": "1"},
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                   "fieldsV1": {"f:status": {"f:replicas": {}}}}],
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"tycho-guid": format!("g-{name}")}},
                "template": {
                    "metadata": {"labels": {"executor": "tycho", "tycho-guid": format!("g-{name}"),
                                            "app-name": "jupyter-ds",
                                            "original-app-name": "jupyter-ds"},
                                 "annotations": {"big": "y".repeat(annotation)}},
                    "spec": {
                        "containers": [{
                            "name": "jupyter-ds",
                            "image": "jupyter/datascience-notebook:latest",
                            "env": [{"name": "USER", "value": "alice"},
                                    {"name": "NB_PREFIX", "value": "/private/jupyter-ds/alice"}],
                            "ports": [{"containerPort": 8888}],
                            "resources": {"limits": {"cpu": "1", "memory": "4000M"},
                                          "requests": {"cpu": "1", "memory": "4000M"}},
                            "volumeMounts": [{"name": "home", "mountPath": "/home/alice"}],
                        }],
                        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "stdnfs"}}],
                        "securityContext": {"runAsUser": 1000, "fsGroup": 100},
                    },
                },
            },
            "status": {
                "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
                "observedGeneration": 2,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "message": "Deployment has minimum availability.",
                     "lastTransitionTime": "2024-01-02T03:04:05Z",
                     "lastUpdateTime": "2024-01-02T03:04:05Z"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                     "message": format!("ReplicaSet \"{name}-5d8f\" has successfully progressed."),
                     "lastTransitionTime": "2024-01-02T03:04:05Z",
                     "lastUpdateTime": "2024-01-02T03:04:05Z"},
                ],
            },
        })
    }

    #[test]
    fn keeps_what_is_read_and_drops_the_rest() {
        let s = slim(Kind::Deployment, deployment("d", 50_000));
        assert!(s.pointer("/metadata/annotations").is_none());
        assert!(s.pointer("/metadata/managedFields").is_none());
        assert!(s.pointer("/metadata/labels/name").is_none());
        assert!(s.pointer("/spec/template/metadata/annotations").is_none());
        assert!(s.pointer("/spec/template/spec/containers/0/env").is_none());
        assert_eq!(s["metadata"]["labels"]["tycho-guid"], "g-d");
        assert_eq!(s["metadata"]["resourceVersion"], "12345");
        assert_eq!(
            s["spec"]["template"]["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "4000M"}})
        );
        assert!(serde_json::to_string(&s).unwrap().len() < 2_000);
    }

    #[test]
    fn the_real_username_annotation_is_kept() {
        let mut whole = deployment("d", 100);
        whole["metadata"]["annotations"][crate::text::names::USERNAME_ANNOTATION] =
            json!("Jane.Doe@example.org");
        let s = slim(Kind::Deployment, whole.clone());
        assert_eq!(
            s["metadata"]["annotations"],
            json!({crate::text::names::USERNAME_ANNOTATION: "Jane.Doe@example.org"})
        );
        let dynamic: DynamicObject = serde_json::from_value(whole).unwrap();
        assert_eq!(from_dynamic(Kind::Deployment, dynamic), s);
    }

    #[test]
    fn hostile_shapes_are_dropped_and_long_messages_cut() {
        let s = slim(
            Kind::Deployment,
            json!({"metadata": "x", "spec": {"template": 5},
                   "status": {"conditions": [{"type": "Progressing", "message": "é".repeat(5000)}, 7]}}),
        );
        assert_eq!(s.get("metadata"), None);
        assert_eq!(s["spec"], json!({}));
        let message = s["status"]["conditions"][0]["message"].as_str().unwrap();
        assert!(message.len() <= MAX_TEXT && message.len() > MAX_TEXT - 4);
        assert_eq!(s["status"]["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(slim(Kind::Pod, json!("scalar")), json!({}));
    }

    #[test]
    fn from_dynamic_matches_slim() {
        let whole = deployment("d", 1_000);
        let dynamic: DynamicObject = serde_json::from_value(whole.clone()).unwrap();
        assert_eq!(
            from_dynamic(Kind::Deployment, dynamic),
            slim(Kind::Deployment, whole)
        );
    }
}
