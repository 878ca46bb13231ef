//! Volumes: the default volumes of the config (home and shared directories on the
//! stdnfs claim) added to each container, and `pvc://` specs resolved into mounts.

use super::{Container, ModelSwitches, Volume};
use crate::error::{Error, Result};
use crate::text::names;
use serde_json::Value;

/// The config's default volumes (`tycho.compute.system.volumes`) as they are added to
/// every container: placeholders replaced, filtered by CREATE_HOME_DIRS; none in the
/// "test" DEV_PHASE.
pub fn default_volumes(config: &Value, switches: &ModelSwitches, username: &str) -> Vec<String> {
    if switches.dev_phase == "test" {
        return Vec::new();
    }
    let listed: Vec<String> =
        crate::config::lookup(config, &["tycho", "compute", "system", "volumes"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
    let replacements = [
        ("stdnfs_pvc", switches.stdnfs_pvc_or_default()),
        ("username", username.to_string()),
        ("parent_dir", switches.parent_dir.clone()),
        ("subpath_dir", switches.subpath_dir_or(username)),
        ("shared_dir", switches.shared_dir.clone()),
    ];
    let create_home_dirs = switches
        .create_home_dirs
        .clone()
        .unwrap_or_else(|| "true".into());
    let mut out = Vec::new();
    for volume in &listed {
        let split: Vec<&str> = volume.split(':').collect();
        if split.len() < 3 {
            break;
        }
        if create_home_dirs == "false"
            && (volume.contains("username") || split[1].contains("shared_dir"))
        {
            continue;
        }
        if create_home_dirs == "true"
            && !split[1].contains("shared_dir")
            && !split[2].contains("subpath_dir")
        {
            continue;
        }
        let mut v = volume.clone();
        for (k, val) in &replacements {
            v = v.replace(k, val);
        }
        out.push(v);
    }
    out
}

/// The mounts of all containers; a claim is a pod volume on its first use only.
pub fn mounts(containers: &[Container]) -> Result<Vec<Volume>> {
    volumes_of(
        containers
            .iter()
            .map(|c| (c.name.as_str(), c.volumes.as_slice())),
    )
}

/// The volume mounts of containers given as (name, `pvc://` specs), in order; a claim's
/// `pvc_name` is set on its first mount only. The volume rule of the model (the Python
/// `Volumes.process_volumes` calls it too).
pub fn volumes_of<'a>(
    containers: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Result<Vec<Volume>> {
    let mut out: Vec<Volume> = Vec::new();
    let mut claims: std::collections::HashSet<String> = Default::default();
    for (name, specs) in containers {
        for spec in specs {
            let (claim, subpath, path, read_only) = parse_volume(name, spec)?;
            let pvc_name = if claims.insert(claim.clone()) {
                Some(claim.clone())
            } else {
                None
            };
            out.push(Volume {
                container_name: name.to_string(),
                pvc_name,
                volume_name: claim,
                path: Some(path),
                subpath: Some(subpath),
                read_only,
            });
        }
    }
    Ok(out)
}

/// Parses `pvc://claim[/sub/path]:/mount[:ro|rw]`.
pub fn parse_volume(service: &str, spec: &str) -> Result<(String, String, String, bool)> {
    let bad = |why: &str| {
        Error::input(format!(
            "service '{service}': volume {spec:?} {why} (expected pvc://<claim>[/<subpath>]:<mount path>[:ro])"
        ))
        .at(format!("system.services.{service}.volumes"))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    if parts[0] != "pvc" || parts.len() < 2 || !parts[1].starts_with("//") {
        return Err(bad("is not a pvc:// volume"));
    }
    let source: Vec<&str> = parts[1][2..].split('/').collect();
    let claim = source[0];
    if !names::is_dns_label(claim, 63) {
        return Err(bad("does not name a valid claim"));
    }
    let subpath = source[1..].join("/");
    let (path, read_only) = match parts.len() {
        3 => (parts[2], false),
        4 if parts[3] == "ro" => (parts[2], true),
        4 if parts[3] == "rw" => (parts[2], false),
        _ => return Err(bad("has no mount path or an unknown mode")),
    };
    if path.is_empty() {
        return Err(bad("has an empty mount path"));
    }
    Ok((claim.to_string(), subpath, path.to_string(), read_only))
}
