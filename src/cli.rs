//! The `tycho` command line:
//!
//! - `tycho render` compiles a compose file offline and prints the objects for
//!   `kubectl apply -f -` (the token Secret's values as `<redacted>` unless
//!   `--show-secrets`);
//! - `tycho up`, `status`, `down`, `modify` run systems on the cluster through the
//!   executor (`crate::kube`), with the original client's arguments and tables;
//!   `up --wait` follows the Deployment until it is available ([`crate::cli_wait`]);
//! - `tycho api` serves the REST API ([`crate::server`]).
//!
//! Exit codes: 0 success, 1 failure, 2 usage. Errors are one line on stderr
//! (`tycho: error: ...`); `-d/--debug` adds debug logging and the error's kind.

use crate::compile::{compile, CompileOptions};
use crate::error::{Error, ErrorKind, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

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
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config; in-cluster in a pod).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a system from a docker-compose file on the cluster.
    Up(UpArgs),
    /// List running systems (all, one GUID, or one user's).
    Status(StatusArgs),
    /// Delete systems by GUID.
    Down(DownArgs),
    /// Change labels and cpu/memory of a running system.
    Modify(ModifyArgs),
    /// Compile a compose file into Kubernetes objects, offline.
    Render(RenderArgs),
    /// Serve the REST API (POST /system/start, status, delete, modify).
    Api(ApiArgs),
}

/// Output of the cluster commands.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    /// The docker-compose file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Settings file (KEY=value lines); default: .env beside the compose file.
    #[arg(long = "settings", alias = "env-file")]
    settings: Option<PathBuf>,
    /// System name; default: the compose file's directory name.
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Username the system runs for.
    #[arg(long, default_value = "renci")]
    username: String,
    /// Wait until the system's Deployment is available; name the reason when it fails.
    #[arg(long)]
    wait: bool,
    /// Seconds --wait waits at most.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    timeout: f64,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// GUID of one system (default: every system).
    guid: Option<String>,
    /// Print only the GUIDs.
    #[arg(long)]
    terse: bool,
    /// Only this user's systems.
    #[arg(long)]
    username: Option<String>,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

#[derive(clap::Args, Debug)]
struct DownArgs {
    /// GUIDs of the systems to delete.
    #[arg(required = true, value_name = "GUID")]
    guids: Vec<String>,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
}

#[derive(clap::Args, Debug)]
struct ModifyArgs {
    /// The modify request: {"tycho-guid": GUID, "labels": {...}, "cpu": "1", "memory": "1G"}.
    #[arg(value_name = "JSON")]
    request: String,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
}

#[derive(clap::Args, Debug)]
struct ApiArgs {
    /// Port to listen on (0: any free port; the address is logged).
    #[arg(short = 'p', long, default_value_t = 5000)]
    port: u16,
    /// Address to listen on. A non-loopback address needs TYCHO_API_TOKEN or --insecure.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Compute backplane.
    #[arg(short = 'b', long, default_value = "kubernetes")]
    backplane: String,
    /// Listen on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// Origin allowed by CORS (repeatable; "*" for any). Default: none.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Seconds a request may take before the answer is 504 (the executor's own budget,
    /// TYCHO_KUBE_TIMEOUT, is 120 s).
    #[arg(long, default_value_t = 150.0, value_name = "S")]
    request_timeout: f64,
    /// Timeouts and limits (src/server/limits.rs).
    #[command(flatten)]
    limits: crate::server::limits::LimitArgs,
}

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

#[derive(clap::Args, Debug)]
struct RenderArgs {
    /// The docker-compose file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Settings file (KEY=value lines); default: .env beside the compose file.
    #[arg(long = "env-file", alias = "settings")]
    env_file: Option<PathBuf>,
    /// System name; default: the compose file's directory name.
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// Username the system runs for.
    #[arg(long, default_value = "renci")]
    username: String,
    /// Render the variant used when an Ambassador gateway is present.
    #[arg(long)]
    ambassador: bool,
    /// Use this GUID (32 hex digits) instead of a fresh one.
    #[arg(long)]
    guid: Option<String>,
    /// Print the token Secret's values (default: `<redacted>`). The token comes from
    /// TYCHO_ACCESS_TOKEN.
    #[arg(long = "show-secrets")]
    show_secrets: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

/// Parses KEY=value lines like the original's `parse_env`.
pub fn parse_env(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// The services entry `tycho up` derives from a compose document: the last port of
/// every service that has ports.
pub fn services_from_compose(system: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, svc) in system
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(ports) = svc.get("ports").and_then(Value::as_array) {
            if let Some(p) = ports.last() {
                let text = crate::pyfmt::py_str(p);
                let port = text
                    .rsplit(':')
                    .next()
                    .unwrap_or(&text)
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let port = port
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(port));
                out.insert(name.clone(), json!({"port": port}));
            }
        }
    }
    out
}

fn default_name(file: &Path) -> String {
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let raw = abs
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    // A directory name becomes a valid system name: [a-z0-9-], at most 30 characters.
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = cleaned.trim_matches('-').chars().take(30).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "system".into()
    } else {
        trimmed
    }
}

/// The start request `tycho up` and `tycho render` send for a compose file: settings
/// from `env_file` (default: `.env` beside the compose file, if any), name from `name`
/// (default: the compose file's directory), principal `{"username": username}` plus
/// `access_token` from the `TYCHO_ACCESS_TOKEN` environment variable when it is set
/// (never a command-line argument: those are visible to every user of the machine).
fn compose_request(
    file: &Path,
    env_file: Option<&Path>,
    name: Option<&str>,
    username: &str,
) -> Result<Value> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", file.display())))?;
    let env_path = env_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).join(".env"));
    let settings_text = match std::fs::read_to_string(&env_path) {
        Ok(t) => t,
        Err(_) if env_file.is_none() => String::new(),
        Err(e) => {
            return Err(Error::input(format!(
                "cannot read settings {}: {e}",
                env_path.display()
            )))
        }
    };
    // `$NAME` / `${NAME}` of the settings, substituted into the text before parsing as
    // the original's `TemplateUtils.apply_environment` does.
    let text = crate::settings::apply_settings(&settings_text, &text);
    let settings = parse_env(&settings_text);
    let system =
        crate::yaml::load(&text).map_err(|e| Error::input(format!("{}: {e}", file.display())))?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| default_name(file))
        .replace(std::path::MAIN_SEPARATOR, "-");
    let mut principal = json!({"username": username});
    if let Some(token) = std::env::var("TYCHO_ACCESS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        principal["access_token"] = Value::String(token);
    }
    Ok(json!({
        "name": name,
        "principal": principal.to_string(),
        "serviceaccount": "default",
        "env": settings,
        "services": services_from_compose(&system),
        "system": system,
    }))
}

fn render(args: &RenderArgs) -> Result<String> {
    let request = compose_request(
        &args.file,
        args.env_file.as_deref(),
        args.name.as_deref(),
        &args.username,
    )?;
    let options = CompileOptions {
        ambassador: args.ambassador,
        identifier: args.guid.clone(),
        ..Default::default()
    };
    let compiled = compile(crate::config::default_config(), &request, &options)?;
    let mut objects = compiled.objects();
    if !args.show_secrets {
        for object in &mut objects {
            if object.get("kind").and_then(Value::as_str) == Some("Secret") {
                *object = crate::token_env::redacted(object);
            }
        }
    }
    Ok(match args.output {
        Format::Yaml => crate::yaml::dump_all(&objects),
        Format::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
        }
    })
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
    if let Some(path) = &cli.kubeconfig {
        if !path.is_file() {
            return fail(
                &Error::input(format!("--kubeconfig {}: no such file", path.display())),
                cli.debug,
            );
        }
    }
    // Handed to the executor (and the wait loop, which uses its client) as values; the
    // watch cache only serves the long-lived `tycho api`.
    crate::kube::set_overrides(crate::kube::KubeOverrides {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        no_cache: !matches!(cli.command, Command::Api(_)),
    });
    let namespace = cli.namespace.as_deref();
    let result = match &cli.command {
        Command::Render(a) => render(a).map(|out| {
            print(&out);
            0
        }),
        Command::Up(a) => up(a, namespace),
        Command::Status(a) => status(a, namespace),
        Command::Down(a) => down(a, namespace, cli.debug),
        Command::Modify(a) => modify(a, namespace),
        Command::Api(a) => api(a, namespace),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e, cli.debug),
    }
}

/// A usage error found after parsing: one line, exit code 2.
fn usage(message: impl AsRef<str>) -> i32 {
    eprintln!("tycho: error: {}", one_line(message.as_ref()));
    2
}

/// A failure: one line (with `--debug`, the kind and the message as it is), exit code 1.
fn fail(e: &Error, debug: bool) -> i32 {
    if debug {
        eprintln!("tycho: error ({:?}): {}", e.kind, e.message);
    } else {
        eprintln!("tycho: error: {}", one_line(&e.message));
    }
    1
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The original's `TemplateUtils.trunc`: at most `max` characters, then "..".
fn trunc(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max).collect::<String>() + ".."
    } else {
        s.to_string()
    }
}

/// Python's `str()` of a JSON value as the original prints table cells.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => crate::pyfmt::py_str(other),
    }
}

fn pad(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

fn formatted(value: &Value, output: Output) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        _ => crate::yaml::dump(value),
    }
}

fn up(args: &UpArgs, namespace: Option<&str>) -> Result<i32> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Ok(usage(format!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        )));
    }
    let config = crate::config::default_config();
    let request = compose_request(
        &args.file,
        args.settings.as_deref(),
        args.name.as_deref(),
        &args.username,
    )?;
    let system = crate::compile::parse_system(config, &request, None)?;
    let guid = system.identifier.clone();
    let backplane = crate::backplane::Backplane::parse(&args.backplane)?;
    let result = crate::backplane::start(backplane, config, system, namespace)?;
    let name = result
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match args.output {
        Output::Table => {
            // The original prints the first service only.
            let mut out = format!(
                "{} {} {} {}\n",
                pad("SERVICE", 30),
                pad("GUID", 35),
                pad("IP_ADDRESS", 15),
                pad("PORT", 7)
            );
            if let Some((service, ports)) = result
                .get("containers")
                .and_then(Value::as_object)
                .and_then(|c| c.iter().next())
            {
                let port = ports
                    .as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.as_str() != "ip_address"))
                    .map(|(_, v)| v);
                out.push_str(&format!(
                    "{} {} {} {}\n",
                    pad(&trunc(service, 28), 30),
                    pad(&trunc(&guid, 33), 35),
                    pad(&cell(ports.get("ip_address")), 15),
                    pad(&cell(port), 7)
                ));
            }
            print(&out);
        }
        other => print(&formatted(&result, other)),
    }
    if !args.wait {
        return Ok(0);
    }
    if backplane == crate::backplane::Backplane::Docker {
        let timeout = std::time::Duration::from_secs_f64(args.timeout);
        crate::backplane::wait_ready_docker(config, &guid, timeout, |line| {
            eprintln!("tycho: {line}");
        })?;
        eprintln!("tycho: system {name} is ready");
        return Ok(0);
    }
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    let waited = crate::cli_wait::block_on(async {
        tokio::select! {
            r = crate::cli_wait::wait_available(namespace, &name, &guid, timeout, |line| {
                eprintln!("tycho: {line}");
            }) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::new(
                ErrorKind::Kube,
                format!("interrupted; system {name} (GUID {guid}) keeps starting (tycho down {guid} removes it)"),
            )),
        }
    })?;
    use crate::cli_wait::WaitOutcome;
    match waited {
        WaitOutcome::Available => {
            eprintln!("tycho: system {name} is available");
            Ok(0)
        }
        WaitOutcome::Failed(reason) => Err(Error::new(
            ErrorKind::Start,
            format!("system {name} (GUID {guid}) is not becoming available: {reason} (it stays; tycho down {guid} removes it)"),
        )),
        WaitOutcome::TimedOut(reason) => {
            let why = if reason.is_empty() {
                "no pod reported a reason".to_string()
            } else {
                reason
            };
            Err(Error::new(
                ErrorKind::Start,
                format!(
                    "system {name} (GUID {guid}) not available after {} s (timeout): {why} (it stays; tycho down {guid} removes it)",
                    args.timeout
                ),
            ))
        }
    }
}

fn status(args: &StatusArgs, namespace: Option<&str>) -> Result<i32> {
    let guid = args
        .guid
        .as_deref()
        .map(|g| g.replace(std::path::MAIN_SEPARATOR, "-"));
    let backplane = crate::backplane::Backplane::parse(&args.backplane)?;
    let rows = crate::backplane::status(
        backplane,
        crate::config::default_config(),
        guid.as_deref(),
        args.username.as_deref(),
        namespace,
    )?;
    if args.terse {
        let mut out = String::new();
        for row in &rows {
            out.push_str(&cell(row.get("sid")));
            out.push('\n');
        }
        print(&out);
        return Ok(0);
    }
    match args.output {
        Output::Table if rows.is_empty() => print("None running\n"),
        Output::Table => {
            let mut out = format!(
                "{} {} {} {} {}\n",
                pad("SYSTEM", 30),
                pad("GUID", 35),
                pad("IP_ADDRESS", 15),
                pad("PORT", 7),
                "CREATION_TIME"
            );
            for row in &rows {
                out.push_str(&format!(
                    "{} {} {} {} {}\n",
                    pad(&trunc(&cell(row.get("name")), 28), 30),
                    pad(&trunc(&cell(row.get("sid")), 33), 35),
                    pad(&cell(row.get("ip_address")), 15),
                    pad(&cell(row.get("port")), 7),
                    cell(row.get("creation_time"))
                ));
            }
            print(&out);
        }
        other => print(&formatted(&Value::Array(rows), other)),
    }
    Ok(0)
}

fn down(args: &DownArgs, namespace: Option<&str>, debug: bool) -> Result<i32> {
    let mut code = 0;
    let backplane = crate::backplane::Backplane::parse(&args.backplane)?;
    for guid in &args.guids {
        let guid = guid.replace(std::path::MAIN_SEPARATOR, "-");
        let config = crate::config::default_config();
        match crate::backplane::delete(backplane, config, &guid, namespace) {
            Ok(_) => print(&format!("{guid}\n")),
            Err(e) => {
                fail(
                    &Error::new(e.kind, format!("cannot delete {guid}: {}", e.message)),
                    debug,
                );
                code = 1;
            }
        }
    }
    Ok(code)
}

fn modify(args: &ModifyArgs, namespace: Option<&str>) -> Result<i32> {
    let request: Value = match serde_json::from_str(&args.request) {
        Ok(v) => v,
        Err(e) => return Ok(usage(format!("the modify request is not valid JSON: {e}"))),
    };
    if let Err(problems) = crate::server::validation::validate("ModifyRequest", &request) {
        let all: Vec<String> = problems.iter().map(|p| p.describe()).collect();
        return Ok(usage(format!("invalid modify request: {}", all.join("; "))));
    }
    let request = crate::server::backend::modify_request(&request);
    let backplane = crate::backplane::Backplane::parse(&args.backplane)?;
    let config = crate::config::default_config();
    let result = crate::backplane::modify(backplane, config, &request, namespace)?;
    print(&formatted(&result, Output::Json));
    Ok(0)
}

fn api(args: &ApiArgs, namespace: Option<&str>) -> Result<i32> {
    crate::server::check_backplane(&args.backplane)?;
    if !(args.request_timeout.is_finite() && args.request_timeout > 0.0) {
        return Ok(usage(format!(
            "--request-timeout must be a positive number of seconds, got {}",
            args.request_timeout
        )));
    }
    let limits = match args.limits.limits() {
        Ok(l) => l,
        Err(e) => return Ok(usage(e.message)),
    };
    let token = match std::env::var("TYCHO_API_TOKEN") {
        Ok(t) if t.trim().is_empty() => {
            return Err(Error::input(
                "TYCHO_API_TOKEN is set but empty: set a token, or unset it",
            ))
        }
        Ok(t) => Some(t.trim().to_string()),
        Err(_) => None,
    };
    let options = crate::server::ServerOptions {
        host: args.host.clone(),
        port: args.port,
        token,
        insecure: args.insecure,
        cors_origins: args.cors_origins.clone(),
        request_timeout: std::time::Duration::from_secs_f64(args.request_timeout),
        limits,
    };
    let executor: std::sync::Arc<dyn crate::server::backend::Executor> =
        match crate::backplane::Backplane::parse(&args.backplane)? {
            crate::backplane::Backplane::Docker => {
                std::sync::Arc::new(crate::backplane::DockerExecutor::new())
            }
            crate::backplane::Backplane::Kubernetes => std::sync::Arc::new(
                crate::server::backend::Kubernetes::new(namespace.map(str::to_string)),
            ),
        };
    crate::server::serve(executor, options)?;
    Ok(0)
}
