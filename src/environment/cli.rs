//! Settings of the `tycho` command line: the access token of `render`/`up` (the API token
//! of `tycho api` is in [`super::server`]).
//!
//! Read from the process environment by [`super::var`] only.

/// What the command line reads from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliEnv {
    /// `TYCHO_ACCESS_TOKEN`: the `access_token` of the principal `render` and `up` send
    /// (never a command-line argument: those are visible to every user of the machine).
    /// `None` when unset or empty.
    pub access_token: Option<String>,
}

impl CliEnv {
    /// The settings the process environment gives.
    pub fn from_env() -> Self {
        CliEnv {
            access_token: super::var("TYCHO_ACCESS_TOKEN").filter(|t| !t.is_empty()),
        }
    }
}
