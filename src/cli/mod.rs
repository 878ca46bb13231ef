//! The `tycho` command line:
//!
//! - `tycho render` compiles a system offline and prints the objects for
//!   `kubectl apply -f -` (the token Secret's values as `<redacted>` unless
//!   `--show-secrets`);
//! - `tycho up`, `status`, `down`, `modify` run systems on the cluster through the
//!   executor (`crate::exec::kube`), with the original client's arguments and tables;
//!   `up --wait` follows the Deployment until it is available ([`crate::exec::kube::wait`]);
//!   `up --dry-run=client|server` creates nothing ([`dry_run`]);
//! - `tycho events [-f] GUID` prints a system's progress events ([`events`]);
//! - `tycho stop|resume|touch GUID` and `tycho cull` ([`stopcull`], [`crate::exec::cull`]);
//! - `tycho api` serves the REST API ([`crate::server`]), culling with `--cull-every`;
//! - `tycho prepull` builds (and with `--apply` applies) the DaemonSet that pre-pulls a
//!   product's images on every node ([`prepull`]).
//!
//! A system comes from a compose file (`-f FILE`, `-f -` for standard input) or from an
//! app of a registry (`--registry URL|DIR --product P --app A`, the request appstore
//! would send): [`request`]. Output formats and tables: [`output`]. A cluster that does
//! not answer is named within seconds: [`connect`]. The commands: [`commands`].
//!
//! Exit codes: 0 success, 1 failure, 2 usage. Errors are one line on stderr
//! (`tycho: error: ...`); `-d/--debug` adds debug logging and the error's kind.

pub mod commands;
pub mod connect;
pub mod dry_run;
pub mod events;
pub mod output;
pub mod prepull;
pub mod request;
pub mod stopcull;

pub use request::services_from_compose;

use crate::environment::cli::CliEnv;
use crate::error::Error;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Command line of `tycho`.
#[derive(Parser, Debug)]
#[command(
    name = "tycho",
    version,
    about = "Compile docker-compose systems into Kubernetes objects and run them"
)]
pub struct Cli {
    /// Show details (debug logging, full errors).
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,
    /// Kubernetes namespace (default: NAMESPACE, the pod's namespace, the kubeconfig's).
    /// On `render`, the objects' metadata.namespace.
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config; in-cluster in a pod).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Tycho configuration file, in conf/tycho.yaml's form (default: the built-in one):
    /// templates, volumes, placement, strict, access_token_env.
    #[arg(long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Largest compose file, settings file or standard input read (bytes, or with a
    /// unit: 16Mi, 1G). Default 16Mi [env: TYCHO_MAX_INPUT_SIZE].
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_input_size: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a system (a compose file, or a registry app) on the cluster.
    Up(commands::UpArgs),
    /// List running systems (all, one GUID, or one user's).
    Status(commands::StatusArgs),
    /// Delete systems by GUID.
    Down(commands::DownArgs),
    /// Change labels and cpu/memory of a running system.
    Modify(commands::ModifyArgs),
    /// A system's progress events (its state now; with -f each change until it is
    /// ready, fails, is deleted or the timeout passes).
    Events(events::EventsArgs),
    /// Compile a system (a compose file, or a registry app) into Kubernetes objects, offline.
    Render(commands::RenderArgs),
    /// Stop systems by GUID: scale to 0, keeping Services, token Secret, claims, NetworkPolicy.
    Stop(stopcull::GuidArgs),
    /// Resume stopped systems by GUID (with the replica count they had).
    Resume(stopcull::GuidArgs),
    /// Record activity of systems by GUID now (culling counts idle time from it).
    Touch(stopcull::GuidArgs),
    /// Stop or delete the systems idle longer than --idle or older than --max-age.
    Cull(stopcull::CullCommand),
    /// Serve the REST API (POST /system/start, status, delete, modify, stop, resume, touch).
    Api(commands::ApiArgs),
    /// Pre-pull every image of a product's apps on every node (a DaemonSet).
    Prepull(prepull::PrepullArgs),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub struct Context {
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `-d/--debug`.
    pub debug: bool,
    /// The environment the command line reads.
    pub env: CliEnv,
    /// The configuration (`--config`, else the built-in one).
    pub config: serde_json::Value,
    /// `--max-input-size` (else `TYCHO_MAX_INPUT_SIZE`, else [`DEFAULT_MAX_INPUT`]): the
    /// most bytes read from a compose file, a settings file or standard input.
    pub max_input: u64,
}

/// The default of `--max-input-size`: 16 MiB (real compose files are a few KiB).
pub const DEFAULT_MAX_INPUT: u64 = 16 << 20;

/// The input size limit from the flag, else the variable, else the default; the error
/// names the one at fault.
fn max_input(flag: Option<&str>, env: &CliEnv) -> crate::Result<u64> {
    let (text, source) = match (flag, env.max_input_size.as_deref()) {
        (Some(f), _) => (f, "--max-input-size"),
        (None, Some(v)) => (v, "TYCHO_MAX_INPUT_SIZE"),
        (None, None) => return Ok(DEFAULT_MAX_INPUT),
    };
    crate::limits::parse_size(text).ok_or_else(|| {
        Error::input(format!(
            "{source} must be a size (bytes, or with a unit: 16Mi, 1G), got {}",
            crate::limits::echo(&format!("{text:?}"))
        ))
        .at(source)
    })
}

impl Context {
    /// Where a command's operations run: `backplane` with `config` and this context's
    /// namespace. On Kubernetes the cluster is checked first (`connect::check_cluster`:
    /// one line saying what is wrong).
    pub fn target<'a>(
        &'a self,
        backplane: crate::exec::backplane::Backplane,
        config: &'a serde_json::Value,
    ) -> crate::error::Result<crate::exec::backplane::Target<'a>> {
        if backplane == crate::exec::backplane::Backplane::Kubernetes {
            connect::check_cluster()?;
        }
        Ok(crate::exec::backplane::Target {
            backplane,
            config,
            namespace: self.namespace.as_deref(),
        })
    }

    /// Prints `e` as a failure (one line; with `--debug`, the kind and the whole message).
    pub fn report(&self, e: &Error) {
        if self.debug {
            eprintln!("tycho: error ({:?}): {}", e.kind, e.message);
        } else {
            eprintln!("tycho: error: {}", one_line(&e.message));
        }
    }
}

/// Runs the command line; returns the process exit code (0 ok, 1 failure, 2 usage).
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    crate::server::logging::init(cli.debug);
    let env = CliEnv::from_env();
    let max_input = match max_input(cli.max_input_size.as_deref(), &env) {
        Ok(n) => n,
        Err(e) => return usage(e.message),
    };
    let mut ctx = Context {
        namespace: cli.namespace.clone(),
        debug: cli.debug,
        env,
        config: crate::config::default_config().clone(),
        max_input,
    };
    if let Some(path) = &cli.config {
        match crate::config::load_file(&path.to_string_lossy()) {
            Ok(config) if config.is_object() => ctx.config = config,
            Ok(_) => {
                ctx.report(&Error::config(format!(
                    "--config {}: not a mapping of settings (conf/tycho.yaml's form)",
                    path.display()
                )));
                return 1;
            }
            Err(e) => {
                ctx.report(&e);
                return 1;
            }
        }
    }
    if let Some(path) = &cli.kubeconfig {
        if !path.is_file() {
            ctx.report(&Error::input(format!(
                "--kubeconfig {}: no such file",
                path.display()
            )));
            return 1;
        }
    }
    // Handed to the executor (and the wait loop, which uses its client) as values; the
    // watch cache only serves the long-lived `tycho api`.
    let _overrides = crate::exec::kube::set_overrides(crate::exec::kube::KubeOverrides {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        no_cache: !matches!(cli.command, Command::Api(_)),
    });
    let result = match &cli.command {
        Command::Render(a) => commands::render(a, &ctx),
        Command::Up(a) => commands::up(a, &ctx),
        Command::Status(a) => commands::status(a, &ctx),
        Command::Down(a) => commands::down(a, &ctx),
        Command::Modify(a) => commands::modify(a, &ctx),
        Command::Events(a) => events::events(a, &ctx),
        Command::Api(a) => commands::api(a, &ctx),
        Command::Stop(a) => stopcull::by_guid(stopcull::Verb::Stop, a, &ctx),
        Command::Resume(a) => stopcull::by_guid(stopcull::Verb::Resume, a, &ctx),
        Command::Touch(a) => stopcull::by_guid(stopcull::Verb::Touch, a, &ctx),
        Command::Cull(a) => stopcull::cull(a, &ctx),
        Command::Prepull(a) => prepull::prepull(a, &ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            ctx.report(&e);
            1
        }
    }
}

/// A usage error found after parsing: one line, exit code 2.
fn usage(message: impl AsRef<str>) -> i32 {
    eprintln!("tycho: error: {}", one_line(message.as_ref()));
    2
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
