//! The commands: their arguments (clap) and what they do.

use super::connect::check_cluster;
use super::output::{self, cell, print, table, Format, Output};
use super::request::{self, check_guid, RegistryApp};
use super::{usage, Context};
use crate::compile::{compile, CompileOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::exec::backplane::{Backplane, Operation};
use serde_json::Value;
use std::path::PathBuf;

/// Where the system comes from: a compose file, or an app of a registry.
#[derive(clap::Args, Debug)]
pub struct SourceArgs {
    /// The docker-compose file (`-` reads it from standard input).
    #[arg(
        short = 'f',
        long = "file",
        required_unless_present = "registry",
        conflicts_with = "registry"
    )]
    file: Option<PathBuf>,
    /// Settings file (KEY=value lines); default: .env beside the compose file.
    #[arg(
        long = "env-file",
        visible_alias = "settings",
        conflicts_with = "registry"
    )]
    env_file: Option<PathBuf>,
    /// App registry (a directory with app-registry.yaml, app-defaults.yaml and the specs,
    /// or an HTTP(S) base URL): build the request as appstore does (with --product, --app).
    #[arg(long, value_name = "URL|DIR", requires_all = ["product", "app"])]
    registry: Option<String>,
    /// The registry context (appstore's brand), with --registry.
    #[arg(long, requires = "registry")]
    product: Option<String>,
    /// The app id, with --registry.
    #[arg(long, requires = "registry")]
    app: Option<String>,
    /// The host name the user reached appstore by (the principal's `host`), with --registry.
    #[arg(long, requires = "registry")]
    host: Option<String>,
    /// System name; default: the compose file's directory name (with --registry: the app).
    #[arg(short = 'n', long = "name", conflicts_with = "registry")]
    name: Option<String>,
    /// Username the system runs for.
    #[arg(long, default_value = "renci")]
    username: String,
    /// Use this GUID (32 lowercase hex digits) instead of a fresh one.
    #[arg(long)]
    guid: Option<String>,
    /// Make each compose warning (a key not converted, an undefined variable) an error.
    #[arg(long)]
    strict: bool,
    /// Check the objects against this Pod Security Standards level (default: the
    /// configuration's tycho.policy.pod_security, TYCHO_POD_SECURITY, else baseline).
    #[arg(long = "pod-security", value_name = "LEVEL", value_parser = ["privileged", "baseline", "restricted"])]
    pod_security: Option<String>,
}

impl SourceArgs {
    /// The configuration the command compiles with: `base` (`--config`, else the
    /// built-in one), with `--pod-security` when given, and `--strict` as
    /// `tycho.compute.system.strict` (so the backplane refuses what it cannot map too).
    fn config<'a>(&self, base: &'a Value) -> std::borrow::Cow<'a, Value> {
        let config = base;
        let mut config = match self
            .pod_security
            .as_deref()
            .and_then(crate::compile::policy::Level::parse)
        {
            Some(level) => {
                std::borrow::Cow::Owned(crate::compile::policy::with_level(config, level))
            }
            None => std::borrow::Cow::Borrowed(config),
        };
        if self.strict {
            let owned = config.to_mut();
            if let Some(system) = owned
                .pointer_mut("/tycho/compute/system")
                .and_then(Value::as_object_mut)
            {
                system.insert("strict".into(), Value::Bool(true));
            }
        }
        config
    }

    fn request(&self, ctx: &Context) -> Result<Value> {
        if let Some(guid) = &self.guid {
            check_guid(guid)?;
        }
        match (&self.registry, &self.file) {
            (Some(registry), _) => request::registry_request(
                &RegistryApp {
                    registry,
                    product: self.product.as_deref().unwrap_or_default(),
                    app: self.app.as_deref().unwrap_or_default(),
                    username: &self.username,
                    host: self.host.as_deref(),
                },
                &ctx.env,
                ctx.max_input,
            ),
            (None, Some(file)) => request::compose_request(
                file,
                self.env_file.as_deref(),
                self.name.as_deref(),
                &self.username,
                &ctx.env,
                ctx.max_input,
            ),
            (None, None) => Err(Error::input("give -f FILE or --registry")),
        }
    }
}

/// `--dry-run`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// Print the objects, send nothing.
    Client,
    /// Send every write with `dryRun=All`: the API server checks and answers, stores nothing.
    Server,
}

/// `tycho up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Wait until the system's Deployment is available; name the reason when it fails.
    #[arg(long)]
    wait: bool,
    /// Seconds --wait waits at most.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    timeout: f64,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
    /// Create nothing: print the objects (client), or have the API server check them (server).
    #[arg(long = "dry-run", value_enum, num_args = 0..=1, default_missing_value = "client", value_name = "client|server")]
    dry_run: Option<DryRun>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// `tycho status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// GUID of one system (default: every system).
    guid: Option<String>,
    /// Print only the GUIDs (same as -o name).
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

/// `tycho down`.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// GUIDs of the systems to delete.
    #[arg(required = true, value_name = "GUID")]
    guids: Vec<String>,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
}

/// `tycho modify`.
#[derive(clap::Args, Debug)]
pub struct ModifyArgs {
    /// The modify request: {"tycho-guid": GUID, "labels": {...}, "cpu": "1", "memory": "1G"}
    /// (`-` reads it from standard input).
    #[arg(value_name = "JSON")]
    request: String,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
}

/// `tycho api`.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
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
    /// Timeouts and limits (src/limits/http.rs).
    #[command(flatten)]
    limits: crate::server::limits::LimitArgs,
    /// Who may read GET /metrics: open (anyone, token or not), token (like the other
    /// routes), off (no route). Default open [env: TYCHO_API_METRICS].
    #[arg(long, value_enum, value_name = "ACCESS")]
    metrics: Option<crate::server::MetricsAccess>,
    /// Run a culling pass every DURATION (30m, 1h) with the options below (kubernetes).
    #[arg(long = "cull-every", value_name = "DURATION")]
    cull_every: Option<String>,
    /// What each culling pass does (as `tycho cull`).
    #[command(flatten)]
    cull: super::stopcull::CullArgs,
}

/// `tycho render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Render the variant used when an Ambassador gateway is present.
    #[arg(long)]
    ambassador: bool,
    /// Print the token Secret's values (default: `<redacted>`). The token comes from
    /// TYCHO_ACCESS_TOKEN.
    #[arg(long = "show-secrets")]
    show_secrets: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

/// The objects of a request, offline; `metadata.namespace` set when `namespace` is given;
/// the token Secret's values redacted unless `show_secrets`.
fn compiled_objects(
    config: &Value,
    request: &Value,
    guid: Option<String>,
    ambassador: bool,
    namespace: Option<&str>,
    show_secrets: bool,
    strict: bool,
) -> Result<Vec<Value>> {
    let options = CompileOptions {
        ambassador,
        identifier: guid,
        strict,
        quiet: true,
        ..Default::default()
    };
    let compiled = compile(config, request, &options)?;
    print_warnings(&compiled.system.warnings);
    let mut objects = compiled.objects();
    for object in &mut objects {
        if !show_secrets && object.get("kind").and_then(Value::as_str) == Some("Secret") {
            *object = crate::compile::token_secret::redacted(object);
        }
        if let (Some(ns), Some(Value::Object(meta))) = (namespace, object.get_mut("metadata")) {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }
    Ok(objects)
}

/// Prints the model's warnings on stderr, one `tycho: warning: ...` line each.
fn print_warnings(warnings: &[crate::model::Warning]) {
    for w in warnings {
        eprintln!("tycho: warning: {}", super::one_line(&w.to_string()));
    }
}

/// `tycho render`.
pub fn render(args: &RenderArgs, ctx: &Context) -> Result<i32> {
    let request = args.source.request(ctx)?;
    let objects = compiled_objects(
        &args.source.config(&ctx.config),
        &request,
        args.source.guid.clone(),
        args.ambassador,
        ctx.namespace.as_deref(),
        args.show_secrets,
        args.source.strict,
    )?;
    print(&output::objects(&objects, args.output))?;
    Ok(0)
}

fn check_timeout(what: &str, seconds: f64) -> Option<i32> {
    (!(seconds.is_finite() && seconds > 0.0)).then(|| {
        usage(format!(
            "{what} must be a positive number of seconds, got {seconds}"
        ))
    })
}

/// The port `tycho status` shows for `container` of `system`: its Service's port (the
/// container's first port, else the request's port).
fn service_port(system: &crate::model::System, container: &str) -> Option<Value> {
    system
        .containers
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.ports.first())
        .map(|p| p.containerPort.clone())
        .or_else(|| system.services.get(container).map(|s| s.port.clone()))
        .filter(|p| !p.is_null())
}

/// `tycho up`.
// Long because: the steps of `tycho up` in order, each printing the original's line.
pub fn up(args: &UpArgs, ctx: &Context) -> Result<i32> {
    if let Some(code) = check_timeout("--timeout", args.timeout) {
        return Ok(code);
    }
    let backplane = Backplane::parse(&args.backplane)?;
    let request = args.source.request(ctx)?;
    let namespace = ctx.namespace.as_deref();
    if let Some(dry_run) = args.dry_run {
        return dry_run_up(args, ctx, &request, dry_run, backplane);
    }
    let config = args.source.config(&ctx.config);
    let config = config.as_ref();
    let system = crate::compile::parse_system_with(
        config,
        &request,
        args.source.guid.clone(),
        args.source.strict,
        true,
    )?;
    print_warnings(&system.warnings);
    let guid = system.identifier.clone();
    let ports: Vec<(String, Option<Value>)> = system
        .services
        .keys()
        .map(|c| (c.clone(), service_port(&system, c)))
        .collect();
    let target = ctx.target(backplane, config)?;
    let result = target.run(Operation::Start(Box::new(system)))?;
    let name = result
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let containers: Vec<(&String, &Value)> = result
        .get("containers")
        .and_then(Value::as_object)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let port_of = |service: &str, ports_of_result: &Value| -> String {
        let shown = ports
            .iter()
            .find(|(c, _)| c == service)
            .and_then(|(_, p)| p.clone());
        match shown {
            Some(p) => cell(Some(&p)),
            // A container without a Service port: what the backplane answered.
            None => cell(
                ports_of_result
                    .as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.as_str() != "ip_address"))
                    .map(|(_, v)| v),
            ),
        }
    };
    match args.output {
        Output::Table | Output::Wide => {
            // The original prints the first service only; -o wide prints every one.
            let shown = if args.output == Output::Wide {
                containers.len()
            } else {
                1
            };
            let rows: Vec<Vec<String>> = containers
                .iter()
                .take(shown)
                .map(|(service, ports)| {
                    vec![
                        (*service).clone(),
                        guid.clone(),
                        cell(ports.get("ip_address")),
                        port_of(service, ports),
                    ]
                })
                .collect();
            print(&table(
                &["SERVICE", "GUID", "IP_ADDRESS", "PORT"],
                &[30, 35, 15, 7],
                &rows,
            ))?;
        }
        Output::Name => print(&format!("{guid}\n"))?,
        Output::Json => print(&output::formatted(&result, true))?,
        Output::Yaml => print(&output::formatted(&result, false))?,
    }
    if !args.wait {
        return Ok(0);
    }
    wait(args, &ctx.config, &name, &guid, backplane, namespace)
}

fn wait(
    args: &UpArgs,
    config: &Value,
    name: &str,
    guid: &str,
    backplane: Backplane,
    namespace: Option<&str>,
) -> Result<i32> {
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    if backplane == Backplane::Docker {
        crate::exec::backplane::wait_ready_docker(config, guid, timeout, |line| {
            eprintln!("tycho: {line}");
        })?;
        eprintln!("tycho: system {name} is ready");
        return Ok(0);
    }
    let waited = crate::exec::kube::wait::block_on(async {
        tokio::select! {
            r = crate::exec::kube::wait::wait_async(guid, namespace, timeout, |event| {
                eprintln!("tycho: {}", event.message);
            }) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::new(
                ErrorKind::Kube,
                format!("interrupted; system {name} (GUID {guid}) keeps starting (tycho down {guid} removes it)"),
            )),
        }
    })?;
    use crate::exec::kube::wait::WaitOutcome;
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

/// `tycho up --dry-run`: the objects a start would create (compiled without the cluster's
/// facts: no Ambassador, every claim mounted), printed (client) or sent with `dryRun=All`
/// (server) and the server's answers printed.
fn dry_run_up(
    args: &UpArgs,
    ctx: &Context,
    request: &Value,
    dry_run: DryRun,
    backplane: Backplane,
) -> Result<i32> {
    if args.wait {
        return Ok(usage("--wait cannot be combined with --dry-run"));
    }
    if dry_run == DryRun::Server && backplane != Backplane::Kubernetes {
        return Ok(usage("--dry-run=server needs the kubernetes backplane"));
    }
    let objects = match dry_run {
        DryRun::Client => compiled_objects(
            &args.source.config(&ctx.config),
            request,
            args.source.guid.clone(),
            false,
            ctx.namespace.as_deref(),
            false,
            args.source.strict,
        )?,
        DryRun::Server => {
            check_cluster()?;
            let objects = compiled_objects(
                &args.source.config(&ctx.config),
                request,
                args.source.guid.clone(),
                false,
                None,
                true,
                args.source.strict,
            )?;
            super::dry_run::create_all(ctx.namespace.as_deref(), objects)?
        }
    };
    let suffix = match dry_run {
        DryRun::Client => "(dry run)",
        DryRun::Server => "(server dry run)",
    };
    match args.output {
        Output::Table | Output::Wide => {
            let lines: String = objects
                .iter()
                .map(|o| format!("{} created {suffix}\n", output::object_name(o)))
                .collect();
            print(&lines)?;
        }
        Output::Name => print(&output::objects(&objects, Format::Name))?,
        Output::Json => print(&output::objects(&objects, Format::Json))?,
        Output::Yaml => print(&output::objects(&objects, Format::Yaml))?,
    }
    Ok(0)
}

/// `tycho status`.
// Long because: the `tycho status` table, column by column, in the original's layout.
pub fn status(args: &StatusArgs, ctx: &Context) -> Result<i32> {
    let guid = args
        .guid
        .as_deref()
        .map(|g| g.replace(std::path::MAIN_SEPARATOR, "-"));
    let target = ctx.target(Backplane::parse(&args.backplane)?, &ctx.config)?;
    let rows = crate::exec::backplane::rows(target.run(Operation::Status {
        name: guid.clone(),
        username: args.username.clone(),
        reasons: false,
    })?);
    if let (Some(g), true) = (&guid, rows.is_empty()) {
        return Err(Error::input(format!(
            "no system with GUID {}",
            request::cut(g)
        )));
    }
    let output = if args.terse {
        Output::Name
    } else {
        args.output
    };
    match output {
        Output::Name => {
            let out: String = rows.iter().map(|r| cell(r.get("sid")) + "\n").collect();
            print(&out)?;
        }
        Output::Table | Output::Wide if rows.is_empty() => print("None running\n")?,
        Output::Table => {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    ["name", "sid", "ip_address", "port", "creation_time"]
                        .iter()
                        .map(|k| cell(r.get(*k)))
                        .collect()
                })
                .collect();
            print(&table(
                &["SYSTEM", "GUID", "IP_ADDRESS", "PORT", "CREATION_TIME"],
                &[30, 35, 15, 7],
                &rows,
            ))?;
        }
        Output::Wide => {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    [
                        "name",
                        "sid",
                        "app_id",
                        "username",
                        "ip_address",
                        "port",
                        "is_ready",
                        "creation_time",
                    ]
                    .iter()
                    .map(|k| cell(r.get(*k)))
                    .collect()
                })
                .collect();
            print(&table(
                &[
                    "SYSTEM",
                    "GUID",
                    "APP_ID",
                    "USERNAME",
                    "IP_ADDRESS",
                    "PORT",
                    "READY",
                    "CREATION_TIME",
                ],
                &[30, 35, 15, 15, 15, 7, 7],
                &rows,
            ))?;
        }
        Output::Json => print(&output::formatted(&Value::Array(rows), true))?,
        Output::Yaml => print(&output::formatted(&Value::Array(rows), false))?,
    }
    Ok(0)
}

/// `tycho down`: each GUID deleted; an unknown one is a failure (the others are deleted
/// all the same).
pub fn down(args: &DownArgs, ctx: &Context) -> Result<i32> {
    let mut code = 0;
    let target = ctx.target(Backplane::parse(&args.backplane)?, &ctx.config)?;
    for guid in &args.guids {
        let guid = guid.replace(std::path::MAIN_SEPARATOR, "-");
        let outcome = if guid.is_empty() {
            Err(Error::input("no GUID given"))
        } else {
            let status = Operation::Status {
                name: Some(guid.clone()),
                username: None,
                reasons: false,
            };
            target.run(status).and_then(|rows| {
                if crate::exec::backplane::rows(rows).is_empty() {
                    Err(Error::input("no such system"))
                } else {
                    target.run(Operation::Delete(guid.clone()))
                }
            })
        };
        match outcome {
            Ok(_) => print(&format!("{guid}\n"))?,
            Err(e) => {
                ctx.report(&Error::new(
                    e.kind,
                    format!("cannot delete {}: {}", request::cut(&guid), e.message),
                ));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `tycho modify`.
pub fn modify(args: &ModifyArgs, ctx: &Context) -> Result<i32> {
    let text = if args.request == "-" {
        request::read_input(std::path::Path::new("-"), ctx.max_input)?
    } else {
        args.request.clone()
    };
    let request: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Ok(usage(format!("the modify request is not valid JSON: {e}"))),
    };
    if let Err(problems) = crate::model::schema::validate("ModifyRequest", &request) {
        let all: Vec<String> = problems.iter().map(|p| p.describe()).collect();
        return Ok(usage(format!("invalid modify request: {}", all.join("; "))));
    }
    let request = crate::model::request::modify_request(&request);
    let target = ctx.target(Backplane::parse(&args.backplane)?, &ctx.config)?;
    let result = target.run(Operation::Modify(request))?;
    print(&output::formatted(&result, true))?;
    Ok(0)
}

/// `tycho api`.
pub fn api(args: &ApiArgs, ctx: &Context) -> Result<i32> {
    crate::server::check_backplane(&args.backplane)?;
    if let Some(code) = check_timeout("--request-timeout", args.request_timeout) {
        return Ok(code);
    }
    let env = crate::environment::server::ServerEnv::from_env();
    let limits = match args.limits.limits(&env) {
        Ok(l) => l,
        Err(e) => return Ok(usage(e.message)),
    };
    let metrics = match (args.metrics, env.metrics.as_deref()) {
        (Some(m), _) => m,
        (None, Some(text)) => {
            match crate::server::MetricsAccess::parse(text, "TYCHO_API_METRICS") {
                Ok(m) => m,
                Err(e) => return Ok(usage(e.message)),
            }
        }
        (None, None) => crate::server::MetricsAccess::default(),
    };
    let token = match &env.token {
        Some(t) if t.trim().is_empty() => {
            return Err(
                Error::input("TYCHO_API_TOKEN is set but empty: set a token, or unset it")
                    .at("TYCHO_API_TOKEN"),
            )
        }
        Some(t) => Some(t.trim().to_string()),
        None => None,
    };
    let cull = match &args.cull_every {
        None => None,
        Some(every) => {
            let every = crate::exec::cull::parse_duration(every, "--cull-every")?;
            let Some(options) = args.cull.options(false)? else {
                return Ok(usage("--cull-every needs --max-age or --idle (or both)"));
            };
            if Backplane::parse(&args.backplane)? != Backplane::Kubernetes {
                return Ok(usage("--cull-every runs on the kubernetes backplane only"));
            }
            Some(crate::server::CullLoop {
                every,
                options,
                namespace: ctx.namespace.clone(),
            })
        }
    };
    let options = crate::server::ServerOptions {
        host: args.host.clone(),
        port: args.port,
        token,
        insecure: args.insecure,
        cors_origins: args.cors_origins.clone(),
        request_timeout: std::time::Duration::from_secs_f64(args.request_timeout),
        limits,
        metrics,
        cull,
    };
    let mut executor = crate::exec::backplane::BackplaneExecutor::new(
        Backplane::parse(&args.backplane)?,
        ctx.namespace.clone(),
    );
    executor.config = ctx.config.clone();
    let executor: std::sync::Arc<dyn crate::exec::Executor> = std::sync::Arc::new(executor);
    crate::server::serve(executor, options)?;
    Ok(0)
}
