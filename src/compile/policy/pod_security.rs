//! The Kubernetes Pod Security Standards (v1.33), checked on a rendered pod spec before
//! anything is created: `privileged` (no check), `baseline` (known privilege escalations
//! refused) and `restricted` (hardening best practice). Each rule is the standard's, with
//! its name, so a refusal says which one (service, field, value, rule).

use crate::error::{Error, ErrorKind, Result};
#[cfg(test)]
use serde_json::Map;
use serde_json::Value;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations (tycho's default).
    Baseline,
    /// Heavily restricted, current pod hardening best practice.
    Restricted,
}

impl Level {
    /// The level named `name` (`privileged`, `baseline`, `restricted`).
    pub fn parse(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The "safe" sysctls the baseline level allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types the baseline level allows.
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types the restricted level allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// One failed rule: where (service and field), what value, which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The container (the compose service), or None for a pod-level field.
    pub service: Option<String>,
    /// The field, as a path into the pod spec (`containers[0].securityContext.privileged`).
    pub field: String,
    /// The value at fault, as JSON text (cut to 200 characters), or `unset`.
    pub value: String,
    /// The standard's name of the rule (`Capabilities`, `Host Namespaces`, ...).
    pub rule: &'static str,
    /// What the rule allows.
    pub allowed: String,
}

impl Violation {
    /// The violation as one line: service, field, value, rule and level.
    pub fn describe(&self, level: Level) -> String {
        let service = self
            .service
            .as_ref()
            .map(|s| format!("service '{}': ", crate::limits::echo(s)))
            .unwrap_or_default();
        format!(
            "{service}{} = {} violates pod security level {} (rule '{}': {})",
            self.field,
            self.value,
            level.as_str(),
            self.rule,
            self.allowed
        )
    }
}

/// Every violation of `level` in `pod` (a pod spec: the `spec` of a Pod or of a
/// Deployment's pod template), with the pod's `annotations` (AppArmor's old form).
pub fn violations(level: Level, pod: &Value, annotations: Option<&Value>) -> Vec<Violation> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let mut check = Check { out: &mut out };
    // Pod-level fields first, then each container in order.
    check.baseline_pod(pod, annotations);
    if level == Level::Restricted {
        check.restricted_pod(pod);
    }
    for (list, container, path) in containers(pod) {
        check.baseline_container(container, list, &path);
        if level == Level::Restricted {
            check.restricted_container(pod, container, &path);
        }
    }
    out
}

/// Refuses a pod spec that violates `level`: an error (kind [`ErrorKind::Policy`])
/// naming the first violation, and how many more there are.
pub fn check(level: Level, pod: &Value, annotations: Option<&Value>) -> Result<()> {
    let found = violations(level, pod, annotations);
    let Some(first) = found.first() else {
        return Ok(());
    };
    let more = match found.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more violation)".to_string(),
        n => format!(" (and {n} more violations)"),
    };
    Err(Error::new(
        ErrorKind::Policy,
        format!("{}{more}", first.describe(level)),
    )
    .at(first.field.clone()))
}

/// Each container of the pod: (which list, the container, its path).
fn containers(pod: &Value) -> Vec<(&'static str, &Value, String)> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(items) = pod.get(list).and_then(Value::as_array) {
            for (i, c) in items.iter().enumerate() {
                out.push((list, c, format!("{list}[{i}]")));
            }
        }
    }
    out
}

fn shown(v: &Value) -> String {
    crate::limits::echo(&v.to_string())
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

struct Check<'a> {
    out: &'a mut Vec<Violation>,
}

impl Check<'_> {
    fn add(
        &mut self,
        service: Option<&Value>,
        field: String,
        value: String,
        rule: &'static str,
        allowed: impl Into<String>,
    ) {
        self.out.push(Violation {
            service: service
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .map(String::from),
            field,
            value,
            rule,
            allowed: allowed.into(),
        });
    }

    fn baseline_pod(&mut self, pod: &Value, annotations: Option<&Value>) {
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            if is_true(pod.get(key)) {
                self.add(
                    None,
                    key.into(),
                    "true".into(),
                    "Host Namespaces",
                    "must be unset or false",
                );
            }
        }
        let sc = pod.get("securityContext");
        self.security_context(None, sc, "securityContext");
        if let Some(sysctls) = sc.and_then(|s| s.get("sysctls")).and_then(Value::as_array) {
            for (i, s) in sysctls.iter().enumerate() {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                if !SAFE_SYSCTLS.contains(&name) {
                    self.add(
                        None,
                        format!("securityContext.sysctls[{i}].name"),
                        shown(&Value::String(name.into())),
                        "Sysctls",
                        "only the safe sysctls",
                    );
                }
            }
        }
        if let Some(volumes) = pod.get("volumes").and_then(Value::as_array) {
            for (i, v) in volumes.iter().enumerate() {
                if let Some(host) = v.get("hostPath") {
                    self.add(
                        None,
                        format!("volumes[{i}].hostPath"),
                        shown(host),
                        "HostPath Volumes",
                        "no hostPath volumes",
                    );
                }
            }
        }
        if let Some(Value::Object(notes)) = annotations {
            for (k, v) in notes {
                if k.starts_with("container.apparmor.security.beta.kubernetes.io/") {
                    let text = v.as_str().unwrap_or_default();
                    if !(text == "runtime/default" || text.starts_with("localhost/")) {
                        self.add(
                            None,
                            format!("metadata.annotations.{k}"),
                            shown(v),
                            "AppArmor",
                            "runtime/default or localhost/*",
                        );
                    }
                }
            }
        }
    }

    fn baseline_container(&mut self, c: &Value, _list: &str, path: &str) {
        let sc = c.get("securityContext");
        let here = format!("{path}.securityContext");
        if is_true(sc.and_then(|s| s.get("privileged"))) {
            self.add(
                Some(c),
                format!("{here}.privileged"),
                "true".into(),
                "Privileged Containers",
                "must be unset or false",
            );
        }
        if let Some(adds) = sc
            .and_then(|s| s.get("capabilities"))
            .and_then(|c| c.get("add"))
            .and_then(Value::as_array)
        {
            for (i, cap) in adds.iter().enumerate() {
                let name = cap.as_str().unwrap_or_default();
                let bare = name.strip_prefix("CAP_").unwrap_or(name);
                if !BASELINE_CAPABILITIES.contains(&bare) {
                    self.add(
                        Some(c),
                        format!("{here}.capabilities.add[{i}]"),
                        shown(cap),
                        "Capabilities",
                        format!("only {}", BASELINE_CAPABILITIES.join(", ")),
                    );
                }
            }
        }
        if let Some(ports) = c.get("ports").and_then(Value::as_array) {
            for (i, p) in ports.iter().enumerate() {
                if let Some(hp) = p.get("hostPort") {
                    if hp.as_i64() != Some(0) && !hp.is_null() {
                        self.add(
                            Some(c),
                            format!("{path}.ports[{i}].hostPort"),
                            shown(hp),
                            "Host Ports",
                            "must be unset or 0",
                        );
                    }
                }
            }
        }
        if let Some(mount) = sc.and_then(|s| s.get("procMount")).and_then(Value::as_str) {
            if mount != "Default" {
                self.add(
                    Some(c),
                    format!("{here}.procMount"),
                    shown(&Value::String(mount.into())),
                    "/proc Mount Type",
                    "unset or Default",
                );
            }
        }
        self.security_context(Some(c), sc, &here);
    }

    /// Rules that hold for pod and container security contexts alike.
    fn security_context(&mut self, c: Option<&Value>, sc: Option<&Value>, here: &str) {
        let Some(sc) = sc else {
            return;
        };
        if is_true(sc.get("windowsOptions").and_then(|w| w.get("hostProcess"))) {
            self.add(
                c,
                format!("{here}.windowsOptions.hostProcess"),
                "true".into(),
                "HostProcess",
                "must be unset or false",
            );
        }
        if let Some(kind) = sc
            .get("appArmorProfile")
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        {
            if !matches!(kind, "RuntimeDefault" | "Localhost") {
                self.add(
                    c,
                    format!("{here}.appArmorProfile.type"),
                    shown(&Value::String(kind.into())),
                    "AppArmor",
                    "RuntimeDefault or Localhost",
                );
            }
        }
        if let Some(se) = sc.get("seLinuxOptions").and_then(Value::as_object) {
            let kind = se.get("type").and_then(Value::as_str).unwrap_or_default();
            if !SELINUX_TYPES.contains(&kind) {
                self.add(
                    c,
                    format!("{here}.seLinuxOptions.type"),
                    shown(&Value::String(kind.into())),
                    "SELinux",
                    "container_t, container_init_t, container_kvm_t or container_engine_t",
                );
            }
            for key in ["user", "role"] {
                if let Some(v) = se.get(key).filter(|v| v.as_str() != Some("")) {
                    self.add(
                        c,
                        format!("{here}.seLinuxOptions.{key}"),
                        shown(v),
                        "SELinux",
                        "must be unset",
                    );
                }
            }
        }
        if let Some(kind) = seccomp(Some(sc)) {
            if kind == "Unconfined" {
                self.add(
                    c,
                    format!("{here}.seccompProfile.type"),
                    "\"Unconfined\"".into(),
                    "Seccomp",
                    "must not be Unconfined",
                );
            }
        }
    }

    fn restricted_pod(&mut self, pod: &Value) {
        if let Some(volumes) = pod.get("volumes").and_then(Value::as_array) {
            for (i, v) in volumes.iter().enumerate() {
                let Some(m) = v.as_object() else { continue };
                for key in m.keys().filter(|k| k.as_str() != "name") {
                    if !RESTRICTED_VOLUMES.contains(&key.as_str()) && key != "hostPath" {
                        self.add(
                            None,
                            format!("volumes[{i}].{key}"),
                            shown(&Value::String(key.clone())),
                            "Volume Types",
                            format!("only {}", RESTRICTED_VOLUMES.join(", ")),
                        );
                    }
                }
            }
        }
    }

    fn restricted_container(&mut self, pod: &Value, c: &Value, path: &str) {
        let pod_sc = pod.get("securityContext");
        let sc = c.get("securityContext");
        let here = format!("{path}.securityContext");
        let get = |key: &str| sc.and_then(|s| s.get(key));
        if get("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
            self.add(
                Some(c),
                format!("{here}.allowPrivilegeEscalation"),
                get("allowPrivilegeEscalation")
                    .map(shown)
                    .unwrap_or_else(|| "unset".into()),
                "Privilege Escalation",
                "must be false",
            );
        }
        let non_root = get("runAsNonRoot")
            .or_else(|| pod_sc.and_then(|s| s.get("runAsNonRoot")))
            .and_then(Value::as_bool);
        if non_root != Some(true) {
            self.add(
                Some(c),
                format!("{here}.runAsNonRoot"),
                get("runAsNonRoot")
                    .map(shown)
                    .unwrap_or_else(|| "unset".into()),
                "Running as Non-root",
                "true, on the container or the pod",
            );
        }
        let user = get("runAsUser").or_else(|| pod_sc.and_then(|s| s.get("runAsUser")));
        if let Some(u) = user.filter(|u| is_zero(u)) {
            self.add(
                Some(c),
                format!("{here}.runAsUser"),
                shown(u),
                "Running as Non-root user",
                "must not be 0",
            );
        }
        let profile = seccomp(sc).or_else(|| seccomp(pod_sc));
        if !matches!(profile, Some("RuntimeDefault" | "Localhost")) {
            self.add(
                Some(c),
                format!("{here}.seccompProfile.type"),
                profile
                    .map(|p| shown(&Value::String(p.into())))
                    .unwrap_or_else(|| "unset".into()),
                "Seccomp",
                "RuntimeDefault or Localhost, on the container or the pod",
            );
        }
        let caps = get("capabilities");
        let drops: Vec<&str> = caps
            .and_then(|c| c.get("drop"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !drops.contains(&"ALL") {
            self.add(
                Some(c),
                format!("{here}.capabilities.drop"),
                caps.and_then(|c| c.get("drop"))
                    .map(shown)
                    .unwrap_or_else(|| "unset".into()),
                "Capabilities",
                "must drop ALL",
            );
        }
        if let Some(adds) = caps.and_then(|c| c.get("add")).and_then(Value::as_array) {
            for (i, cap) in adds.iter().enumerate() {
                let name = cap.as_str().unwrap_or_default();
                if name.strip_prefix("CAP_").unwrap_or(name) != "NET_BIND_SERVICE" {
                    self.add(
                        Some(c),
                        format!("{here}.capabilities.add[{i}]"),
                        shown(cap),
                        "Capabilities",
                        "only NET_BIND_SERVICE may be added",
                    );
                }
            }
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.trim() == "0",
        _ => false,
    }
}

fn seccomp(sc: Option<&Value>) -> Option<&str> {
    sc.and_then(|s| s.get("seccompProfile"))
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
}

/// The pod spec and annotations of a rendered object: a Deployment (its pod template)
/// or a Pod.
pub fn pod_of(object: &Value) -> Option<(&Value, Option<&Value>)> {
    if let Some(template) = object.get("spec").and_then(|s| s.get("template")) {
        let spec = template.get("spec")?;
        return Some((
            spec,
            template.get("metadata").and_then(|m| m.get("annotations")),
        ));
    }
    let spec = object.get("spec")?;
    Some((
        spec,
        object.get("metadata").and_then(|m| m.get("annotations")),
    ))
}

/// A pod spec with `containers` only, for tests and examples.
#[cfg(test)]
fn pod(containers: Value, extra: Map<String, Value>) -> Value {
    let mut m = extra;
    m.insert("containers".into(), containers);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(level: Level, p: &Value) -> Vec<&'static str> {
        violations(level, p, None).iter().map(|v| v.rule).collect()
    }

    #[test]
    fn a_plain_container_passes_baseline_but_not_restricted() {
        let p = pod(json!([{"name": "web", "image": "nginx"}]), Map::new());
        assert!(rules(Level::Baseline, &p).is_empty());
        let restricted = rules(Level::Restricted, &p);
        for rule in [
            "Privilege Escalation",
            "Running as Non-root",
            "Seccomp",
            "Capabilities",
        ] {
            assert!(restricted.contains(&rule), "{rule}: {restricted:?}");
        }
    }

    #[test]
    fn a_hardened_container_passes_restricted() {
        let p = pod(
            json!([{"name": "web", "image": "nginx", "securityContext": {
                "allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]),
            Map::new(),
        );
        assert!(
            rules(Level::Restricted, &p).is_empty(),
            "{:?}",
            violations(Level::Restricted, &p, None)
        );
    }

    #[test]
    fn each_baseline_rule_names_service_field_value_and_rule() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"hostNetwork": true}),
                "Host Namespaces",
                "hostNetwork",
            ),
            (json!({"hostPID": true}), "Host Namespaces", "hostPID"),
            (json!({"hostIPC": true}), "Host Namespaces", "hostIPC"),
            (
                json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
                "HostPath Volumes",
                "volumes[0].hostPath",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}),
                "Sysctls",
                "securityContext.sysctls[0].name",
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                "Seccomp",
                "securityContext.seccompProfile.type",
            ),
            (
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
                "HostProcess",
                "securityContext.windowsOptions.hostProcess",
            ),
        ];
        for (extra, rule, field) in cases {
            let p = pod(
                json!([{"name": "web", "image": "x"}]),
                extra.as_object().unwrap().clone(),
            );
            let found = violations(Level::Baseline, &p, None);
            assert_eq!(found.len(), 1, "{rule}: {found:?}");
            assert_eq!(found[0].rule, rule);
            assert_eq!(found[0].field, field);
        }
        let containers: Vec<(Value, &str, &str)> = vec![
            (
                json!({"privileged": true}),
                "Privileged Containers",
                "privileged",
            ),
            (
                json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
                "Capabilities",
                "capabilities.add[0]",
            ),
            (
                json!({"procMount": "Unmasked"}),
                "/proc Mount Type",
                "procMount",
            ),
            (
                json!({"seLinuxOptions": {"type": "spc_t"}}),
                "SELinux",
                "seLinuxOptions.type",
            ),
            (
                json!({"seLinuxOptions": {"user": "root"}}),
                "SELinux",
                "seLinuxOptions.user",
            ),
            (
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                "AppArmor",
                "appArmorProfile.type",
            ),
            (
                json!({"seccompProfile": {"type": "Unconfined"}}),
                "Seccomp",
                "seccompProfile.type",
            ),
        ];
        for (sc, rule, field) in containers {
            let p = pod(
                json!([{"name": "web", "image": "x", "securityContext": sc}]),
                Map::new(),
            );
            let found = violations(Level::Baseline, &p, None);
            assert_eq!(found.len(), 1, "{rule}: {found:?}");
            assert_eq!(found[0].rule, rule);
            assert_eq!(found[0].service.as_deref(), Some("web"));
            assert_eq!(
                found[0].field,
                format!("containers[0].securityContext.{field}")
            );
        }
        let p = pod(
            json!([{"name": "web", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
            Map::new(),
        );
        assert_eq!(rules(Level::Baseline, &p), vec!["Host Ports"]);
        let notes = json!({"container.apparmor.security.beta.kubernetes.io/web": "unconfined"});
        let p = pod(json!([{"name": "web", "image": "x"}]), Map::new());
        assert_eq!(
            violations(Level::Baseline, &p, Some(&notes))[0].rule,
            "AppArmor"
        );
    }

    #[test]
    fn the_refusal_is_a_policy_error_naming_the_first_violation() {
        let p = pod(
            json!([{"name": "web", "image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}}}]),
            Map::new(),
        );
        let e = check(Level::Baseline, &p, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Policy);
        assert_eq!(
            e.message,
            "service 'web': containers[0].securityContext.capabilities.add[0] = \"SYS_ADMIN\" violates pod security level baseline (rule 'Capabilities': only AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT) (and 1 more violation)"
        );
        assert_eq!(
            e.field.as_deref(),
            Some("containers[0].securityContext.capabilities.add[0]")
        );
        assert!(check(Level::Privileged, &p, None).is_ok());
    }

    #[test]
    fn restricted_volume_types_and_root_user() {
        let p = pod(
            json!([{"name": "web", "image": "x", "securityContext": {"runAsUser": 0}}]),
            json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "c", "persistentVolumeClaim": {"claimName": "c"}}]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let found = rules(Level::Restricted, &p);
        assert!(found.contains(&"Volume Types"));
        assert!(found.contains(&"Running as Non-root user"));
        assert!(!rules(Level::Baseline, &p).contains(&"Volume Types"));
    }
}
