//! The `tycho` command line: `tycho render` compiles a compose file offline and prints
//! the objects for `kubectl apply -f -`.

use crate::compile::{compile, CompileOptions};
use crate::error::{Error, Result};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile a compose file into Kubernetes objects, offline.
    Render(RenderArgs),
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

fn render(args: &RenderArgs) -> Result<String> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Error::input(format!("cannot read {}: {e}", args.file.display())))?;
    let system = crate::yaml::load(&text)
        .map_err(|e| Error::input(format!("{}: {e}", args.file.display())))?;
    let env_path = args
        .env_file
        .clone()
        .unwrap_or_else(|| args.file.parent().unwrap_or(Path::new(".")).join(".env"));
    let settings = match std::fs::read_to_string(&env_path) {
        Ok(t) => parse_env(&t),
        Err(_) if args.env_file.is_none() => Map::new(),
        Err(e) => {
            return Err(Error::input(format!(
                "cannot read settings {}: {e}",
                env_path.display()
            )))
        }
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.file))
        .replace(std::path::MAIN_SEPARATOR, "-");
    let request = json!({
        "name": name,
        "principal": json!({"username": args.username}).to_string(),
        "serviceaccount": "default",
        "env": settings,
        "services": services_from_compose(&system),
        "system": system,
    });
    let options = CompileOptions {
        ambassador: args.ambassador,
        identifier: args.guid.clone(),
        ..Default::default()
    };
    let compiled = compile(crate::config::default_config(), &request, &options)?;
    let objects = compiled.objects();
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
    let result = match &cli.command {
        Command::Render(a) => render(a),
    };
    match result {
        Ok(out) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            0
        }
        Err(e) => {
            eprintln!("tycho: error: {}", e.message.replace('\n', " "));
            1
        }
    }
}
