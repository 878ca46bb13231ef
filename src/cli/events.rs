//! `tycho events [-f] GUID`: a system's progress, one line an event.
//!
//! Without `-f`: the system's state now (one look), and exit. With `-f`: each change of
//! its phase, readiness, reason or message as the watches deliver it (the command
//! watches that one system: `crate::exec::kube::wait::Follower`), until it is ready (exit 0),
//! fails, is deleted or `--timeout` passes (exit 1, one line on stderr saying which).

use super::connect::check_cluster;
use super::output::print;
use super::{usage, Context};
use crate::error::{Error, ErrorKind, Result};
use crate::exec::kube::wait::{Progress, Step};

/// How `tycho events` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsOutput {
    /// `PHASE  PROGRESS%  message`, one line an event.
    Text,
    /// One JSON object a line (the event stream's `progress` and `end` objects).
    Json,
}

/// The arguments of `tycho events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// The system's GUID.
    guid: String,
    /// Follow: print each change until the system is ready, fails, is deleted or the
    /// timeout passes.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Seconds -f follows at most.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    timeout: f64,
    /// Output: text lines or JSON lines.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: EventsOutput,
}

fn line(event: &Progress, output: EventsOutput) -> String {
    match output {
        EventsOutput::Text => format!(
            "{:<10} {:>3}%  {}\n",
            event.phase, event.progress, event.message
        ),
        EventsOutput::Json => {
            format!("{}\n", serde_json::to_string(event).unwrap_or_default())
        }
    }
}

/// `tycho events`.
// Long because: the command in its order (connect, follow, print each event, the exit code by the end reason).
pub fn events(args: &EventsArgs, ctx: &Context) -> Result<i32> {
    let guid = args.guid.replace(std::path::MAIN_SEPARATOR, "-");
    if !crate::text::names::is_label_value(&guid) || guid.is_empty() {
        return Ok(usage(format!(
            "GUID {} is not a valid GUID",
            super::request::cut(&format!("{guid:?}"))
        )));
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Ok(usage(format!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        )));
    }
    check_cluster()?;
    let namespace = ctx.namespace.as_deref();
    if !args.follow {
        let event = crate::exec::kube::wait::block_on(crate::exec::kube::wait::readiness_async(
            &guid, namespace,
        ))?;
        if event.phase == "Deleted" {
            return Err(Error::input(format!("no system with GUID {guid}")));
        }
        print(&line(&event, args.output))?;
        return Ok(0);
    }
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    let output = args.output;
    let end = crate::exec::kube::wait::block_on(async {
        use futures::StreamExt;
        let follow = async {
            let mut steps = crate::exec::kube::wait::Follower::new(&guid, namespace, timeout)
                .await?
                .steps();
            let mut first = true;
            while let Some(step) = steps.next().await {
                match step {
                    Step::Progress(event) => {
                        if first && event.phase == "Deleted" {
                            return Err(Error::input(format!("no system with GUID {guid}")));
                        }
                        first = false;
                        print(&line(&event, output))?;
                    }
                    Step::End(end) => {
                        if output == EventsOutput::Json {
                            print(&format!(
                                "{}\n",
                                serde_json::to_string(&end).unwrap_or_default()
                            ))?;
                        }
                        return Ok(Some(end));
                    }
                }
            }
            Ok(None)
        };
        tokio::select! {
            r = follow => r,
            _ = tokio::signal::ctrl_c() => Err(Error::new(ErrorKind::Kube, "interrupted")),
        }
    })?;
    let Some(end) = end else {
        return Ok(0);
    };
    let why = end.reason.unwrap_or_else(|| "no reason reported".into());
    match end.end {
        "ready" => Ok(0),
        "deleted" => Err(Error::new(
            ErrorKind::Kube,
            format!("system {guid} was deleted"),
        )),
        "timeout" => Err(Error::new(
            ErrorKind::Kube,
            format!(
                "system {guid} not ready after {} s (timeout): {why}",
                args.timeout
            ),
        )),
        _ => Err(Error::new(
            ErrorKind::Kube,
            format!("system {guid} failed: {why}"),
        )),
    }
}
