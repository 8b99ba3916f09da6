//! A real headless browser for page tests: Debian's Chromium driven through ChromeDriver's
//! W3C WebDriver HTTP API (navigate, type, click, read). Started on a free loopback port and
//! stopped when dropped.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    profile: std::path::PathBuf,
}

/// One WebDriver request; the `value` of its answer, or the error it reports.
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map_or(String::new(), Value::to_string);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // ChromeDriver keeps the connection open: read the headers, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the headers ended".into());
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    let payload = String::from_utf8_lossy(&body);
    let v: Value = serde_json::from_str(&payload).map_err(|e| format!("{e}: {payload}"))?;
    match v["value"].get("error") {
        Some(err) => Err(format!("{err}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian packages chromium and chromium-driver; make test-deps)");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(&addr, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = std::env::temp_dir().join(format!("pulse-chromium-{port}"));
        // Without the networking switches Chromium reaches for Google's services at start,
        // which a closed network refuses.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session = call(&addr, "POST", "/session", Some(&caps)).expect("a browser session");
        let session = session["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        let browser = Self {
            driver,
            addr,
            session,
            profile,
        };
        // A page that is still loading after a click or a form submit: finding an element
        // waits for it, up to this long, as a person's eyes would.
        browser.session_call("POST", "/timeouts", Some(&json!({ "implicit": 10_000 })));
        browser
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(&self.addr, method, &path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The element matching a CSS selector; panics if there is none.
    pub fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().expect("element reference").to_owned()
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.session_call(
            "POST",
            "/elements",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({ "text": text })),
        );
    }

    pub fn click(&self, element: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// The rendered text of the element matching `css`, found again if the page re-rendered
    /// between finding it and reading it (a page that reloads itself, as the status page does
    /// every few seconds, leaves a found element stale).
    pub fn text_of(&self, css: &str) -> String {
        let mut last = String::new();
        for _ in 0..5 {
            let element = self.find(css);
            let path = format!("/session/{}/element/{element}/text", self.session);
            match call(&self.addr, "GET", &path, None) {
                Ok(v) => return v.as_str().unwrap_or_default().to_owned(),
                Err(e) if e.contains("stale element") => last = e,
                Err(e) => panic!("GET {path}: {e}"),
            }
        }
        panic!("{css} went stale five times in a row: {last}")
    }

    /// Replaces the text of the input matching `input` with `text` and clicks the button
    /// matching `button`, as a person would: again from the start if the page re-rendered in
    /// between, which would have emptied the input or left the button stale. True once done
    /// in one go.
    pub fn fill_and_click(&self, input: &str, text: &str, button: &str) -> bool {
        for _ in 0..5 {
            let field = self.find(input);
            let clear = format!("/session/{}/element/{field}/clear", self.session);
            let typed = format!("/session/{}/element/{field}/value", self.session);
            let filled = call(&self.addr, "POST", &clear, Some(&json!({})))
                .and_then(|_| call(&self.addr, "POST", &typed, Some(&json!({ "text": text }))));
            if filled.is_err() {
                continue;
            }
            let b = self.find(button);
            let click = format!("/session/{}/element/{b}/click", self.session);
            if call(&self.addr, "POST", &click, Some(&json!({}))).is_ok() {
                return true;
            }
        }
        false
    }

    /// The rendered text of an element.
    pub fn text(&self, element: &str) -> String {
        self.session_call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn title(&self) -> String {
        self.session_call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
