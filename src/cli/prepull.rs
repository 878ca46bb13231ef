//! `tycho prepull`: the DaemonSet that pre-pulls every image of a product's apps on
//! every node ([`crate::compile::prepull`]), printed, or created or updated on the cluster with
//! `--apply` ([`crate::exec::kube::apply`]). Kubernetes only: the Docker backplane is refused.

use super::output::{self, print, Format};
use super::request::ProductRegistry;
use super::Context;
use crate::compile::prepull::{self, AppPod};
use crate::error::{Error, ErrorKind, Result};
use crate::exec::backplane::Backplane;

/// `tycho prepull`.
#[derive(clap::Args, Debug)]
pub struct PrepullArgs {
    /// App registry (a directory with app-registry.yaml, app-defaults.yaml and the specs,
    /// or an HTTP(S) base URL).
    #[arg(long, value_name = "URL|DIR")]
    registry: String,
    /// The registry context (appstore's brand) whose apps' images are pulled.
    #[arg(long)]
    product: String,
    /// Create or update the DaemonSet on the cluster (idempotent) instead of printing it.
    #[arg(long)]
    apply: bool,
    /// The image of the container that sleeps once the images are pulled.
    #[arg(long = "pause-image", value_name = "IMAGE", default_value = prepull::DEFAULT_PAUSE_IMAGE)]
    pause_image: String,
    /// Compute backplane: only kubernetes pre-pulls (docker-compose is refused).
    #[arg(short = 'b', long = "backplane", default_value = "kubernetes")]
    backplane: String,
    /// Output format (default: yaml; with --apply, one `daemonset.apps/NAME created|
    /// configured|unchanged` line unless a format is given, then the stored object).
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
}

/// The DaemonSet of `args` (offline: the registry is read, the apps compiled).
fn build(args: &PrepullArgs, ctx: &Context) -> Result<serde_json::Value> {
    let registry = ProductRegistry::load(&args.registry, &args.product)?;
    let mut apps: Vec<AppPod> = Vec::new();
    for app in registry.app_ids() {
        // The request appstore sends for a user who keeps the defaults; the images do
        // not depend on the user.
        let request = registry.request(app, "prepull", None, &ctx.env, ctx.max_input)?;
        apps.push(prepull::app_pod(&ctx.config, app, &request)?);
    }
    prepull::daemon_set(
        &apps,
        &prepull::Options {
            product: registry.product().to_string(),
            pause_image: args.pause_image.clone(),
            namespace: ctx.namespace.clone(),
        },
    )
}

/// `tycho prepull`.
pub fn prepull(args: &PrepullArgs, ctx: &Context) -> Result<i32> {
    if Backplane::parse(&args.backplane)? == Backplane::Docker {
        return Err(Error::new(
            ErrorKind::Input,
            "prepull is Kubernetes-only: the docker-compose backplane pulls an image when a \
             system starts, on this machine (use -b kubernetes)",
        )
        .at("--backplane"));
    }
    let object = build(args, ctx)?;
    if !args.apply {
        let text = match args.output.unwrap_or(Format::Yaml) {
            Format::Yaml => output::formatted(&object, false),
            Format::Json => output::formatted(&object, true),
            Format::Name => output::object_name(&object) + "\n",
        };
        print(&text)?;
        return Ok(0);
    }
    super::connect::check_cluster()?;
    let (applied, stored) = crate::exec::kube::apply::apply(&object, ctx.namespace.as_deref())?;
    let text = match args.output {
        None => format!("{} {}\n", output::object_name(&object), applied.word()),
        Some(Format::Name) => output::object_name(&object) + "\n",
        Some(Format::Yaml) => output::formatted(&stored, false),
        Some(Format::Json) => output::formatted(&stored, true),
    };
    print(&text)?;
    Ok(0)
}
