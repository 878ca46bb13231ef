//! kube-emulator: a Kubernetes API server emulator for tycho's tests.
//!
//! Plain HTTP/1.1 on 127.0.0.1 only, JSON only, any (or no) bearer token.
//! The object store is kube-fake-client (controller-runtime's fake client
//! for Rust); see store.rs for what comes from it and server/ for the
//! few things added in front of it.
//!
//! Usage: kube-emulator [--port N] [--port-file PATH] [--latency-ms N]
//!        [--event-window N] [--bookmark-interval-ms N]

mod discovery;
mod server;
mod smp;
mod store;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

struct Args {
    port: u16,
    port_file: Option<String>,
    latency_ms: u64,
    event_window: usize,
    bookmark_interval_ms: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: kube-emulator [--port N (0 = any)] [--port-file PATH] [--latency-ms N] \
         [--event-window N (watch events kept, default 10000)] \
         [--bookmark-interval-ms N (default 5000)]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        port_file: None,
        latency_ms: 0,
        event_window: server::DEFAULT_EVENT_WINDOW,
        bookmark_interval_ms: 5000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| usage())
        };
        match key.as_str() {
            "--port" => args.port = value().parse().unwrap_or_else(|_| usage()),
            "--port-file" => args.port_file = Some(value()),
            "--latency-ms" => args.latency_ms = value().parse().unwrap_or_else(|_| usage()),
            "--event-window" => args.event_window = value().parse().unwrap_or_else(|_| usage()),
            "--bookmark-interval-ms" => {
                args.bookmark_interval_ms = value().parse().unwrap_or_else(|_| usage())
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("kube-emulator: cannot bind 127.0.0.1:{}: {e}", args.port);
            std::process::exit(1)
        });
    let addr = listener.local_addr().expect("local addr");
    let app = server::App::new(args.event_window, args.bookmark_interval_ms).await;
    *app.server_address.lock().unwrap() = addr.to_string();
    if args.latency_ms > 0 {
        app.set_latency(args.latency_ms);
    }
    if let Some(pf) = &args.port_file {
        // Atomic: readers never see a half-written file.
        let tmp = format!("{pf}.tmp{}", std::process::id());
        std::fs::write(&tmp, addr.port().to_string()).expect("write port file");
        std::fs::rename(&tmp, pf).expect("rename port file");
    }
    eprintln!("kube-emulator listening on http://{addr}");

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let svc = service_fn(move |req| Arc::clone(&app).handle(req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
