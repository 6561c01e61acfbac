//! The dashboard (issue 17) is served at `/` from the binary, with a strict
//! Content-Security-Policy, beside gRPC on the same port; `ui_enabled =
//! false` (`--no-ui`) leaves it out. The page itself is tested in a real
//! browser by web/test (scripts/test.sh).

use crate::common;

use common::{TestServer, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; the raw response, headers lower-cased.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out).to_string();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let s = TestServer::start(config(None)).await;
    let addr = s.running.as_ref().unwrap().addr;
    let (head, body) = get(addr, "/").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(!head.contains("unsafe-inline"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(body.contains("/assets/app.js"), "{body}");
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let (head, body) = get(addr, path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(kind), "{path}: {head}");
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ui_leaves_the_dashboard_out() {
    let mut cfg = config(None);
    cfg.ui_enabled = false;
    let s = TestServer::start(cfg).await;
    let addr = s.running.as_ref().unwrap().addr;
    let (head, _) = get(addr, "/").await;
    assert!(!head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-security-policy"), "{head}");
}
