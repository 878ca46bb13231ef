//! Culling: stops (or deletes) the systems idle longer than `--idle` or older than
//! `--max-age`, as jupyterhub-idle-culler does for notebooks. One pass is [`cull_async`]
//! (`tycho cull`, `TychoContext.cull`, `KubernetesCompute.cull`); `tycho api
//! --cull-every` runs passes in a loop ([`run_loop`]).
//!
//! A system's last activity is the newest of:
//! 1. the annotation `tycho.renci.org/last-activity`, which `touch` sets
//!    ([`crate::exec::kube::scale`]; resume sets it too);
//! 2. the answer of its app's activity probe, declared in the registry
//!    (`activity: {port, path, field}`, copied onto the Deployment at start as the
//!    annotation `tycho.renci.org/activity`): `GET http://<host>:<port><path>`, where
//!    host is the system's Service (`<service>.<namespace>.svc`) or `--activity-host` /
//!    `TYCHO_ACTIVITY_HOST`; the JSON answer's `field` (dotted path) holds an RFC 3339
//!    time or seconds since the epoch. Bounded: [`PROBE_TIMEOUT`], [`PROBE_BODY_LIMIT`];
//!    a probe that fails is logged and ignored. A probe is only asked when the other
//!    sources say idle (a running system past its idle time, not past its maximum age);
//! 3. its start time (the Deployment's creationTimestamp).
//!
//! Every system culled (or listed by a dry run) has a reason (`max-age` or `idle`), a
//! log line saying it and the times, and counts in `tycho_culled_total{reason}`.
//! At most `concurrency` probes and actions run at once. The clock is injectable
//! ([`CullOptions::now`], `TYCHO_NOW`).

use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;

/// Log target of culling.
pub const LOG_TARGET: &str = "tycho.cull";

/// How long one activity probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of an activity probe's answer read.
pub const PROBE_BODY_LIMIT: u64 = 64 * 1024;

/// Longest duration accepted (10 years).
const MAX_DURATION: u64 = 10 * 366 * 24 * 3600;

/// What culling does to a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CullAction {
    /// Scale it to 0 (`tycho resume` brings it back).
    Stop,
    /// Delete it.
    Delete,
}

impl CullAction {
    /// The action named `text` (`stop`, `delete`).
    pub fn parse(text: &str) -> Result<CullAction> {
        match text {
            "stop" => Ok(CullAction::Stop),
            "delete" => Ok(CullAction::Delete),
            other => Err(Error::input(format!(
                "cull action must be stop or delete, got {:?}",
                crate::limits::echo(other)
            ))
            .at("action")),
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            CullAction::Stop => "stop",
            CullAction::Delete => "delete",
        }
    }
}

/// What one culling pass does.
#[derive(Debug, Clone)]
pub struct CullOptions {
    /// Cull systems started longer ago than this.
    pub max_age: Option<Duration>,
    /// Cull systems whose last activity is longer ago than this.
    pub idle: Option<Duration>,
    /// Stop or delete.
    pub action: CullAction,
    /// Only this user's systems.
    pub username: Option<String>,
    /// Only systems of this app.
    pub app: Option<String>,
    /// List what would be culled, change nothing.
    pub dry_run: bool,
    /// The time taken as now (None: `TYCHO_NOW`, else the clock).
    pub now: Option<DateTime<Utc>>,
    /// The host activity probes reach (None: `TYCHO_ACTIVITY_HOST`, else the Service).
    pub activity_host: Option<String>,
    /// Probes and actions at once.
    pub concurrency: usize,
}

impl Default for CullOptions {
    fn default() -> Self {
        CullOptions {
            max_age: None,
            idle: None,
            action: CullAction::Stop,
            username: None,
            app: None,
            dry_run: false,
            now: None,
            activity_host: None,
            concurrency: 4,
        }
    }
}

/// A duration: seconds (`90`), or numbers with units `s`, `m`, `h`, `d`, `w` (`1h30m`,
/// `2d`); more than 0 and at most 10 years.
pub fn parse_duration(text: &str, field: &str) -> Result<Duration> {
    let bad = || {
        Error::input(format!(
            "{field} must be a duration (seconds, or with units: 90s, 30m, 1h30m, 2d), got {:?}",
            crate::limits::echo(text)
        ))
        .at(field)
    };
    let t = text.trim();
    if t.is_empty() || t.len() > 64 {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        any_unit = true;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() {
        if any_unit {
            return Err(bad());
        }
        total = number.parse().map_err(|_| bad())?;
    }
    if total == 0 || total > MAX_DURATION {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// An RFC 3339 time (`2026-01-02T03:04:05Z`).
pub fn parse_time(text: &str, field: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::input(format!(
                "{field} must be an RFC 3339 time (2026-01-02T03:04:05Z), got {:?}: {e}",
                crate::limits::echo(text)
            ))
            .at(field)
        })
}

impl CullOptions {
    /// Options from a mapping (the Python call): `max_age`, `idle` (durations as text
    /// or seconds), `action`, `username`, `app`, `dry_run`, `now` (RFC 3339),
    /// `activity_host`, `concurrency`. Unknown keys are refused.
    pub fn from_value(value: &Value) -> Result<CullOptions> {
        let map = value
            .as_object()
            .ok_or_else(|| Error::input("cull options must be a mapping"))?;
        let mut o = CullOptions::default();
        for (key, v) in map {
            if v.is_null() {
                continue;
            }
            let text = || -> Result<String> {
                match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(Error::input(format!("cull option {key} must be text")).at(key)),
                }
            };
            match key.as_str() {
                "max_age" => o.max_age = Some(parse_duration(&text()?, key)?),
                "idle" => o.idle = Some(parse_duration(&text()?, key)?),
                "action" => o.action = CullAction::parse(&text()?)?,
                "username" => o.username = Some(text()?),
                "app" => o.app = Some(text()?),
                "dry_run" => {
                    o.dry_run = v.as_bool().ok_or_else(|| {
                        Error::input("cull option dry_run must be true or false").at(key)
                    })?
                }
                "now" => o.now = Some(parse_time(&text()?, key)?),
                "activity_host" => o.activity_host = Some(text()?),
                "concurrency" => {
                    o.concurrency = v
                        .as_u64()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| {
                            Error::input("cull option concurrency must be from 1 to 64").at(key)
                        })? as usize
                }
                other => {
                    return Err(Error::input(format!(
                        "unknown cull option {:?} (max_age, idle, action, username, app, dry_run, now, activity_host, concurrency)",
                        crate::limits::echo(other)
                    ))
                    .at(other))
                }
            }
        }
        o.check()?;
        Ok(o)
    }

    /// At least one of `max_age` and `idle`; a host that is a host.
    pub fn check(&self) -> Result<()> {
        if self.max_age.is_none() && self.idle.is_none() {
            return Err(Error::input(
                "culling needs --max-age or --idle (or both): nothing would ever be culled",
            ));
        }
        if let Some(h) = &self.activity_host {
            if url::Host::parse(h).is_err() || h.contains(['/', '@', ':']) && !h.starts_with('[') {
                return Err(Error::input(format!(
                    "activity host {:?} is not a host name or address",
                    crate::limits::echo(h)
                ))
                .at("activity_host"));
            }
        }
        Ok(())
    }
}

/// An app's activity probe (the Deployment's `tycho.renci.org/activity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The port (the Service's, equal to the container's in tycho's Services).
    pub port: u16,
    /// The path (`/api/status`).
    pub path: String,
    /// The answer's field holding the time (dotted for nested objects).
    pub field: String,
}

impl Probe {
    /// The probe of an annotation's text; None when it is not a valid one.
    pub fn parse(text: &str) -> Option<Probe> {
        let v: Value = serde_json::from_str(text).ok()?;
        let port = u16::try_from(v.get("port")?.as_u64()?)
            .ok()
            .filter(|p| *p > 0)?;
        let path = v.get("path").and_then(Value::as_str).unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let field = v
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or("last_activity")
            .to_string();
        Some(Probe { port, path, field })
    }
}

/// One system as culling sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its GUID.
    pub guid: String,
    /// Its Deployment's name.
    pub name: String,
    /// Its user (the real name).
    pub username: Option<String>,
    /// Its app.
    pub app: Option<String>,
    /// When it started.
    pub created: Option<DateTime<Utc>>,
    /// The last-activity annotation.
    pub touched: Option<DateTime<Utc>>,
    /// Its activity probe and the URL it is asked at.
    pub probe: Option<(Probe, String)>,
    /// Scaled to 0.
    pub stopped: bool,
}

fn annotation<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn label<'a>(d: &'a Value, pointer: &str, key: &str) -> Option<&'a str> {
    d.pointer(pointer)?.get(key)?.as_str()
}

/// The candidates among `deployments` (with the system's `services`, for the probe's
/// host) in `namespace`; `host` overrides the probe's host.
pub fn candidates(
    namespace: &str,
    deployments: &[Value],
    services: &[Value],
    host: Option<&str>,
) -> Vec<Candidate> {
    deployments
        .iter()
        .filter_map(|d| {
            let guid = label(d, "/metadata/labels", "tycho-guid")?.to_string();
            let name = d.pointer("/metadata/name")?.as_str()?.to_string();
            let time = |t: Option<&str>| {
                t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            let created = time(
                d.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str),
            );
            let touched = time(annotation(d, crate::exec::kube::scale::LAST_ACTIVITY));
            let probe = annotation(d, crate::text::names::ACTIVITY_ANNOTATION)
                .and_then(Probe::parse)
                .and_then(|p| {
                    let host = match host {
                        Some(h) => h.to_string(),
                        None => {
                            let mine: Vec<&Value> = services
                                .iter()
                                .filter(|s| {
                                    label(s, "/metadata/labels", "tycho-guid")
                                        == Some(guid.as_str())
                                })
                                .collect();
                            let with_port = mine.iter().find(|s| {
                                s.pointer("/spec/ports")
                                    .and_then(Value::as_array)
                                    .is_some_and(|ports| {
                                        ports.iter().any(|port| {
                                            port.get("port").and_then(Value::as_u64)
                                                == Some(u64::from(p.port))
                                        })
                                    })
                            });
                            let service = with_port.or(mine.first())?;
                            let sname = service.pointer("/metadata/name")?.as_str()?;
                            format!("{sname}.{namespace}.svc")
                        }
                    };
                    let url = format!("http://{host}:{}{}", p.port, p.path);
                    url::Url::parse(&url).ok()?;
                    Some((p, url))
                });
            Some(Candidate {
                guid,
                name,
                username: annotation(d, crate::text::names::USERNAME_ANNOTATION)
                    .or_else(|| label(d, "/metadata/labels", "username"))
                    .map(str::to_string),
                app: label(d, "/spec/template/metadata/labels", "original-app-name")
                    .map(str::to_string),
                created,
                touched,
                probe,
                stopped: crate::exec::kube::scale::spec_replicas(d) == 0,
            })
        })
        .collect()
}

/// Why a system is culled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Started longer ago than `--max-age`.
    MaxAge,
    /// Idle longer than `--idle`.
    Idle,
}

impl Reason {
    /// The metric's and the report's label.
    pub fn name(self) -> &'static str {
        match self {
            Reason::MaxAge => "max-age",
            Reason::Idle => "idle",
        }
    }
}

/// The last activity of `c` (newest of the sources) and which source it is.
pub fn last_activity(
    c: &Candidate,
    probed: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, &'static str)> {
    [
        (c.touched, "touch"),
        (probed, "probe"),
        (c.created, "start"),
    ]
    .into_iter()
    .filter_map(|(t, source)| t.map(|t| (t, source)))
    .max_by_key(|(t, _)| *t)
}

/// Whether `c` goes, and why (None: it stays). `probed` is its probe's answer.
pub fn judge(
    c: &Candidate,
    options: &CullOptions,
    now: DateTime<Utc>,
    probed: Option<DateTime<Utc>>,
) -> Option<Reason> {
    if options.action == CullAction::Stop && c.stopped {
        return None;
    }
    let since = |t: DateTime<Utc>| (now - t).to_std().unwrap_or(Duration::ZERO);
    if let (Some(max), Some(created)) = (options.max_age, c.created) {
        if since(created) > max {
            return Some(Reason::MaxAge);
        }
    }
    if let (Some(idle), Some((last, _))) = (options.idle, last_activity(c, probed)) {
        if since(last) > idle {
            return Some(Reason::Idle);
        }
    }
    None
}

/// Asks the probe at `url` (blocking; bounded by [`PROBE_TIMEOUT`] and
/// [`PROBE_BODY_LIMIT`]) for the time in `field`. A failure is an [`ErrorKind::Kube`] error
/// (the probe is a system's service), at `field` when the answer is at fault.
pub fn probe_blocking(url: &str, field: &str) -> Result<DateTime<Utc>> {
    let fail = |message: String| Error::new(ErrorKind::Kube, message);
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(PROBE_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("tycho-cull/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent: ureq::Agent = config.into();
    let mut response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| fail(format!("cannot reach {url}: {e}")))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(fail(format!("{url} answered HTTP {status}")));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(PROBE_BODY_LIMIT)
        .read_to_string()
        .map_err(|e| fail(format!("cannot read the answer of {url}: {e}")))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| fail(format!("{url} did not answer JSON: {e}")).caused_by(e))?;
    let mut at = &body;
    for part in field.split('.') {
        at = at
            .get(part)
            .ok_or_else(|| fail(format!("the answer of {url} has no field {field:?}")).at(field))?;
    }
    match at {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                fail(format!("{field} of {url} is not an RFC 3339 time: {e}"))
                    .at(field)
                    .caused_by(e)
            }),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e11)
            .and_then(|f| DateTime::from_timestamp(f as i64, 0))
            .ok_or_else(|| fail(format!("{field} of {url} is not a time")).at(field)),
        _ => Err(fail(format!("{field} of {url} is not a time")).at(field)),
    }
}

async fn probe(url: String, field: String) -> Result<DateTime<Utc>> {
    tokio::task::spawn_blocking(move || probe_blocking(&url, &field))
        .await
        .unwrap_or_else(|e| {
            Err(Error::new(
                ErrorKind::Internal,
                format!("the probe did not complete ({e})"),
            ))
        })
}

fn seconds(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| json!((now - t).num_seconds().max(0)))
        .unwrap_or(Value::Null)
}

/// One culling pass on the Kubernetes systems of `namespace`: returns `{"now",
/// "action", "dry_run", "culled": [{sid, name, username, app_id, reason,
/// last_activity, activity_source, age_seconds, idle_seconds, action, done, error}],
/// "kept"}`. An action that fails is in its row (`done` false, `error`); the pass goes on.
/// The steps, in order: [`select`], [`judge_with_probes`], [`cull_one`] for each system
/// that goes, [`report`].
pub async fn cull_async(options: &CullOptions, namespace: Option<&str>) -> Result<Value> {
    options.check()?;
    let now = match options.now {
        Some(t) => t,
        None => crate::environment::cull::clock()?,
    };
    let (namespace, selected) = select(options, namespace).await?;
    let concurrency = options.concurrency.clamp(1, 64);
    let judged = judge_with_probes(selected, options, now, concurrency).await;
    let kept = judged.iter().filter(|(_, _, r)| r.is_none()).count();
    let ns = namespace.as_str();
    let rows: Vec<(String, Value)> = stream::iter(
        judged
            .into_iter()
            .filter_map(|(c, p, r)| r.map(|r| (c, p, r))),
    )
    .map(|(c, probed, reason)| cull_one(c, probed, reason, options, now, ns))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    Ok(report(options, now, rows, kept))
}

/// The candidates of a pass: the systems of `namespace` (resolved: returned) that
/// `options` selects by user and app; the probe's host is `options.activity_host`, else
/// `TYCHO_ACTIVITY_HOST`.
async fn select(
    options: &CullOptions,
    namespace: Option<&str>,
) -> Result<(String, Vec<Candidate>)> {
    let env = crate::environment::cull::CullEnv::from_env();
    let host = options.activity_host.clone().or(env.activity_host);
    let (namespace, deployments, services) =
        crate::exec::kube::scale::systems_async(options.username.as_deref(), namespace).await?;
    let selected = candidates(&namespace, &deployments, &services, host.as_deref())
        .into_iter()
        .filter(|c| {
            let user = options.username.as_deref();
            let app = options.app.as_deref();
            user.is_none_or(|u| c.username.as_deref() == Some(u))
                && app.is_none_or(|a| c.app.as_deref() == Some(a))
        })
        .collect();
    Ok((namespace, selected))
}

/// Each candidate with its probe's answer and its [`Reason`] to go (None: it stays).
/// Probes are asked only where they can save a system: idle by the other sources and
/// running; at most `concurrency` at once. A failed probe is logged and ignored.
async fn judge_with_probes(
    selected: Vec<Candidate>,
    options: &CullOptions,
    now: DateTime<Utc>,
    concurrency: usize,
) -> Vec<(Candidate, Option<DateTime<Utc>>, Option<Reason>)> {
    stream::iter(selected)
        .map(|c| async move {
            let first = judge(&c, options, now, None);
            let probed = match (&first, &c.probe) {
                (Some(Reason::Idle), Some((p, url))) if !c.stopped => {
                    match probe(url.clone(), p.field.clone()).await {
                        Ok(t) => Some(t),
                        Err(why) => {
                            log::warn!(target: LOG_TARGET, "activity probe of system {} failed: {why}", c.guid);
                            None
                        }
                    }
                }
                _ => None,
            };
            let reason = if probed.is_some() {
                judge(&c, options, now, probed)
            } else {
                first
            };
            (c, probed, reason)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// The report row of a system that goes, before its action (`done` false).
fn culled_row(
    c: &Candidate,
    probed: Option<DateTime<Utc>>,
    reason: Reason,
    options: &CullOptions,
    now: DateTime<Utc>,
) -> Value {
    let (last, source) = last_activity(c, probed)
        .map(|(t, s)| (Some(t), s))
        .unwrap_or((None, "none"));
    json!({
        "sid": c.guid,
        "name": c.name,
        "username": c.username,
        "app_id": c.app,
        "reason": reason.name(),
        "last_activity": last.map(crate::exec::kube::scale::timestamp),
        "activity_source": source,
        "age_seconds": seconds(now, c.created),
        "idle_seconds": seconds(now, last),
        "action": options.action.name(),
        "done": false,
    })
}

/// Stops or deletes one system that goes (a dry run only logs it); returns its GUID and
/// its report row (`done`, or `error` when the action failed).
async fn cull_one(
    c: Candidate,
    probed: Option<DateTime<Utc>>,
    reason: Reason,
    options: &CullOptions,
    now: DateTime<Utc>,
    namespace: &str,
) -> (String, Value) {
    let mut row = culled_row(&c, probed, reason, options, now);
    let time = |t: Option<DateTime<Utc>>| {
        t.map(crate::exec::kube::scale::timestamp)
            .unwrap_or_else(|| "unknown".into())
    };
    let why = format!(
        "{}: started {}, last activity {} ({})",
        reason.name(),
        time(c.created),
        time(last_activity(&c, probed).map(|(t, _)| t)),
        row["activity_source"].as_str().unwrap_or("none"),
    );
    let who = format!(
        "system {} ({}, app {}, user {})",
        c.guid,
        c.name,
        c.app.as_deref().unwrap_or("?"),
        c.username.as_deref().unwrap_or("?")
    );
    let action = options.action.name();
    if options.dry_run {
        log::info!(target: LOG_TARGET, "dry run: would {action} {who}: {why}");
        return (c.guid, row);
    }
    let outcome = match options.action {
        CullAction::Stop => crate::exec::kube::scale::apply_async(
            crate::exec::kube::scale::Action::Stop,
            &c.guid,
            Some(namespace),
            now,
        )
        .await
        .map(|_| ()),
        CullAction::Delete => crate::exec::kube::delete_async(&c.guid, Some(namespace))
            .await
            .map(|_| ()),
    };
    match outcome {
        Ok(()) => {
            log::info!(target: LOG_TARGET, "culled {who}: {action} because {why}");
            crate::metrics::culled(reason.name());
            row["done"] = json!(true);
        }
        Err(e) => {
            log::warn!(target: LOG_TARGET, "culling {who} ({why}) failed: {}", e.message);
            row["error"] = json!(e.message);
        }
    }
    (c.guid, row)
}

/// The pass's report: its clock, action and dry-run flag, the rows of the systems that
/// went (by GUID) and how many stayed.
fn report(
    options: &CullOptions,
    now: DateTime<Utc>,
    mut rows: Vec<(String, Value)>,
    kept: usize,
) -> Value {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    json!({
        "now": crate::exec::kube::scale::timestamp(now),
        "action": options.action.name(),
        "dry_run": options.dry_run,
        "culled": rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "kept": kept,
    })
}

/// [`cull_async`], blocking (on the executor's runtime).
pub fn cull(options: &CullOptions, namespace: Option<&str>) -> Result<Value> {
    crate::exec::kube::block_on(ErrorKind::Kube, cull_async(options, namespace))
}

/// Runs a culling pass every `every` until the process ends (`tycho api --cull-every`);
/// a pass that fails is logged and the next one runs on time.
pub async fn run_loop(every: Duration, options: CullOptions, namespace: Option<String>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the first pass waits one period.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match cull_async(&options, namespace.as_deref()).await {
            Ok(report) => {
                let n = report["culled"].as_array().map_or(0, Vec::len);
                log::debug!(target: LOG_TARGET, "culling pass: {n} culled, {} kept", report["kept"]);
            }
            Err(e) => log::warn!(target: LOG_TARGET, "culling pass failed: {}", e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s, "t").unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90", "x").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("1h30m", "x").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("2d", "x").unwrap(),
            Duration::from_secs(172_800)
        );
        for bad in ["", "0", "1x", "h", "1h30", "99999999999w", "-1", "1.5h"] {
            let e = parse_duration(bad, "--idle").unwrap_err();
            assert!(e.message.contains("--idle"), "{bad}: {}", e.message);
        }
    }

    fn candidate() -> Candidate {
        Candidate {
            guid: "g".into(),
            name: "app-g".into(),
            username: Some("u".into()),
            app: Some("app".into()),
            created: Some(t("2026-01-01T00:00:00Z")),
            touched: None,
            probe: None,
            stopped: false,
        }
    }

    #[test]
    fn newest_activity_wins() {
        let options = CullOptions {
            idle: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let mut c = candidate();
        let now = t("2026-01-01T02:00:00Z");
        assert_eq!(judge(&c, &options, now, None), Some(Reason::Idle));
        c.touched = Some(t("2026-01-01T01:30:00Z"));
        assert_eq!(judge(&c, &options, now, None), None);
        c.touched = Some(t("2025-12-31T00:00:00Z"));
        assert_eq!(
            last_activity(&c, Some(t("2026-01-01T01:59:00Z")))
                .unwrap()
                .1,
            "probe"
        );
        assert_eq!(
            judge(&c, &options, now, Some(t("2026-01-01T01:59:00Z"))),
            None
        );
        // A stopped system is not stopped again; it may be deleted.
        c.stopped = true;
        assert_eq!(judge(&c, &options, now, None), None);
        let delete = CullOptions {
            action: CullAction::Delete,
            ..options.clone()
        };
        assert_eq!(judge(&c, &delete, now, None), Some(Reason::Idle));
    }

    #[test]
    fn max_age_wins_over_activity() {
        let options = CullOptions {
            max_age: Some(Duration::from_secs(3600)),
            idle: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let mut c = candidate();
        c.touched = Some(t("2026-01-01T01:59:00Z"));
        assert_eq!(
            judge(&c, &options, t("2026-01-01T02:00:00Z"), None),
            Some(Reason::MaxAge)
        );
    }

    #[test]
    fn options_from_a_mapping() {
        let o = CullOptions::from_value(
            &json!({"idle": 60, "max_age": "1d", "action": "delete", "dry_run": true, "now": "2026-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(o.idle, Some(Duration::from_secs(60)));
        assert_eq!(o.action, CullAction::Delete);
        assert!(o.dry_run);
        assert!(CullOptions::from_value(&json!({})).is_err());
        assert!(CullOptions::from_value(&json!({"idle": "1h", "bogus": 1})).is_err());
        assert!(CullOptions::from_value(&json!({"idle": "1h", "action": "nuke"})).is_err());
        assert!(CullOptions::from_value(&json!({"idle": "1h", "activity_host": "a/b"})).is_err());
    }

    #[test]
    fn probes_resolve_to_the_service_or_the_host_override() {
        let d = json!({"metadata": {"name": "app-g", "labels": {"tycho-guid": "g", "username": "u"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"tycho.renci.org/activity": "{\"port\":8888,\"path\":\"api/status\",\"field\":\"last_activity\"}"}},
            "spec": {"replicas": 1}});
        let s = json!({"metadata": {"name": "app-g", "labels": {"tycho-guid": "g"}}, "spec": {"ports": [{"port": 8888}]}});
        let c = &candidates("ns", std::slice::from_ref(&d), &[s], None)[0];
        assert_eq!(
            c.probe.as_ref().unwrap().1,
            "http://app-g.ns.svc:8888/api/status"
        );
        let c = &candidates("ns", &[d], &[], Some("127.0.0.1"))[0];
        assert_eq!(
            c.probe.as_ref().unwrap().1,
            "http://127.0.0.1:8888/api/status"
        );
    }
}
