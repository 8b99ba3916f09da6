//! The access rules and limits on a router whose handlers the tests control.

use super::*;
use axum::body::Body;
use axum::routing::get;
use tower::ServiceExt;

const FULL: &str = "full-0123456789abcdef";
const AGGREGATE: &str = "aggregate-0123456789abcdef";

fn config(dir: &Path) -> HttpConfig {
    let full = dir.join("tokens");
    std::fs::write(&full, format!("# operators\n{FULL}\n\n")).unwrap();
    let aggregate = dir.join("aggregate-tokens");
    std::fs::write(&aggregate, format!("{AGGREGATE}\n")).unwrap();
    HttpConfig {
        listen: "127.0.0.1:0".into(),
        advertise: String::new(),
        token_file: full,
        aggregate_token_file: aggregate,
        open: vec!["/healthz".into(), "/readyz".into()],
        tls_cert: PathBuf::new(),
        tls_key: PathBuf::new(),
        request_timeout: Duration::from_secs(5),
        max_concurrent_requests: 2,
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pulse-http-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Routes that answer at once, except `/slow`, which waits for the test to let it go.
fn routes(release: Arc<tokio::sync::Notify>) -> Router {
    let slow = move || {
        let release = release.clone();
        async move {
            release.notified().await;
            "slow"
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { "metrics" }))
        .route("/v1/segments", get(|| async { "segments" }))
        .route("/v1/customers/{id}", get(|| async { "profile" }))
        .route("/", get(|| async { "page" }))
        .route("/slow", get(slow))
}

async fn send(
    router: &Router,
    path: &str,
    auth: Option<String>,
) -> (StatusCode, String, HeaderMap) {
    let mut request = Request::get(path);
    if let Some(a) = auth {
        request = request.header(header::AUTHORIZATION, a);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

fn bearer(t: &str) -> Option<String> {
    Some(format!("Bearer {t}"))
}

fn basic(user: &str, password: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
    }
    Some(format!("Basic {out}"))
}

fn guarded(dir: &Path) -> (Router, Arc<tokio::sync::Notify>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let (access, tls) = Access::from_config(&config(dir)).expect("valid");
    assert!(tls.is_none() && access.authenticates());
    (access.guard(routes(release.clone())), release)
}

#[tokio::test]
async fn a_request_without_an_accepted_token_is_a_json_401_and_open_paths_need_none() {
    let (router, _) = guarded(&dir("401"));
    let (status, body, headers) = send(&router, "/v1/customers/c-1", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("\"error\"") && body.contains("Bearer"),
        "{body}"
    );
    let challenges: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    for wrong in [
        bearer("full-0123456789abcdeX"),
        bearer(""),
        Some("Token x".into()),
        basic("u", "nope"),
    ] {
        let (status, body, _) = send(&router, "/", wrong.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}: {body}");
    }
    assert_eq!(send(&router, "/healthz", None).await.0, StatusCode::OK);
    // /metrics is not in this configuration's `open`.
    assert_eq!(
        send(&router, "/metrics", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_full_token_reads_everything_and_an_aggregate_token_only_the_population_views() {
    let (router, _) = guarded(&dir("grants"));
    for path in ["/", "/v1/customers/c-1", "/v1/segments", "/metrics"] {
        assert_eq!(
            send(&router, path, bearer(FULL)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    // A browser sends the token as the password of its Basic prompt.
    assert_eq!(
        send(&router, "/", basic("anyone", FULL)).await.0,
        StatusCode::OK
    );
    for path in ["/v1/segments", "/metrics"] {
        assert_eq!(
            send(&router, path, bearer(AGGREGATE)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    for path in ["/", "/v1/customers/c-1"] {
        let (status, body, _) = send(&router, path, bearer(AGGREGATE)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("aggregate token"), "{body}");
    }
}

#[tokio::test]
async fn requests_beyond_the_cap_are_a_429_and_probes_are_never_refused() {
    let (router, release) = guarded(&dir("429"));
    let held: Vec<_> = (0..2)
        .map(|_| {
            let r = router.clone();
            tokio::spawn(async move { send(&r, "/slow", bearer(FULL)).await.0 })
        })
        .collect();
    // Both permits are taken once the two slow requests are inside their handler.
    let mut refused = None;
    for _ in 0..200 {
        let (status, body, headers) = send(&router, "/v1/segments", bearer(FULL)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((body, headers));
            break;
        }
        tokio::task::yield_now().await;
    }
    let (body, headers) = refused.expect("a 429 while two requests are in flight");
    assert!(body.contains("http.max_concurrent_requests"), "{body}");
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
    assert_eq!(send(&router, "/healthz", None).await.0, StatusCode::OK);
    release.notify_waiters();
    for h in held {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        send(&router, "/v1/segments", bearer(FULL)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_past_the_timeout_is_a_json_503() {
    let (router, _release) = guarded(&dir("503"));
    let (status, body, _) = send(&router, "/slow", bearer(FULL)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("http.request_timeout") && body.contains("5s"),
        "{body}"
    );
}

#[test]
fn every_problem_of_the_section_names_its_key() {
    let d = dir("problems");
    std::fs::write(d.join("short"), "short\n").unwrap();
    let mut c = config(&d);
    c.token_file = d.join("short");
    c.aggregate_token_file = d.join("missing");
    c.open = vec!["healthz".into()];
    c.tls_cert = d.join("cert.pem");
    c.max_concurrent_requests = 0;
    let problems = Access::from_config(&c).expect_err("invalid").join("\n");
    for key in [
        "http.token_file: ",
        "http.aggregate_token_file: ",
        "http.open: ",
        "http.tls_cert, http.tls_key: set both or neither",
        "http.max_concurrent_requests: ",
    ] {
        assert!(problems.contains(key), "{key} in {problems}");
    }
    assert!(
        !problems.contains("short\n") && problems.contains("line 1"),
        "{problems}"
    );
}

#[test]
fn a_token_is_never_printed() {
    let (access, _) = Access::from_config(&config(&dir("debug"))).expect("valid");
    let printed = format!("{access:?}");
    assert!(
        !printed.contains(FULL) && !printed.contains(AGGREGATE),
        "{printed}"
    );
}

#[test]
fn basic_credentials_decode_as_browsers_send_them() {
    for (user, password) in [("a", FULL), ("", "x"), ("ab", "cd"), ("abc", "defg")] {
        let header = basic(user, password).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, header.parse().unwrap());
        assert_eq!(
            presented_token(&headers),
            Some(password.as_bytes().to_vec()),
            "{header}"
        );
    }
    for bad in ["Zm9v=", "Zm9", "Zm9v!A==", "=Zm9"] {
        assert_eq!(base64_decode(bad.as_bytes()), None, "{bad}");
    }
}
