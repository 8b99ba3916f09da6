//! The deployment files hold together: the compose file and the Kubernetes manifests parse,
//! every file they reference exists, their Pulse configuration passes Pulse's own loader, and
//! ports, probes, scrape targets, label selectors and alert rules agree with each other and
//! with that configuration.

use pulse::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn docs(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
}

fn doc(path: &str) -> Yaml {
    docs(path).into_iter().next().expect("one document")
}

fn key(s: &str) -> Yaml {
    Yaml::String(s.to_owned())
}

/// A mapping with YAML merge keys (`<<: *anchor`) resolved, as Docker Compose reads it.
fn merged(y: &Yaml) -> Yaml {
    let Some(h) = y.as_hash() else {
        return y.clone();
    };
    let mut out = yaml_rust2::yaml::Hash::new();
    if let Some(base) = h.get(&key("<<")).and_then(|b| merged(b).into_hash()) {
        out.extend(base);
    }
    for (k, v) in h {
        if *k != key("<<") {
            out.insert(k.clone(), v.clone());
        }
    }
    Yaml::Hash(out)
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Loads a Pulse configuration the way the binary does: a file, then `PULSE__…` variables.
fn load_config(file: Option<&str>, env: &[(String, String)]) -> Config {
    // A file per call: the tests run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!("pulse-deploy-{}-{n}.toml", std::process::id()));
    if let Some(f) = file {
        std::fs::write(&tmp, f).unwrap();
    }
    let cfg = Config::load(file.map(|_| tmp.as_path()), env.iter().cloned());
    if file.is_some() {
        let _ = std::fs::remove_file(&tmp);
    }
    cfg.unwrap_or_else(|e| panic!("the deployment's configuration is invalid: {e}"))
}

/// A token file standing in for a deployment's secret, which a test machine does not have.
fn stand_in_token() -> String {
    let path = std::env::temp_dir().join(format!("pulse-deploy-token-{}", std::process::id()));
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    path.display().to_string()
}

fn port_of(listen: &str) -> u16 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_compose_file_holds_together() {
    let compose = doc("compose.yaml");
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for s in [
        "kafka",
        "topics",
        "pulse-1",
        "pulse-2",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(&s), "service {s} missing: {names:?}");
    }

    // Every file mounted or built from exists.
    for (name, service) in services {
        let service = merged(service);
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            assert!(
                deploy(source).exists(),
                "{name:?} mounts {source}, which does not exist"
            );
        }
        if let Some(build) = service["build"].as_hash() {
            let context = deploy(build[&key("context")].as_str().unwrap());
            let dockerfile = context.join(build[&key("dockerfile")].as_str().unwrap());
            assert!(dockerfile.exists(), "{}", dockerfile.display());
        }
    }
    assert!(deploy("Dockerfile.dockerignore").exists());

    // Two workers of one group, each with a configuration Pulse accepts, probed and scraped on
    // the port that configuration listens on.
    let scrape = doc("prometheus/prometheus.yml");
    let targets = strings(&scrape["scrape_configs"][0]["static_configs"][0]["targets"]);
    let mut groups = Vec::new();
    for worker in ["pulse-1", "pulse-2"] {
        let w = merged(&compose["services"][worker]);
        let env: Vec<(String, String)> = merged(&w["environment"])
            .as_hash()
            .expect("environment")
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
                    .unwrap();
                (k.as_str().unwrap().to_owned(), v)
            })
            .collect();
        // The token comes from a compose secret, mounted where the variable says.
        let (_, token_file) = env
            .iter()
            .find(|(k, _)| k == "PULSE__HTTP__TOKEN_FILE")
            .unwrap_or_else(|| panic!("{worker} sets no token"));
        let secret = token_file
            .strip_prefix("/run/secrets/")
            .unwrap_or_else(|| panic!("{worker}'s token {token_file} is not a secret"));
        assert!(strings(&w["secrets"]).contains(&secret.to_owned()));
        let source = compose["secrets"][secret]["file"]
            .as_str()
            .expect("a secret file");
        let ignored = std::fs::read_to_string(deploy("secrets/.gitignore")).unwrap();
        assert!(source.starts_with("./secrets/") && ignored.starts_with('*'));
        let stand_in = stand_in_token();
        let env: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, v)| match k.as_str() {
                "PULSE__HTTP__TOKEN_FILE" => (k, stand_in.clone()),
                _ => (k, v),
            })
            .collect();
        let cfg = load_config(None, &env);
        assert!(!cfg.http.token_file.as_os_str().is_empty());
        groups.push(cfg.kafka.group_id.clone());
        assert_eq!(cfg.kafka.brokers, "kafka:9092");
        let port = port_of(&cfg.http.listen);
        assert_eq!(cfg.http.advertise, format!("http://{worker}:{port}"));
        assert!(
            cfg.http.listen.starts_with("0.0.0.0:"),
            "{worker} listens on loopback only"
        );
        let probe = strings(&w["healthcheck"]["test"]).join(" ");
        assert!(
            probe.contains(&format!("127.0.0.1:{port}/readyz")),
            "{worker}'s health check {probe:?} misses /readyz on {port}"
        );
        assert!(
            targets.contains(&format!("{worker}:{port}")),
            "prometheus does not scrape {worker}:{port}: {targets:?}"
        );
        let published = strings(&w["ports"]);
        assert!(
            published.iter().all(|p| p.starts_with("127.0.0.1:")),
            "{worker} publishes {published:?} beyond the host's loopback"
        );
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{worker} publishes {published:?}, not {port}"
        );
        // Compose's stop grace outlasts the worker's drain deadline.
        let grace = humantime::parse_duration(w["stop_grace_period"].as_str().unwrap()).unwrap();
        assert!(grace > cfg.worker.shutdown_deadline);
    }
    assert_eq!(groups[0], groups[1], "the workers share a consumer group");

    // Prometheus loads the alert rules it is given; Grafana loads the dashboard from where it
    // is mounted.
    let prometheus = merged(&compose["services"]["prometheus"]);
    let mounts = strings(&prometheus["volumes"]);
    for rule_file in strings(&scrape["rule_files"]) {
        assert!(
            mounts
                .iter()
                .any(|m| m.split(':').nth(1) == Some(rule_file.as_str())),
            "{rule_file} is not mounted into prometheus: {mounts:?}"
        );
    }
    let provider = doc("grafana/provisioning/dashboards/pulse.yaml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana = merged(&compose["services"]["grafana"]);
    let dashboards = strings(&grafana["volumes"])
        .into_iter()
        .find(|m| m.split(':').nth(1) == Some(path))
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    let source = deploy(dashboards.split(':').next().unwrap());
    assert!(source.join("pulse.json").exists());
    let datasource = doc("grafana/provisioning/datasources/prometheus.yaml");
    let url = datasource["datasources"][0]["url"].as_str().unwrap();
    assert!(url.contains("prometheus:9090"), "{url}");

    // The topics script creates every topic the configuration names.
    let script = std::fs::read_to_string(deploy("kafka/topics.sh")).unwrap();
    for topic in Config::embedded_default().kafka.topics.all() {
        assert!(script.contains(topic), "topics.sh does not create {topic}");
    }
    assert!(script.contains("cleanup.policy=compact"));
}

#[test]
fn the_kubernetes_manifests_hold_together() {
    let kustomization = doc("kubernetes/kustomization.yaml");
    let mut all: Vec<Yaml> = Vec::new();
    for file in strings(&kustomization["resources"]) {
        assert!(deploy(&format!("kubernetes/{file}")).exists(), "{file}");
        all.extend(docs(&format!("kubernetes/{file}")));
    }
    let listed: Vec<String> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    for f in &listed {
        assert!(
            strings(&kustomization["resources"]).contains(f),
            "{f} is not in kustomization.yaml"
        );
    }
    let find = |kind: &str| -> Vec<&Yaml> {
        all.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    for kind in [
        "ConfigMap",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(!find(kind).is_empty(), "no {kind}");
    }

    // The configuration in the ConfigMap passes Pulse's loader.
    let config_map = find("ConfigMap")[0];
    let toml = config_map["data"]["pulse.toml"].as_str().unwrap();
    let cfg = load_config(Some(toml), &[]);
    let port = i64::from(port_of(&cfg.http.listen));
    assert!(cfg.http.listen.starts_with("0.0.0.0:"));

    // The pod runs that file, listens on its port, and probes readiness and liveness there.
    let set = find("StatefulSet")[0];
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let config_arg = args.iter().skip_while(|a| *a != "--config").nth(1).unwrap();
    assert_eq!(Path::new(config_arg), Path::new(mount).join("pulse.toml"));
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"].as_str(),
        config_map["metadata"]["name"].as_str()
    );
    let http = &container["ports"][0];
    assert_eq!(http["containerPort"].as_i64(), Some(port));
    let port_name = http["name"].as_str().unwrap();
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe}");
    }
    // Other workers point clients at the pod's stable name on that port.
    let advertise = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("PULSE__HTTP__ADVERTISE"))
        .and_then(|e| e["value"].as_str())
        .expect("PULSE__HTTP__ADVERTISE");
    let headless_name = set["spec"]["serviceName"].as_str().unwrap();
    // The query API's token comes from a Secret mounted where the variable points, and no
    // Service reaches beyond the cluster.
    let token_file = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("PULSE__HTTP__TOKEN_FILE"))
        .and_then(|e| e["value"].as_str())
        .expect("PULSE__HTTP__TOKEN_FILE");
    let mount = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| Path::new(token_file).parent() == m["mountPath"].as_str().map(Path::new))
        .expect("the token's directory is mounted");
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert!(
        volume["secret"]["secretName"].as_str().is_some(),
        "the token is not a Secret"
    );
    for service in find("Service") {
        let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
        assert_eq!(
            kind, "ClusterIP",
            "a Service reachable from outside the cluster"
        );
    }
    assert_eq!(
        advertise,
        format!("http://$(POD_NAME).{headless_name}:{port}")
    );
    // Termination outlasts the drain deadline.
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(Duration::from_secs(grace as u64) > cfg.worker.shutdown_deadline);

    // Services, the disruption budget and the ServiceMonitor select the pods and their port.
    let labels = set["spec"]["template"]["metadata"]["labels"]
        .as_hash()
        .unwrap();
    let selects_pods = |selector: &Yaml| {
        selector
            .as_hash()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(selects_pods(&set["spec"]["selector"]["matchLabels"]));
    for svc in find("Service") {
        assert!(selects_pods(&svc["spec"]["selector"]));
        assert_eq!(
            svc["spec"]["ports"][0]["targetPort"].as_str(),
            Some(port_name)
        );
    }
    let headless = find("Service")
        .into_iter()
        .find(|s| s["spec"]["clusterIP"].as_str() == Some("None"))
        .expect("a headless service");
    assert_eq!(
        set["spec"]["serviceName"].as_str(),
        headless["metadata"]["name"].as_str()
    );
    assert!(selects_pods(
        &find("PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"]
    ));
    let monitor = find("ServiceMonitor")[0];
    assert_eq!(
        monitor["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    let monitored: Vec<&Yaml> = find("Service")
        .into_iter()
        .filter(|s| {
            let l = s["metadata"]["labels"].as_hash().unwrap();
            let matches = monitor["spec"]["selector"]["matchLabels"]
                .as_hash()
                .unwrap()
                .iter()
                .all(|(k, v)| l.get(k) == Some(v));
            let excluded = monitor["spec"]["selector"]["matchExpressions"]
                .as_vec()
                .into_iter()
                .flatten()
                .any(|e| {
                    e["operator"].as_str() == Some("DoesNotExist") && l.contains_key(&e["key"])
                });
            matches && !excluded
        })
        .collect();
    assert_eq!(monitored.len(), 1, "every pod scraped exactly once");
    assert_eq!(
        monitored[0]["spec"]["ports"][0]["name"].as_str(),
        monitor["spec"]["endpoints"][0]["port"].as_str()
    );

    // The PrometheusRule carries exactly the rules of alerts.yml (which promtool tests).
    let rule = find("PrometheusRule")[0];
    assert_eq!(
        rule["spec"]["groups"],
        doc("prometheus/alerts.yml")["groups"]
    );
}
