//! Image pre-pull: the DaemonSet that pulls every image of a product's apps onto every
//! node before a user starts one (`tycho prepull`), as Zero-to-JupyterHub's continuous
//! image puller does.
//!
//! The input is each app's pod spec, compiled from the start request `TychoContext.start`
//! would send ([`app_pod`]: the request is built by the command line's registry code,
//! `crate::cli::request`, and compiled by [`crate::compile`]); so the images are the
//! ones a start renders, registry settings and the configuration's init image included.
//! [`daemon_set`] turns them into one DaemonSet:
//!
//! * one init container per distinct image (the pod template's init containers first,
//!   then its containers, apps in id order), running `/bin/sh -c "exit 0"` with tiny
//!   resources, as non-root with no privileges: pulling is the point, running is not.
//!   An image without `/bin/sh` (distroless, scratch) is pulled all the same, but its
//!   init container fails and the pod stays in `Init:CrashLoopBackOff`, and the images
//!   after it are not pulled on that node: the limitation Zero-to-JupyterHub's puller has;
//! * then one container running the pause image ([`DEFAULT_PAUSE_IMAGE`]), which sleeps;
//! * placement that reaches every node an app may run on: the node selector entries
//!   every app's pod has (configuration, registry context and app placement as compiled),
//!   the node affinity when every app has the same one, every app's tolerations and
//!   image pull secrets (deduplicated). Priority and runtime classes are not copied.
//!
//! The DaemonSet is labelled `executor=tycho` (its pods are not: the executor's watch
//! cache and status select pods by that label) and named `tycho-prepull-<product>`.

use super::{compile, CompileOptions};
use crate::error::{Error, ErrorKind, Result};
use serde_json::{json, Map, Value};

/// The image of the container that sleeps once the pulls are done.
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The command every pull container runs: exits 0 at once (needs `/bin/sh` in the image).
pub const PULL_COMMAND: [&str; 3] = ["/bin/sh", "-c", "exit 0"];

/// The label the DaemonSet's selector and pods carry: the product, as a label value.
pub const PRODUCT_LABEL: &str = "tycho-prepull";

/// The GUID the apps are compiled with (names only; images do not depend on it).
const GUID: &str = "00000000000000000000000000000000";

/// Most characters of an image reference (the pause image given by the user).
const MAX_IMAGE: usize = 1024;

/// The images an app's pod pulls, and where it may run.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPod {
    /// The app id.
    pub app: String,
    /// The pod spec of the app's Deployment, as a start compiles it.
    pub pod: Value,
}

/// The pod spec app `app` would run, compiled from its start `request` with `config` (as
/// `tycho render` does, offline).
pub fn app_pod(config: &Value, app: &str, request: &Value) -> Result<AppPod> {
    let options = CompileOptions {
        identifier: Some(GUID.to_string()),
        quiet: true,
        ..Default::default()
    };
    let compiled = compile(config, request, &options).map_err(|e| {
        let kind = e.kind;
        Error::new(kind, format!("app {app}: {}", e.message)).caused_by(e)
    })?;
    let pod = compiled
        .deployment
        .pointer("/spec/template/spec")
        .cloned()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("app {app}: the compiled Deployment has no pod template"),
            )
        })?;
    Ok(AppPod {
        app: app.to_string(),
        pod,
    })
}

/// What the DaemonSet is made of besides the apps.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry context (appstore's brand) the apps are of.
    pub product: String,
    /// The image of the sleeping container.
    pub pause_image: String,
    /// `metadata.namespace`, when given.
    pub namespace: Option<String>,
}

/// `text` as a DNS label of at most `max` characters: lowercase, anything but letters,
/// digits and `-` made `-`, no `-` at either end ("" when nothing is left).
fn dns_label(text: &str, max: usize) -> String {
    let mapped: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = mapped.trim_matches('-').chars().take(max).collect();
    cut.trim_end_matches('-').to_string()
}

/// The DaemonSet's name for `product`: `tycho-prepull-<product>` (the product made a DNS
/// label; at most 63 characters, so that the pods' names and labels fit).
pub fn name(product: &str) -> String {
    let suffix = dns_label(product, 63 - "tycho-prepull-".len());
    if suffix.is_empty() {
        "tycho-prepull".into()
    } else {
        format!("tycho-prepull-{suffix}")
    }
}

/// Checks the pause image: a non-empty reference without blanks or control characters.
fn check_image(image: &str) -> Result<()> {
    if image.is_empty()
        || image.chars().count() > MAX_IMAGE
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::input(format!(
            "--pause-image must be an image reference like {DEFAULT_PAUSE_IMAGE}, got {}",
            crate::limits::echo(&format!("{image:?}"))
        ))
        .at("--pause-image"));
    }
    Ok(())
}

/// The containers of a pod spec that pull: init containers, then containers.
fn pulled(pod: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(move |key| pod.get(key).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_object)
}

/// A container that pulls `image` and exits, named `name`.
fn pull_container(name: &str, image: &str, policy: Option<&Value>) -> Value {
    let mut container = json!({
        "name": name,
        "image": image,
        "command": PULL_COMMAND,
        "resources": {
            "requests": {"cpu": "1m", "memory": "4Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        "securityContext": container_security(),
    });
    if let Some(policy) = policy.filter(|p| p.is_string()) {
        container["imagePullPolicy"] = policy.clone();
    }
    container
}

/// Every container's security context: no privileges, nothing written.
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// One init container per distinct image of `apps` (see the module documentation).
fn init_containers(apps: &[AppPod]) -> Vec<Value> {
    let mut seen: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for app in apps {
        for container in pulled(&app.pod) {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            if image.is_empty() || seen.iter().any(|s| s == image) {
                continue;
            }
            seen.push(image.to_string());
            let own = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let wanted = if own.is_empty() || own == app.app {
                app.app.clone()
            } else {
                format!("{}-{own}", app.app)
            };
            let base = match dns_label(&format!("pull-{wanted}"), 63) {
                b if b.is_empty() => "pull".to_string(),
                b => b,
            };
            let mut name = base.clone();
            let mut n = 2;
            while names.contains(&name) {
                let suffix = format!("-{n}");
                let keep: String = base.chars().take(63 - suffix.len()).collect();
                name = format!("{}{suffix}", keep.trim_end_matches('-'));
                n += 1;
            }
            names.push(name.clone());
            out.push(pull_container(
                &name,
                image,
                container.get("imagePullPolicy"),
            ));
        }
    }
    out
}

/// The entries of `field` (a list) of every pod, each once, in first-seen order; `key`
/// says when two entries are the same.
fn union(apps: &[AppPod], field: &str, key: impl Fn(&Value) -> Value) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for app in apps {
        for entry in app
            .pod
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !out.iter().any(|e| key(e) == key(entry)) {
                out.push(entry.clone());
            }
        }
    }
    out
}

/// The node selector entries every app's pod has.
fn common_node_selector(apps: &[AppPod]) -> Map<String, Value> {
    let selectors: Vec<Map<String, Value>> = apps
        .iter()
        .map(|a| {
            a.pod
                .get("nodeSelector")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let Some((first, rest)) = selectors.split_first() else {
        return Map::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|s| s.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The node affinity of the apps' pods when every one has the same one.
fn common_node_affinity(apps: &[AppPod]) -> Option<Value> {
    let of = |a: &AppPod| a.pod.pointer("/affinity/nodeAffinity").cloned();
    let first = of(apps.first()?)?;
    apps.iter()
        .all(|a| of(a).as_ref() == Some(&first))
        .then_some(first)
}

/// The DaemonSet that pre-pulls the images of `apps` (see the module documentation).
/// An error when there is no app or the pause image is not an image reference.
pub fn daemon_set(apps: &[AppPod], options: &Options) -> Result<Value> {
    check_image(&options.pause_image)?;
    if apps.is_empty() {
        return Err(Error::new(
            ErrorKind::Context,
            format!(
                "product {} has no apps: there is nothing to pre-pull",
                crate::limits::echo(&options.product)
            ),
        ));
    }
    let mut apps = apps.to_vec();
    apps.sort_by(|a, b| a.app.cmp(&b.app));
    let name = name(&options.product);
    let product_label = match dns_label(&options.product, 63) {
        p if p.is_empty() => "none".to_string(),
        p => p,
    };
    let selector = json!({
        "app.kubernetes.io/name": "tycho-prepull",
        PRODUCT_LABEL: product_label,
    });
    let mut pod_labels = selector.clone();
    pod_labels["app.kubernetes.io/component"] = json!("image-puller");
    pod_labels["app.kubernetes.io/managed-by"] = json!("tycho");
    let mut pod = json!({
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": init_containers(&apps),
        "containers": [{
            "name": "pause",
            "image": options.pause_image,
            "resources": {
                "requests": {"cpu": "1m", "memory": "4Mi"},
                "limits": {"cpu": "10m", "memory": "16Mi"},
            },
            "securityContext": container_security(),
        }],
    });
    let node_selector = common_node_selector(&apps);
    if !node_selector.is_empty() {
        pod["nodeSelector"] = Value::Object(node_selector);
    }
    if let Some(affinity) = common_node_affinity(&apps) {
        pod["affinity"] = json!({ "nodeAffinity": affinity });
    }
    let tolerations = union(&apps, "tolerations", Value::clone);
    if !tolerations.is_empty() {
        pod["tolerations"] = Value::Array(tolerations);
    }
    let secrets = union(&apps, "imagePullSecrets", |s| {
        s.get("name").cloned().unwrap_or(Value::Null)
    });
    if !secrets.is_empty() {
        pod["imagePullSecrets"] = Value::Array(secrets);
    }
    let mut metadata = json!({
        "name": name,
        "labels": {
            "executor": "tycho",
            "app.kubernetes.io/name": "tycho-prepull",
            "app.kubernetes.io/component": "image-puller",
            "app.kubernetes.io/managed-by": "tycho",
            PRODUCT_LABEL: product_label,
        },
        "annotations": {
            "tycho/prepull-product": options.product,
            "tycho/prepull-apps": apps.iter().map(|a| a.app.as_str()).collect::<Vec<_>>().join(","),
        },
    });
    if let Some(ns) = &options.namespace {
        metadata["namespace"] = json!(ns);
    }
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": pod,
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, pod: Value) -> AppPod {
        AppPod {
            app: name.into(),
            pod,
        }
    }

    fn options() -> Options {
        Options {
            product: "helx".into(),
            pause_image: DEFAULT_PAUSE_IMAGE.into(),
            namespace: None,
        }
    }

    #[test]
    fn one_init_container_per_distinct_image() {
        let apps = [
            app(
                "b",
                json!({"initContainers": [{"name": "volume-tasks", "image": "busybox:1"}],
                       "containers": [{"name": "b", "image": "x/b:1", "imagePullPolicy": "Always"}]}),
            ),
            app(
                "a",
                json!({"containers": [{"name": "a", "image": "x/a:1"}, {"name": "db", "image": "busybox:1"}]}),
            ),
        ];
        let ds = daemon_set(&apps, &options()).unwrap();
        let init = ds["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .unwrap();
        let pairs: Vec<(&str, &str)> = init
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("pull-a", "x/a:1"),
                ("pull-a-db", "busybox:1"),
                ("pull-b", "x/b:1")
            ]
        );
        assert_eq!(init[2]["imagePullPolicy"], "Always");
        assert_eq!(init[0]["command"], json!(PULL_COMMAND));
        assert_eq!(ds["metadata"]["name"], "tycho-prepull-helx");
        assert_eq!(ds["metadata"]["labels"]["executor"], "tycho");
        assert!(ds["spec"]["template"]["metadata"]["labels"]
            .get("executor")
            .is_none());
        assert_eq!(
            ds["spec"]["template"]["spec"]["containers"][0]["image"],
            DEFAULT_PAUSE_IMAGE
        );
    }

    #[test]
    fn placement_reaches_every_node_an_app_may_use() {
        let gpu = json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
        let team =
            json!({"key": "team", "operator": "Equal", "value": "a", "effect": "NoSchedule"});
        let affinity = json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}});
        let apps = [
            app(
                "a",
                json!({"containers": [{"name": "a", "image": "a"}],
                       "nodeSelector": {"pool": "users", "disk": "ssd"},
                       "tolerations": [team],
                       "affinity": {"nodeAffinity": affinity},
                       "imagePullSecrets": [{"name": "regcred"}]}),
            ),
            app(
                "b",
                json!({"containers": [{"name": "b", "image": "b"}],
                       "nodeSelector": {"pool": "users"},
                       "tolerations": [team, gpu],
                       "affinity": {"nodeAffinity": affinity},
                       "imagePullSecrets": [{"name": "regcred"}, {"name": "other"}]}),
            ),
        ];
        let ds = daemon_set(&apps, &options()).unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"], json!({"pool": "users"}));
        assert_eq!(pod["tolerations"], json!([team, gpu]));
        assert_eq!(pod["affinity"], json!({"nodeAffinity": affinity}));
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{"name": "regcred"}, {"name": "other"}])
        );
        // an app without the affinity: none (it may run anywhere)
        let mut more = apps.to_vec();
        more.push(app(
            "c",
            json!({"containers": [{"name": "c", "image": "c"}]}),
        ));
        let ds = daemon_set(&more, &options()).unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert!(pod.get("affinity").is_none());
        assert!(pod.get("nodeSelector").is_none());
    }

    #[test]
    fn names_and_refusals() {
        assert_eq!(name("HeLx_Dev"), "tycho-prepull-helx-dev");
        assert_eq!(name("--"), "tycho-prepull");
        assert!(name(&"x".repeat(300)).len() <= 63);
        let mut bad = options();
        bad.pause_image = "a b".into();
        assert!(daemon_set(&[app("a", json!({}))], &bad).is_err());
        assert_eq!(
            daemon_set(&[], &options()).unwrap_err().kind,
            ErrorKind::Context
        );
        // many apps whose names cut to the same 63 characters stay distinct
        let long = "a".repeat(80);
        let apps: Vec<AppPod> = (0..3)
            .map(|i| {
                app(
                    &format!("{long}{i}"),
                    json!({"containers": [{"name": "c", "image": format!("i{i}")}]}),
                )
            })
            .collect();
        let ds = daemon_set(&apps, &options()).unwrap();
        let names: Vec<&str> = ds["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|n| n.len() <= 63));
        assert_ne!(names[0], names[1]);
        assert_ne!(names[1], names[2]);
    }
}
