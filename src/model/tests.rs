//! Unit tests of the model: the builder with explicit switches, and each compose key's
//! conversion or warning.

use super::*;
use serde_json::json;

fn request(service: Value) -> StartRequest {
    StartRequest::from_json(&json!({
        "name": "app",
        "principal": "{\"username\": \"alice\"}",
        "env": {"greeting": "hi"},
        "system": {"version": "3", "services": {"app": service}},
        "services": {"app": {"port": "8080"}},
    }))
    .unwrap()
}

fn build_with(service: Value, switches: &ModelSwitches) -> crate::error::Result<System> {
    let req = request(service);
    parse(
        crate::config::default_config(),
        &req,
        "0123456789abcdef0123456789abcdef".into(),
        switches,
        &render_setting,
    )
}

fn build(service: Value) -> System {
    build_with(service, &ModelSwitches::default()).unwrap()
}

fn warned(system: &System, key: &str) -> bool {
    system.warnings.iter().any(|w| w.key == key)
}

#[test]
fn switches_are_arguments_not_the_environment() {
    let switches = ModelSwitches::from_lookup(|k| match k {
        "DEV_PHASE" => Some("test".into()),
        "PARENT_DIR" => Some("/data".into()),
        "TYCHO_APP_GPU_RESOURCE_NAME" => Some("amd.com/gpu".into()),
        _ => None,
    });
    let s = build_with(json!({"image": "nginx"}), &switches).unwrap();
    assert_eq!(s.dev_phase, "test");
    assert_eq!(s.parent_dir, "/data");
    assert_eq!(s.gpu_resource_name, "amd.com/gpu");
    assert!(
        s.containers[0].volumes.is_empty(),
        "test phase: no default volumes"
    );
    let prod = build(json!({"image": "nginx"}));
    assert_eq!(prod.containers[0].volumes.len(), 2);
    assert!(prod.warnings.is_empty(), "{:?}", prod.warnings);
}

#[test]
fn command_working_dir_and_numeric_user() {
    let s = build(
        json!({"image": "nginx", "command": ["serve", "--port", "80"], "working_dir": "/srv", "user": "1000:2000"}),
    );
    let cx = &s.containers[0].compose;
    assert_eq!(
        cx.command.as_deref(),
        Some(&["serve".to_string(), "--port".into(), "80".into()][..])
    );
    assert_eq!(cx.working_dir.as_deref(), Some("/srv"));
    assert_eq!(cx.run_as_user.as_deref(), Some("1000"));
    assert_eq!(cx.run_as_group.as_deref(), Some("2000"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn user_by_name_is_ignored_with_a_warning() {
    let s = build(json!({"image": "nginx", "user": "jovyan:1136"}));
    assert_eq!(s.containers[0].compose.run_as_user, None);
    assert_eq!(s.containers[0].compose.run_as_group, None);
    assert!(warned(&s, "user"));
}

#[test]
fn registry_security_context_wins_over_user() {
    let req = StartRequest::from_json(&json!({
        "name": "app",
        "principal": "{\"username\": \"alice\"}",
        "system": {"security_context": {"runAsUser": 3000}, "services": {"app": {"image": "nginx", "user": "1000:2000"}}},
    }))
    .unwrap();
    let s = parse(
        crate::config::default_config(),
        &req,
        "g".into(),
        &ModelSwitches::default(),
        &render_setting,
    )
    .unwrap();
    let cx = &s.containers[0].compose;
    assert_eq!(cx.run_as_user, None);
    assert_eq!(cx.run_as_group.as_deref(), Some("2000"));
    assert!(warned(&s, "user"));
}

#[test]
fn port_protocols() {
    let s = build(
        json!({"image": "dns", "ports": ["53:53/udp", "8080:80/tcp", "9000"], "expose": ["53/udp"]}),
    );
    let c = &s.containers[0];
    assert_eq!(c.ports[0].containerPort, json!("53"));
    assert_eq!(c.ports[0].protocol.as_deref(), Some("UDP"));
    assert_eq!(c.ports[1].protocol.as_deref(), Some("TCP"));
    assert_eq!(c.ports[2].protocol, None);
    assert_eq!(c.expose[0].protocol.as_deref(), Some("UDP"));
    let mut s = s;
    s.resolve_system_port();
    assert_eq!(s.system_port, json!("53"));
}

#[test]
fn healthcheck_becomes_a_liveness_probe() {
    let s = build(
        json!({"image": "nginx", "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "1m30s", "timeout": "10s", "retries": 3, "start_period": "40s"}}),
    );
    let p = s.containers[0].liveness_probe.as_ref().unwrap();
    assert_eq!(p.cmd, json!(["curl", "-f", "http://localhost"]));
    assert_eq!(p.period, json!(90));
    assert_eq!(p.timeout, Some(json!(10)));
    assert_eq!(p.threshold, json!(3));
    assert_eq!(p.delay, json!(40));
    let shell = build(json!({"image": "nginx", "healthcheck": {"test": "curl -f localhost"}}));
    assert_eq!(
        shell.containers[0].liveness_probe.as_ref().unwrap().cmd,
        json!(["/bin/sh", "-c", "curl -f localhost"])
    );
    for off in [
        json!({"disable": true, "test": ["CMD", "x"]}),
        json!({"test": ["NONE"]}),
    ] {
        let s = build(json!({"image": "nginx", "healthcheck": off}));
        assert!(s.containers[0].liveness_probe.is_none());
    }
    let given = build(
        json!({"image": "nginx", "healthcheck": {"test": ["CMD", "x"]}, "ext": {"kube": {"livenessProbe": {"cmd": "y"}}}}),
    );
    assert_eq!(
        given.containers[0].liveness_probe.as_ref().unwrap().cmd,
        json!(["y"])
    );
    assert!(warned(&given, "healthcheck"));
}

#[test]
fn durations_and_sizes() {
    use compose::{byte_size, duration_seconds};
    assert_eq!(duration_seconds("s", "k", &json!("1h2m3s")).unwrap(), 3723);
    assert_eq!(duration_seconds("s", "k", &json!("500ms")).unwrap(), 1);
    assert!(duration_seconds("s", "k", &json!("soon")).is_err());
    assert_eq!(byte_size("s", "k", &json!("64m")).unwrap(), "64Mi");
    assert_eq!(byte_size("s", "k", &json!("1gb")).unwrap(), "1Gi");
    assert_eq!(byte_size("s", "k", &json!(1024)).unwrap(), "1024");
    assert!(byte_size("s", "k", &json!("lots")).is_err());
}

#[test]
fn labels_security_and_memory_volumes() {
    let s = build(json!({
        "image": "nginx",
        "labels": {"tier": "web", "executor": "me", "tycho-guid": "x", "bad key!": "v"},
        "read_only": true,
        "cap_add": ["CAP_NET_ADMIN"],
        "cap_drop": ["ALL"],
        "tmpfs": ["/run", "/tmp:size=64m"],
        "shm_size": "1gb",
    }));
    assert_eq!(s.pod_labels.get("tier").map(String::as_str), Some("web"));
    assert_eq!(s.pod_labels.len(), 1);
    for key in ["labels.executor", "labels.tycho-guid", "labels.bad key!"] {
        assert!(warned(&s, key), "{key}: {:?}", s.warnings);
    }
    let cx = &s.containers[0].compose;
    assert!(cx.read_only);
    assert_eq!(cx.cap_add, vec!["NET_ADMIN"]);
    assert_eq!(cx.cap_drop, vec!["ALL"]);
    let mem: Vec<(&str, Option<&str>)> = s
        .memory_volumes
        .iter()
        .map(|m| (m.path.as_str(), m.size_limit.as_deref()))
        .collect();
    assert_eq!(
        mem,
        vec![
            ("/run", None),
            ("/tmp", Some("64Mi")),
            ("/dev/shm", Some("1Gi"))
        ]
    );
}

#[test]
fn ignored_keys_warn_once_each() {
    let s = build(json!({
        "image": "nginx",
        "restart": "always",
        "depends_on": ["db"],
        "deploy": {"replicas": 3, "resources": {"limits": {"cpus": "1", "memory": "1G"}}},
        "env_file": ".env",
        "resart": "typo",
        "x-note": "extension",
    }));
    for (key, words) in [
        ("restart", "Deployments always restart"),
        ("depends_on", "share one pod"),
        ("deploy.replicas", "one pod"),
        ("env_file", "environment"),
        ("resart", "typo"),
    ] {
        let w: Vec<_> = s.warnings.iter().filter(|w| w.key == key).collect();
        assert_eq!(w.len(), 1, "{key}: {:?}", s.warnings);
        assert!(w[0].message.contains(words), "{}", w[0]);
        assert_eq!(w[0].service, "app");
    }
    assert!(!warned(&s, "x-note"));
    assert_eq!(
        s.warnings
            .iter()
            .find(|w| w.key == "restart")
            .unwrap()
            .to_string(),
        "service 'app': 'restart' is ignored: Deployments always restart"
    );
}

#[test]
fn undefined_template_variables_warn_and_render_empty() {
    let s = build(json!({"image": "nginx:{{ tag }}", "environment": {"G": "{{ greeting }}"}}));
    assert_eq!(s.containers[0].image, "nginx:");
    assert_eq!(s.containers[0].env[0], vec!["G".to_string(), "hi".into()]);
    let w: Vec<_> = s
        .warnings
        .iter()
        .filter(|w| w.message.contains("undefined"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", s.warnings);
    assert_eq!(w[0].key, "image");
    assert!(w[0].message.contains("'tag'"));
}

#[test]
fn every_listed_key_is_converted_or_ignored() {
    for key in compose::IGNORED_KEYS.iter().map(|(k, _)| *k) {
        assert!(!compose::CONVERTED_KEYS.contains(&key), "{key}");
    }
}
