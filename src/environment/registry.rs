//! Settings of the app registry that come from the environment.
//!
//! Read from the process environment by [`super::var`] only; the rule that uses them
//! is `crate::registry::grok::GrokOptions`.
//!
//! | variable | what |
//! | --- | --- |
//! | `EXTERNAL_TYCHO_APP_REGISTRY_ENABLED` | `false` lets `DOCKSTORE_APPS_BRANCH` pick the branch |
//! | `DOCKSTORE_APPS_BRANCH` | replaces `master` in the default spec repository URL |

/// The registry's environment, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryEnv {
    /// `EXTERNAL_TYCHO_APP_REGISTRY_ENABLED` (empty when unset).
    pub external_registry_enabled: String,
    /// `DOCKSTORE_APPS_BRANCH` (empty when unset).
    pub dockstore_branch: String,
}

impl RegistryEnv {
    /// The settings from the environment.
    pub fn from_env() -> RegistryEnv {
        RegistryEnv {
            external_registry_enabled: super::var("EXTERNAL_TYCHO_APP_REGISTRY_ENABLED")
                .unwrap_or_default(),
            dockstore_branch: super::var("DOCKSTORE_APPS_BRANCH").unwrap_or_default(),
        }
    }
}
