//! A container's identity, privileges and filesystems on the Engine, mapped from the
//! System model the way `templates/pod.yaml` maps the same fields on Kubernetes, so a
//! spec runs with the privileges the pod security check saw, never more:
//!
//! | model | pod.yaml | Engine |
//! | --- | --- | --- |
//! | compose `user` (numeric; the registry's `runAsUser`/`runAsGroup` win), else the security context's `run_as_user`/`run_as_group` | `runAsUser`, `runAsGroup` | `Config.User` `uid[:gid]`; a gid alone goes with the image's user |
//! | the security context's `fs_group` | pod `fsGroup` | `HostConfig.GroupAdd` (a supplementary group) |
//! | `read_only` | `readOnlyRootFilesystem` | `HostConfig.ReadonlyRootfs` |
//! | `cap_add`, `cap_drop` | `capabilities.add`/`drop` | `HostConfig.CapAdd`/`CapDrop` |
//! | `tmpfs` | memory `emptyDir` with `sizeLimit` | `HostConfig.Tmpfs` (`size=<bytes>`) |
//! | `shm_size` | memory `emptyDir` at `/dev/shm` | `HostConfig.ShmSize` |
//! | (`privileged` is never converted) | no `privileged` | `HostConfig.Privileged` false |
//!
//! What the Engine cannot do as Kubernetes does is a [`Warning`](crate::model::Warning)
//! naming the service, field and value: an `fsGroup` other than 0 on a container with
//! volumes (the Engine does not change a volume's group ownership).

use crate::error::{Error, Result};
use crate::limits::echo;
use crate::model::warning::Warnings;
use crate::model::{Container, MemoryVolume, System};
use crate::text::pyfmt::py_str;
use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::Value;
use std::collections::HashMap;

/// The user of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum User {
    /// The image's user (no uid or gid is set).
    Image,
    /// `uid` or `uid:gid`.
    Given(String),
    /// A gid alone: the image's user with this group, resolved when the image is known.
    Group(String),
}

/// The security and filesystem settings of one container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Security {
    /// Who the container runs as.
    pub user: User,
    /// Supplementary groups (the security context's `fs_group`).
    pub group_add: Option<Vec<String>>,
    /// Capabilities added (without the `CAP_` prefix).
    pub cap_add: Option<Vec<String>>,
    /// Capabilities dropped.
    pub cap_drop: Option<Vec<String>>,
    /// A read-only root filesystem.
    pub readonly_rootfs: bool,
    /// tmpfs mounts: path → mount options (`size=<bytes>` or none).
    pub tmpfs: Option<HashMap<String, String>>,
    /// Size of `/dev/shm` in bytes.
    pub shm_size: Option<i64>,
}

fn set(v: Option<&Value>) -> Option<String> {
    v.filter(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
        .map(py_str)
}

/// The uid and gid of a container as pod.yaml writes `runAsUser`/`runAsGroup`: compose
/// `user` (already cleared by the model where the registry sets the id), else the
/// security context's.
pub(crate) fn run_as(system: &System, container: &Container) -> (Option<String>, Option<String>) {
    let sc = &system.security_context;
    let cx = &container.compose;
    let uid = cx
        .run_as_user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| set(sc.get("run_as_user")));
    let gid = cx
        .run_as_group
        .clone()
        .filter(|g| !g.is_empty())
        .or_else(|| set(sc.get("run_as_group")));
    (uid, gid)
}

/// The user of a container (see [`run_as`]).
pub(crate) fn user(system: &System, container: &Container) -> User {
    match run_as(system, container) {
        (Some(u), Some(g)) => User::Given(format!("{u}:{g}")),
        (Some(u), None) => User::Given(u),
        (None, Some(g)) => User::Group(g),
        (None, None) => User::Image,
    }
}

/// `Config.User` for a gid alone: the image's user (`name`, `uid`, or `user:group`,
/// whose group gives way) with `gid`; an image without a user runs as root.
pub(crate) fn with_image_user(image_user: &str, gid: &str) -> String {
    let user = image_user.split(':').next().unwrap_or_default().trim();
    let user = if user.is_empty() { "0" } else { user };
    format!("{user}:{gid}")
}

/// A Kubernetes quantity of bytes (`64Mi`, `1Gi`, `512k`, `1048576`) in bytes.
pub(crate) fn quantity_bytes(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor: i64 = match unit {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000_i64.pow(2),
        "G" => 1000_i64.pow(3),
        "T" => 1000_i64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn size(service: &str, field: &str, m: &MemoryVolume) -> Result<Option<i64>> {
    match m.size_limit.as_deref() {
        None | Some("") => Ok(None),
        Some(q) => quantity_bytes(q)
            .filter(|b| *b > 0)
            .map(Some)
            .ok_or_else(|| {
                Error::input(format!(
                    "service '{service}': {field} {} is not a size in bytes (like 64Mi)",
                    echo(&format!("{q:?}"))
                ))
            }),
    }
}

/// Whether a memory volume is the model's `shm_size` (else a `tmpfs` entry).
fn is_shm(m: &MemoryVolume) -> bool {
    m.name.starts_with("tycho-shm-") && m.path == "/dev/shm"
}

/// The settings of `container`; what the Engine cannot honour as Kubernetes does goes
/// to `warnings`.
pub(crate) fn security(
    system: &System,
    container: &Container,
    mounts_volumes: bool,
    warnings: &mut Warnings,
) -> Result<Security> {
    let service = container.name.as_str();
    let cx = &container.compose;
    let fs_group = set(system.security_context.get("fs_group"));
    if let Some(g) = fs_group.as_deref() {
        if g != "0" && mounts_volumes {
            warnings.push(
                service,
                "security_context.fsGroup",
                format!(
                    "{} is a supplementary group only on Docker: the Engine does not give the volumes to that group as Kubernetes' fsGroup does",
                    echo(g)
                ),
            );
        }
    }
    let mut tmpfs = HashMap::new();
    let mut shm_size = None;
    for m in system
        .memory_volumes
        .iter()
        .filter(|m| m.container_name == container.name)
    {
        if is_shm(m) {
            shm_size = size(service, "shm_size", m)?;
        } else {
            let options = match size(service, "tmpfs size", m)? {
                Some(bytes) => format!("size={bytes}"),
                None => String::new(),
            };
            tmpfs.insert(m.path.clone(), options);
        }
    }
    let list = |caps: &Vec<String>| (!caps.is_empty()).then(|| caps.clone());
    Ok(Security {
        user: user(system, container),
        group_add: fs_group.map(|g| vec![g]),
        cap_add: list(&cx.cap_add),
        cap_drop: list(&cx.cap_drop),
        readonly_rootfs: cx.read_only,
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        shm_size,
    })
}

impl Security {
    /// Writes the settings into a create body (its host config created if missing).
    pub(crate) fn apply(&self, body: &mut ContainerCreateBody) {
        body.user = match &self.user {
            User::Given(u) => Some(u.clone()),
            // Resolved with the image's user before the create.
            User::Image | User::Group(_) => None,
        };
        let host = body.host_config.get_or_insert_with(HostConfig::default);
        host.group_add = self.group_add.clone();
        host.cap_add = self.cap_add.clone();
        host.cap_drop = self.cap_drop.clone();
        host.readonly_rootfs = Some(self.readonly_rootfs);
        host.tmpfs = self.tmpfs.clone();
        host.shm_size = self.shm_size;
        // Never privileged: the pod security check saw no privileged container.
        host.privileged = Some(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(quantity_bytes("64Mi"), Some(64 << 20));
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("1048576"), Some(1 << 20));
        assert_eq!(quantity_bytes("2k"), Some(2000));
        assert_eq!(quantity_bytes("12 parsecs"), None);
        assert_eq!(quantity_bytes("Mi"), None);
        assert_eq!(quantity_bytes("99999999999999999Ti"), None);
    }

    #[test]
    fn a_gid_alone_goes_with_the_image_user() {
        assert_eq!(with_image_user("", "5"), "0:5");
        assert_eq!(with_image_user("jovyan", "5"), "jovyan:5");
        assert_eq!(with_image_user("1000:100", "5"), "1000:5");
    }
}
