//! A tiny static HTTP server and client for the Docker backplane tests (std only; built
//! by tests/dockerc/test_docker.py with `rustc -C target-feature=+crt-static` and imported into
//! an image holding only this binary).
//!
//! * `httpd serve PORT [UDPPORT]` — answers `GET /` with `tycho-httpd <hostname>`,
//!   `GET /env/NAME` with the variable's value, `/whoami` with `uid gid`, `/cwd`, `/args`,
//!   `/caps` with the effective and bounding capability sets (hex), `/write/PATH` by
//!   creating the file PATH (500 with the error when it cannot), `/mount/PATH` with the
//!   `/proc/self/mounts` line of the mount point PATH, and `GET /fetch/HOST/PORT/PATH`
//!   with what `http://HOST:PORT/PATH` answers (HOST resolved through /etc/hosts, then the
//!   DNS server of /etc/resolv.conf: Docker's embedded DNS on a user-defined network;
//!   static glibc has no NSS to do it). With UDPPORT it also answers each datagram on
//!   that port with `udp <hostname> <datagram>`.
//! * `httpd get URL` — prints the body; exit 0 on a 2xx answer, else 1 (healthchecks).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            if let Some(udp) = args.get(3).and_then(|p| p.parse().ok()) {
                std::thread::spawn(move || echo_udp(udp));
            }
            serve(args.get(2).and_then(|p| p.parse().ok()).unwrap_or(8080))
        }
        Some("get") => {
            let url = args.get(2).cloned().unwrap_or_default();
            match get(&url) {
                Ok((code, body)) => {
                    print!("{body}");
                    std::process::exit(if (200..300).contains(&code) { 0 } else { 1 });
                }
                Err(e) => {
                    eprintln!("get {url}: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: httpd serve PORT | httpd get URL");
            std::process::exit(2);
        }
    }
}

fn serve(port: u16) {
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = handle(stream);
        });
    }
}

fn echo_udp(port: u16) {
    let socket = UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mut buf = [0u8; 1500];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let reply = format!("udp {} {}", host.trim(), String::from_utf8_lossy(&buf[..n]));
        let _ = socket.send_to(reply.as_bytes(), from);
    }
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 4096];
    let mut request = Vec::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (code, body) = answer(&path);
    let reply = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}

fn answer(path: &str) -> (u16, String) {
    if path == "/" {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        return (200, format!("tycho-httpd {}", host.trim()));
    }
    if let Some(name) = path.strip_prefix("/env/") {
        return match std::env::var(name) {
            Ok(v) => (200, v),
            Err(_) => (404, format!("no variable {name}")),
        };
    }
    if path == "/whoami" {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        return (200, format!("{} {}", field("Uid:"), field("Gid:")));
    }
    if path == "/caps" {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        return (200, format!("{} {}", field("CapEff:"), field("CapBnd:")));
    }
    if let Some(file) = path.strip_prefix("/write") {
        return match std::fs::write(file, b"written") {
            Ok(()) => (200, "written".into()),
            Err(e) => (500, e.to_string()),
        };
    }
    if let Some(point) = path.strip_prefix("/mount") {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        return match mounts.lines().find(|l| l.split_whitespace().nth(1) == Some(point)) {
            Some(line) => (200, line.to_string()),
            None => (404, format!("no mount at {point}")),
        };
    }
    if path == "/cwd" {
        let cwd = std::env::current_dir().map(|p| p.display().to_string());
        return (200, cwd.unwrap_or_default());
    }
    if path == "/args" {
        return (200, std::env::args().collect::<Vec<_>>().join(" "));
    }
    if let Some(rest) = path.strip_prefix("/fetch/") {
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let port = parts.next().unwrap_or("80");
        let tail = parts.next().unwrap_or_default();
        return match get(&format!("http://{host}:{port}/{tail}")) {
            Ok((code, body)) => (code, body),
            Err(e) => (502, format!("fetch failed: {e}")),
        };
    }
    (404, "not found".into())
}

/// GET `http://host:port/path`: (status code, body).
fn get(url: &str) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| e.to_string())?),
        None => (authority, 80),
    };
    let ip = resolve(host)?;
    let addr = SocketAddr::from((ip, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("not an HTTP answer")?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

fn resolve(host: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for line in hosts.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        if let Some(Ok(ip)) = words.next().map(|w| w.parse::<Ipv4Addr>()) {
            if words.any(|w| w == host) {
                return Ok(ip);
            }
        }
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let server: Ipv4Addr = resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver"))
        .and_then(|s| s.trim().parse().ok())
        .ok_or("no IPv4 nameserver in /etc/resolv.conf")?;
    dns_query(server, host)
}

/// One A query over UDP; the first A record of the answer.
fn dns_query(server: Ipv4Addr, host: &str) -> Result<Ipv4Addr, String> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in host.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        socket.send_to(&q, (server, 53)).map_err(|e| e.to_string())?;
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        let r = &buf[..n];
        if r.len() < 12 || r[0..2] != q[0..2] {
            continue;
        }
        let answers = u16::from_be_bytes([r[6], r[7]]);
        let mut i = q.len(); // the question is echoed
        for _ in 0..answers {
            // name: a pointer or labels
            while i < r.len() {
                if r[i] & 0xc0 == 0xc0 {
                    i += 2;
                    break;
                }
                if r[i] == 0 {
                    i += 1;
                    break;
                }
                i += 1 + r[i] as usize;
            }
            if i + 10 > r.len() {
                break;
            }
            let rtype = u16::from_be_bytes([r[i], r[i + 1]]);
            let len = u16::from_be_bytes([r[i + 8], r[i + 9]]) as usize;
            i += 10;
            if rtype == 1 && len == 4 && i + 4 <= r.len() {
                return Ok(Ipv4Addr::new(r[i], r[i + 1], r[i + 2], r[i + 3]));
            }
            i += len;
        }
        return Err(format!("{host}: no A record"));
    }
    Err(format!("{host}: no answer from {server}"))
}
