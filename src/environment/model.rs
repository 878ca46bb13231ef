//! Switches of the model builder (security context, GPU, resource, ambassador defaults)
//! and its caps on the size of a system ([`ModelCaps`]).
//!
//! Read from the process environment by [`super::var`] and friends only, once per
//! operation ([`ModelSwitches::from_env`] at the entry point of a parse or compile), and
//! passed to [`crate::model`], whose builder is then a pure function of its arguments.
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `TYCHO_MAX_SERVICES` | 64 | services one compose document may define |
//! | `TYCHO_MAX_PORTS` | 64 | `ports` plus `expose` entries one service may list |
//!
//! A cap that is not a positive whole number (`_` separators allowed) means the default.

/// How big a system may be: checked before anything is built from a request, by the
/// model (so the Python API, the command line and the server all refuse the same
/// requests) and by `tycho api` before it takes a start on (HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCaps {
    /// `TYCHO_MAX_SERVICES`: services of one compose document.
    pub services: usize,
    /// `TYCHO_MAX_PORTS`: `ports` plus `expose` entries of one service.
    pub ports: usize,
}

impl Default for ModelCaps {
    fn default() -> Self {
        ModelCaps {
            services: 64,
            ports: 64,
        }
    }
}

impl ModelCaps {
    /// The caps of the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(super::var)
    }

    /// The caps `lookup` gives (a variable's value, if set); defaults for the rest.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = ModelCaps::default();
        let number = |name: &str, default: usize| {
            lookup(name)
                .and_then(|v| v.trim().replace('_', "").parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        ModelCaps {
            services: number("TYCHO_MAX_SERVICES", d.services),
            ports: number("TYCHO_MAX_PORTS", d.ports),
        }
    }
}

/// The environment variables the model honours, with tycho-api 1.17.3's defaults.
///
/// Fields whose default depends on the request (or differs between two uses in the
/// original) are `Option`s; the builder applies the default where it uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSwitches {
    /// `DEV_PHASE` ("prod"): "test" leaves out the default volumes, "dev" the REMOTE_USER header.
    pub dev_phase: String,
    /// `STDNFS_PVC` as set (the claim of home and shared directories; "stdnfs" when unset).
    pub stdnfs_pvc: Option<String>,
    /// `PARENT_DIR` ("home").
    pub parent_dir: String,
    /// `SUBPATH_DIR` (the username when unset).
    pub subpath_dir: Option<String>,
    /// `SHARED_DIR` ("shared").
    pub shared_dir: String,
    /// `CREATE_HOME_DIRS` as set (the default volumes treat unset as "true", the init
    /// container as "false", as the original did).
    pub create_home_dirs: Option<String>,
    /// `TYCHO_APP_RUN_AS_USER` ("0"), used when the registry's securityContext has no runAsUser.
    pub run_as_user: String,
    /// `TYCHO_APP_RUN_AS_GROUP` ("0").
    pub run_as_group: String,
    /// `TYCHO_APP_FS_GROUP` ("0").
    pub fs_group: String,
    /// `INIT_SC_RUN_AS_USER` ("0").
    pub init_run_as_user: String,
    /// `INIT_SC_RUN_AS_GROUP` ("0").
    pub init_run_as_group: String,
    /// `NFSRODS_UID` (non-empty: the only field of the security context).
    pub nfsrods_uid: Option<String>,
    /// `IROD_HOST` is set (an NFS volume of iRODS is mounted).
    pub irods_enabled: bool,
    /// `NFSRODS_HOST` ("").
    pub nfsrods_host: String,
    /// `AMBASSADOR_ID` ("").
    pub ambassador_id: String,
    /// `TYCHO_APP_ENABLE_INIT_CONTAINER` ("true").
    pub enable_init_container: String,
    /// `TYCHO_APP_INIT_IMAGE_REPOSITORY` ("busybox").
    pub init_image_repository: String,
    /// `TYCHO_APP_INIT_IMAGE_TAG` ("latest").
    pub init_image_tag: String,
    /// `TYCHO_APP_INIT_CPUS` ("250m").
    pub init_cpus: String,
    /// `TYCHO_APP_INIT_MEMORY` ("250Mi").
    pub init_memory: String,
    /// `TYCHO_APP_GPU_RESOURCE_NAME` ("nvidia.com/gpu").
    pub gpu_resource_name: String,
    /// `GITEA_HOST` (" ").
    pub gitea_host: String,
    /// `GITEA_USER` (" ").
    pub gitea_user: String,
    /// `GITEA_SERVICE_NAME` (" ").
    pub gitea_service_name: String,
    /// `TYCHO_MAX_SERVICES`, `TYCHO_MAX_PORTS`.
    pub caps: ModelCaps,
}

impl Default for ModelSwitches {
    /// The switches of an empty environment.
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

impl ModelSwitches {
    /// Reads the switches from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(super::var)
    }

    /// Reads the switches with `lookup` (a variable's value, if set): the process
    /// environment for [`Self::from_env`], a map in tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let or = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_string());
        ModelSwitches {
            dev_phase: or("DEV_PHASE", "prod"),
            stdnfs_pvc: lookup("STDNFS_PVC"),
            parent_dir: or("PARENT_DIR", "home"),
            subpath_dir: lookup("SUBPATH_DIR"),
            shared_dir: or("SHARED_DIR", "shared"),
            create_home_dirs: lookup("CREATE_HOME_DIRS"),
            run_as_user: or("TYCHO_APP_RUN_AS_USER", "0"),
            run_as_group: or("TYCHO_APP_RUN_AS_GROUP", "0"),
            fs_group: or("TYCHO_APP_FS_GROUP", "0"),
            init_run_as_user: or("INIT_SC_RUN_AS_USER", "0"),
            init_run_as_group: or("INIT_SC_RUN_AS_GROUP", "0"),
            nfsrods_uid: lookup("NFSRODS_UID").filter(|s| !s.is_empty()),
            irods_enabled: lookup("IROD_HOST").is_some(),
            nfsrods_host: or("NFSRODS_HOST", ""),
            ambassador_id: or("AMBASSADOR_ID", ""),
            enable_init_container: or("TYCHO_APP_ENABLE_INIT_CONTAINER", "true"),
            init_image_repository: or("TYCHO_APP_INIT_IMAGE_REPOSITORY", "busybox"),
            init_image_tag: or("TYCHO_APP_INIT_IMAGE_TAG", "latest"),
            init_cpus: or("TYCHO_APP_INIT_CPUS", "250m"),
            init_memory: or("TYCHO_APP_INIT_MEMORY", "250Mi"),
            gpu_resource_name: or("TYCHO_APP_GPU_RESOURCE_NAME", "nvidia.com/gpu"),
            gitea_host: or("GITEA_HOST", " "),
            gitea_user: or("GITEA_USER", " "),
            gitea_service_name: or("GITEA_SERVICE_NAME", " "),
            caps: ModelCaps::from_lookup(&lookup),
        }
    }

    /// The claim of home and shared directories (`STDNFS_PVC`, "stdnfs").
    pub fn stdnfs_pvc_or_default(&self) -> String {
        self.stdnfs_pvc.clone().unwrap_or_else(|| "stdnfs".into())
    }

    /// The home directory below `parent_dir` (`SUBPATH_DIR`, else the username).
    pub fn subpath_dir_or(&self, username: &str) -> String {
        self.subpath_dir
            .clone()
            .unwrap_or_else(|| username.to_string())
    }

    /// `CREATE_HOME_DIRS` as the init container reads it: lower case, "false" when unset.
    pub fn create_home_dirs_text(&self) -> String {
        self.create_home_dirs
            .as_deref()
            .unwrap_or("false")
            .to_lowercase()
    }

    /// The pod security context `NFSRODS_UID` imposes (`{"run_as_user": uid}`), which
    /// replaces the registry's and the defaults; None when it is unset.
    pub fn nfsrods_security_context(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.nfsrods_uid.as_ref().map(|uid| {
            let mut m = serde_json::Map::new();
            m.insert("run_as_user".into(), serde_json::Value::String(uid.clone()));
            m
        })
    }

    /// `NFSRODS_HOST` when iRODS is enabled (`IROD_HOST` set); None otherwise.
    pub fn nfsrods_host_if_enabled(&self) -> Option<String> {
        self.irods_enabled.then(|| self.nfsrods_host.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let s = ModelSwitches::default();
        assert_eq!(s.dev_phase, "prod");
        assert_eq!(s.stdnfs_pvc_or_default(), "stdnfs");
        assert_eq!(s.subpath_dir_or("alice"), "alice");
        assert_eq!(s.run_as_user, "0");
        assert!(!s.irods_enabled);
        assert_eq!(s.gitea_host, " ");
        assert_eq!(
            s.caps,
            ModelCaps {
                services: 64,
                ports: 64
            }
        );
    }

    #[test]
    fn caps_from_the_environment() {
        let caps = ModelCaps::from_lookup(|k| match k {
            "TYCHO_MAX_SERVICES" => Some("2_000".into()),
            "TYCHO_MAX_PORTS" => Some("0".into()),
            _ => None,
        });
        assert_eq!(
            caps,
            ModelCaps {
                services: 2000,
                ports: 64
            }
        );
        let caps = ModelCaps::from_lookup(|k| (k == "TYCHO_MAX_PORTS").then(|| " 3 ".into()));
        assert_eq!(
            caps,
            ModelCaps {
                services: 64,
                ports: 3
            }
        );
    }

    #[test]
    fn lookup_overrides() {
        let s = ModelSwitches::from_lookup(|k| match k {
            "SUBPATH_DIR" => Some("sub".into()),
            "IROD_HOST" => Some(String::new()),
            "NFSRODS_UID" => Some(String::new()),
            _ => None,
        });
        assert_eq!(s.subpath_dir_or("alice"), "sub");
        assert!(s.irods_enabled);
        assert_eq!(s.nfsrods_uid, None);
    }
}
