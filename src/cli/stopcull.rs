//! `tycho stop`, `tycho resume`, `tycho touch` and `tycho cull`, and the culling options
//! `tycho api --cull-every` shares ([`CullArgs`]).

use super::output::{self, cell, print, table, Output};
use super::Context;
use crate::error::{Error, Result};
use crate::exec::backplane::{Backplane, Operation};
use crate::exec::cull::{CullAction, CullOptions};
use serde_json::Value;

/// `tycho stop`, `tycho resume`, `tycho touch`.
#[derive(clap::Args, Debug)]
pub struct GuidArgs {
    /// GUIDs of the systems.
    #[arg(required = true, value_name = "GUID")]
    guids: Vec<String>,
    /// Compute backplane: kubernetes, docker-compose (alias docker).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
}

/// What `tycho stop|resume|touch` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Scale to 0.
    Stop,
    /// Scale back.
    Resume,
    /// Record activity now.
    Touch,
}

/// `tycho stop|resume|touch GUID...`: each GUID on its own line when done; a failure is
/// one line on stderr (the other GUIDs are handled all the same) and exit code 1.
pub fn by_guid(verb: Verb, args: &GuidArgs, ctx: &Context) -> Result<i32> {
    let target = ctx.target(Backplane::parse(&args.backplane)?, &ctx.config)?;
    let mut code = 0;
    for guid in &args.guids {
        let outcome = if guid.is_empty() {
            Err(Error::input("no GUID given"))
        } else {
            target.run(match verb {
                Verb::Stop => Operation::Stop(guid.clone()),
                Verb::Resume => Operation::Resume(guid.clone()),
                Verb::Touch => Operation::Touch(guid.clone()),
            })
        };
        match outcome {
            Ok(_) => print(&format!("{guid}\n"))?,
            Err(e) => {
                let what = match verb {
                    Verb::Stop => "stop",
                    Verb::Resume => "resume",
                    Verb::Touch => "touch",
                };
                ctx.report(&Error::new(
                    e.kind,
                    format!("cannot {what} {}: {}", super::request::cut(guid), e.message),
                ));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// The culling options of `tycho cull` and `tycho api --cull-every`.
#[derive(clap::Args, Debug, Clone)]
pub struct CullArgs {
    /// Cull systems started longer ago than this (90s, 30m, 12h, 7d).
    #[arg(long = "max-age", value_name = "DURATION")]
    max_age: Option<String>,
    /// Cull systems without activity for longer than this (touch, the app's probe, the start).
    #[arg(long = "idle", value_name = "DURATION")]
    idle: Option<String>,
    /// What to do with them: stop (scale to 0; `tycho resume` brings one back) or delete.
    #[arg(long = "action", value_name = "stop|delete", default_value = "stop")]
    action: String,
    /// Only this user's systems.
    #[arg(long = "username", value_name = "U")]
    username: Option<String>,
    /// Only systems of this app.
    #[arg(long = "app", value_name = "A")]
    app: Option<String>,
    /// The host activity probes reach instead of the system's Service [env: TYCHO_ACTIVITY_HOST].
    #[arg(long = "activity-host", value_name = "HOST")]
    activity_host: Option<String>,
    /// Probes and actions at once.
    #[arg(long = "cull-concurrency", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// The time taken as now (RFC 3339; tests) [env: TYCHO_NOW].
    #[arg(long = "now", value_name = "TIME", hide = true)]
    now: Option<String>,
}

impl CullArgs {
    /// The options; `dry_run` as given. None when neither --max-age nor --idle is given.
    pub fn options(&self, dry_run: bool) -> Result<Option<CullOptions>> {
        if self.max_age.is_none() && self.idle.is_none() {
            return Ok(None);
        }
        let options = CullOptions {
            max_age: self
                .max_age
                .as_deref()
                .map(|t| crate::exec::cull::parse_duration(t, "--max-age"))
                .transpose()?,
            idle: self
                .idle
                .as_deref()
                .map(|t| crate::exec::cull::parse_duration(t, "--idle"))
                .transpose()?,
            action: CullAction::parse(&self.action).map_err(|e| e.at("--action"))?,
            username: self.username.clone(),
            app: self.app.clone(),
            dry_run,
            now: self
                .now
                .as_deref()
                .map(|t| crate::exec::cull::parse_time(t, "--now"))
                .transpose()?,
            activity_host: self.activity_host.clone(),
            concurrency: usize::from(self.concurrency),
        };
        options.check()?;
        Ok(Some(options))
    }
}

/// `tycho cull`.
#[derive(clap::Args, Debug)]
pub struct CullCommand {
    #[command(flatten)]
    cull: CullArgs,
    /// List what would be culled and why; change nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Compute backplane (culling runs on kubernetes).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// `tycho cull`: one pass; prints a row per system culled (or that a dry run would cull)
/// with its reason. Exit 1 when an action failed.
pub fn cull(args: &CullCommand, ctx: &Context) -> Result<i32> {
    let Some(options) = args.cull.options(args.dry_run)? else {
        return Ok(super::usage(
            "tycho cull needs --max-age or --idle (or both)",
        ));
    };
    let target = ctx.target(Backplane::parse(&args.backplane)?, &ctx.config)?;
    let report = target.cull(&options)?;
    let rows: Vec<Value> = report["culled"].as_array().cloned().unwrap_or_default();
    match args.output {
        Output::Json => print(&output::formatted(&report, true))?,
        Output::Yaml => print(&output::formatted(&report, false))?,
        Output::Name => {
            for r in &rows {
                print(&format!("{}\n", cell(r.get("sid"))))?;
            }
        }
        Output::Table | Output::Wide => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let outcome = if args.dry_run {
                        "would ".to_string() + r["action"].as_str().unwrap_or("")
                    } else if r["done"] == Value::Bool(true) {
                        match r["action"].as_str() {
                            Some("delete") => "deleted".to_string(),
                            _ => "stopped".to_string(),
                        }
                    } else {
                        "failed: ".to_string() + r["error"].as_str().unwrap_or("")
                    };
                    vec![
                        cell(r.get("sid")),
                        cell(r.get("app_id")),
                        cell(r.get("username")),
                        cell(r.get("reason")),
                        cell(r.get("last_activity")),
                        cell(r.get("activity_source")),
                        outcome,
                    ]
                })
                .collect();
            print(&table(
                &[
                    "SID",
                    "APP",
                    "USERNAME",
                    "REASON",
                    "LAST ACTIVITY",
                    "SOURCE",
                    "OUTCOME",
                ],
                &[32, 12, 10, 8, 20, 6],
                &cells,
            ))?;
        }
    }
    let failed = rows.iter().any(|r| r.get("error").is_some());
    Ok(i32::from(failed))
}
