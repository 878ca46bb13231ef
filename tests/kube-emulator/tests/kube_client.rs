//! The emulator as seen by our executor's client stack (kube 5 /
//! k8s-openapi 0.29) over real HTTP, configured from a kubeconfig.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Emulator {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Emulator {
    fn start() -> Emulator {
        let dir = std::env::temp_dir().join(format!(
            "kube-emulator-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (child, port) = Self::spawn(&dir, 0);
        Emulator { child, port, dir }
    }

    fn spawn(dir: &std::path::Path, port: u16) -> (Child, u16) {
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
            .args([
                "--port",
                &port.to_string(),
                "--bookmark-interval-ms",
                "200",
                "--port-file",
            ])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kube-emulator");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = s.trim().parse() {
                    break p;
                }
            }
            assert!(Instant::now() < deadline, "emulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        (child, port)
    }

    /// Kill the process and start a new one (empty store) on the same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port) = Self::spawn(&self.dir, self.port);
        assert_eq!(port, self.port);
        self.child = child;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kube 5 client built the way the executor builds one: from a kubeconfig.
    async fn client(&self) -> Client {
        let path = self.dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: {}\n\
                 contexts:\n- name: emu\n  context:\n    cluster: emu\n    user: emu\n    namespace: default\n\
                 current-context: emu\nusers:\n- name: emu\n  user:\n    token: any-token\n",
                self.url()
            ),
        )
        .unwrap();
        let kc = Kubeconfig::read_from(&path).unwrap();
        let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(cfg).unwrap()
    }

    /// Minimal blocking HTTP/1.1 call to the control API.
    fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} /__emulator{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (_, resp_body) = out.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(resp_body).unwrap_or(Value::Null)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn deployment(name: &str, labels: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "main", "image": "nginx:1", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "busybox"}
                ]}
            }
        }
    }))
    .unwrap()
}

fn api_code(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn crud_selectors_patches_and_errors() {
    let emu = Emulator::start();
    let client = emu.client().await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();

    // create: server-assigned metadata
    let d = deps
        .create(&pp, &deployment("web", json!({"app": "web", "tier": "fe"})))
        .await
        .unwrap();
    let m = &d.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(m.creation_timestamp.is_some());
    assert!(m.resource_version.is_some());
    assert_eq!(m.generation, Some(1));
    assert_eq!(m.namespace.as_deref(), Some("default"));
    // status as the deployment controller first reports it: nothing ready
    let st = d.status.as_ref().unwrap();
    assert_eq!((st.replicas, st.ready_replicas), (Some(1), None));
    deps.create(&pp, &deployment("api", json!({"app": "api", "tier": "be"})))
        .await
        .unwrap();
    deps.create(&pp, &deployment("db", json!({"app": "db"})))
        .await
        .unwrap();

    // 409 AlreadyExists, 422 Invalid (no name), 404 NotFound
    let e = deps
        .create(&pp, &deployment("web", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), (409, "AlreadyExists".into()));
    let mut nameless = deployment("x", json!({}));
    nameless.metadata.name = None;
    let e = deps.create(&pp, &nameless).await.unwrap_err();
    assert_eq!(api_code(&e), (422, "Invalid".into()));
    let e = deps.get("nope").await.unwrap_err();
    assert_eq!(api_code(&e), (404, "NotFound".into()));
    let e = deps
        .delete("nope", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), (404, "NotFound".into()));

    // label selectors
    let sel = |s: &'static str| {
        let deps = deps.clone();
        async move {
            names(
                &deps
                    .list(&ListParams::default().labels(s))
                    .await
                    .unwrap()
                    .items,
            )
        }
    };
    assert_eq!(sel("app=web,tier=fe").await, ["web"]);
    assert_eq!(sel("app!=web").await, ["api", "db"]);
    assert_eq!(sel("app in (web,db)").await, ["db", "web"]);
    assert_eq!(sel("tier").await, ["api", "web"]);
    assert_eq!(sel("!tier").await, ["db"]);
    assert_eq!(sel("tier notin (fe)").await, ["api", "db"]);
    // field selector
    let l = deps
        .list(&ListParams::default().fields("metadata.name=api"))
        .await
        .unwrap();
    assert_eq!(names(&l.items), ["api"]);

    // strategic merge: containers merge by name, untouched fields survive
    let p = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "main", "image": "nginx:2"}
                ]}}}}),
            ),
        )
        .await
        .unwrap();
    let cs = &p.spec.template.spec.as_ref().unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("nginx:2"));
    assert_eq!(cs[0].ports.as_ref().unwrap()[0].container_port, 80);
    assert_eq!(p.spec.replicas, Some(3));
    assert_eq!(p.metadata.generation, Some(2));
    assert_eq!(p.metadata.uid, d.metadata.uid);
    // merge patch: lists replaced, null deletes
    let p = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null, "v": "2"}}})),
        )
        .await
        .unwrap();
    let labels = p.metadata.labels.unwrap();
    assert_eq!(labels.get("v").map(String::as_str), Some("2"));
    assert!(!labels.contains_key("tier"));
    // a metadata-only change does not move generation (the spec did not change)
    assert_eq!(p.metadata.generation, Some(2));
    // json patch
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 5}
    ]))
    .unwrap();
    let p = deps
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(p.spec.replicas, Some(5));
    // replace with a stale resourceVersion: 409 Conflict
    let mut stale = d.clone();
    stale.metadata.resource_version = d.metadata.resource_version.clone();
    let e = deps.replace("web", &pp, &stale).await.unwrap_err();
    assert_eq!(api_code(&e).0, 409);
    // replace with the current one works
    let mut cur = deps.get("web").await.unwrap();
    cur.spec.replicas = Some(2);
    let r = deps.replace("web", &pp, &cur).await.unwrap();
    assert_eq!(r.spec.replicas, Some(2));

    // scale subresource
    let sc = deps.get_scale("web").await.unwrap();
    assert_eq!(sc.spec.unwrap().replicas, Some(2));
    let sc = deps
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(sc.spec.unwrap().replicas, Some(4));
    assert_eq!(deps.get("web").await.unwrap().spec.replicas, Some(4));

    // delete one: a Success Status (what the API server returns for deployments)
    let del = deps.delete("db", &DeleteParams::default()).await.unwrap();
    assert!(del.is_right());

    // deletecollection by label
    deps.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app in (web,api)"),
    )
    .await
    .unwrap();
    assert!(deps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn owner_references_gc_status_and_objects() {
    let emu = Emulator::start();
    let client = emu.client().await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "other");

    let d = deps
        .create(
            &PostParams::default(),
            &deployment("web", json!({"app": "web"})),
        )
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": d.metadata.uid
        }]},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    // LoadBalancer: no ingress until the knob says so
    assert!(svc.status.unwrap().load_balancer.unwrap().ingress.is_none());
    emu.control("POST", "/loadbalancer", json!({"ip": "192.0.2.10"}));
    let svc = svcs.get("web").await.unwrap();
    let ingress = svc.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.10"));
    assert!(svc.spec.unwrap().ports.unwrap()[0].node_port.is_some());

    // namespaces are independent
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}))
            .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(Api::<Secret>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // simulated rollout
    emu.control(
        "POST",
        "/deployments/default/web/status",
        json!({"readyReplicas": 1, "pods": true}),
    );
    let d = deps.get("web").await.unwrap();
    let st = d.status.unwrap();
    assert_eq!(st.ready_replicas, Some(1));
    assert_eq!(st.observed_generation, Some(1));
    assert!(st
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")));
    let pl = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pl.items.len(), 1);
    assert_eq!(
        pl.items[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );

    let all = emu.control("GET", "/objects", json!({}));
    assert_eq!(all["items"].as_array().unwrap().len(), 5); // deploy, rs, pod, svc, secret

    // deleting the deployment cascades through ownerReferences
    deps.delete("web", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_code(&svcs.get("web").await.unwrap_err()).0, 404);
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let all = emu.control("GET", "/objects", json!({}));
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    emu.control("POST", "/reset", json!({}));
    assert!(emu.control("GET", "/objects", json!({}))["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn faults_latency_and_request_log() {
    let emu = Emulator::start();
    let client = emu.client().await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());

    // A 500 on the first create: surfaced as an API error.
    emu.control(
        "POST",
        "/faults",
        json!({"method": "POST", "path_regex": "/deployments$", "nth": 1, "action": {"status": 500}}),
    );
    let e = deps
        .create(&PostParams::default(), &deployment("web", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), (500, "InternalError".into()));
    deps.create(&PostParams::default(), &deployment("web", json!({})))
        .await
        .unwrap();

    // A 429 with Retry-After once: kube 5's default retry policy absorbs it.
    emu.control("DELETE", "/requests", json!({}));
    emu.control(
        "POST",
        "/faults",
        json!({"method": "GET", "path_regex": "/deployments/web$", "action": {"status": 429, "retry_after": 1}}),
    );
    deps.get("web").await.unwrap();
    let reqs = emu.control("GET", "/requests", json!({}));
    let gets = reqs["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["method"] == "GET" && r["path"] == "/apis/apps/v1/namespaces/default/deployments/web"
        })
        .count();
    assert_eq!(gets, 2, "{reqs}");

    // A dropped connection: a transport error, not an API error.
    emu.control(
        "POST",
        "/faults",
        json!({"method": "GET", "path_regex": "/deployments$", "action": {"drop": true}}),
    );
    let e = deps.list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "{e:?}");
    deps.list(&ListParams::default()).await.unwrap();

    // Latency applies to API calls.
    emu.control("DELETE", "/faults", json!({}));
    emu.control("POST", "/latency", json!({"latency_ms": 200}));
    let t = Instant::now();
    deps.get("web").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
    emu.control("POST", "/latency", json!({"latency_ms": 0}));

    // Discovery and version for clients that ask.
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "networking.k8s.io"));
    let res = client.list_api_group_resources("apps/v1").await.unwrap();
    assert!(res
        .resources
        .iter()
        .any(|r| r.name == "deployments" && r.namespaced));
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core
        .resources
        .iter()
        .any(|r| r.name == "persistentvolumeclaims"));
}

#[tokio::test]
async fn watch_sees_changes() {
    let emu = Emulator::start();
    let client = emu.client().await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    deps.create(
        &PostParams::default(),
        &deployment("a", json!({"app": "a"})),
    )
    .await
    .unwrap();
    let list = deps.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let stream = deps
        .watch(&WatchParams::default().labels("app").timeout(5), &rv)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    deps.create(
        &PostParams::default(),
        &deployment("b", json!({"app": "b"})),
    )
    .await
    .unwrap();
    deps.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match ev {
            WatchEvent::Added(d) => seen.push(format!("ADDED {}", d.metadata.name.unwrap())),
            WatchEvent::Deleted(d) => seen.push(format!("DELETED {}", d.metadata.name.unwrap())),
            WatchEvent::Modified(d) => seen.push(format!("MODIFIED {}", d.metadata.name.unwrap())),
            _ => {}
        }
        if seen.len() == 2 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["ADDED b", "DELETED a"]);
}

/// Names in a reflector's store, sorted.
fn store_names<K: kube::Resource + Clone>(store: &reflector::Store<K>) -> Vec<String>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let mut n: Vec<String> = store
        .state()
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    n.sort();
    n
}

/// Wait (bounded) until the reflector holds exactly `want`.
async fn converge<K: kube::Resource + Clone>(store: &reflector::Store<K>, want: &[&str])
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = store_names(store);
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reflector did not converge: have {have:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"executor": "tycho"}},
        "stringData": {"k": name}
    }))
    .unwrap()
}

async fn reflector_through_faults(streaming: bool) {
    let mut emu = Emulator::start();
    let client = emu.client().await;
    let api: Api<Secret> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    api.create(&pp, &secret("a")).await.unwrap();
    let mut other = secret("not-ours");
    other.metadata.labels = None;
    api.create(&pp, &other).await.unwrap();

    let (reader, writer) = reflector::store();
    let mut cfg = watcher::Config::default().labels("executor=tycho");
    if streaming {
        cfg = cfg.streaming_lists();
    }
    let stream = reflector(writer, watcher(api.clone(), cfg)).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    converge(&reader, &["a"]).await;
    api.create(&pp, &secret("b")).await.unwrap();
    converge(&reader, &["a", "b"]).await;

    // A cut stream: the watcher resumes from its version; what was written
    // meanwhile arrives.
    let cut = emu.control("POST", "/watch-cut", json!({}));
    assert!(cut["cut"].as_u64().unwrap() >= 1, "{cut}");
    api.create(&pp, &secret("c")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    converge(&reader, &["b", "c"]).await;

    // Labels moving an object out of the selection: it leaves the cache.
    let unlabel = json!({"metadata": {"labels": {"executor": "other"}}});
    api.patch("c", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    converge(&reader, &["b"]).await;

    // Compaction and a cut: the resume answers 410 Gone, the watcher lists again.
    emu.control("POST", "/compact", json!({}));
    emu.control("POST", "/watch-cut", json!({}));
    api.create(&pp, &secret("d")).await.unwrap();
    converge(&reader, &["b", "d"]).await;

    // A restarted API server (empty store, newer versions).
    emu.restart();
    // Writes through a fresh client (the old one's pooled connections died
    // with the process); the reflector keeps its own.
    let writer_api: Api<Secret> = Api::default_namespaced(emu.client().await);
    writer_api.create(&pp, &secret("e")).await.unwrap();
    converge(&reader, &["e"]).await;
    task.abort();
}

#[tokio::test]
async fn reflector_converges_through_cut_compact_and_restart() {
    reflector_through_faults(false).await;
}

#[tokio::test]
async fn streaming_list_reflector_converges_through_cut_compact_and_restart() {
    reflector_through_faults(true).await;
}

#[tokio::test]
async fn dropped_watches_are_closed() {
    let emu = Emulator::start();
    let client = emu.client().await;
    let api: Api<Secret> = Api::default_namespaced(client.clone());
    let mut streams = Vec::new();
    for _ in 0..40 {
        let s = api.watch(&WatchParams::default(), "0").await.unwrap();
        streams.push(s.boxed());
    }
    let open = |emu: &Emulator| emu.control("GET", "/watches", json!({}))["open"].as_u64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while open(&emu) != Some(40) {
        assert!(
            Instant::now() < deadline,
            "watches not counted: {:?}",
            open(&emu)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(streams);
    while open(&emu) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "watches left open: {:?}",
            open(&emu)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
