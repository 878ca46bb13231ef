//! Settings of the `tycho` command line: the access token of `render`/`up` (the API token
//! of `tycho api` is in [`super::server`]) and the size limit of what it reads.
//!
//! Read from the process environment by [`super::var`] only.
//!
//! | variable | flag | what |
//! | --- | --- | --- |
//! | `TYCHO_ACCESS_TOKEN` | | the principal's `access_token` of `render` and `up` |
//! | `TYCHO_MAX_INPUT_SIZE` | `--max-input-size` | largest compose file, settings file or standard input read (16Mi) |

/// What the command line reads from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliEnv {
    /// `TYCHO_ACCESS_TOKEN`: the `access_token` of the principal `render` and `up` send
    /// (never a command-line argument: those are visible to every user of the machine).
    /// `None` when unset or empty.
    pub access_token: Option<String>,
    /// `TYCHO_MAX_INPUT_SIZE` as set (`--max-input-size` wins over it).
    pub max_input_size: Option<String>,
}

impl CliEnv {
    /// The settings the process environment gives.
    pub fn from_env() -> Self {
        CliEnv {
            access_token: super::var("TYCHO_ACCESS_TOKEN").filter(|t| !t.is_empty()),
            max_input_size: super::var("TYCHO_MAX_INPUT_SIZE"),
        }
    }
}
