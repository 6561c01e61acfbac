//! gRPC-Web from another origin: the CORS preflight is answered only for
//! configured origins.

use crate::common;

use common::{TestServer, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn preflight(addr: std::net::SocketAddr, origin: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "OPTIONS /verdict.v1.DecisionService/GetDecision HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_for_configured_origins_only() {
    let mut cfg = config(None);
    cfg.cors_origins = vec!["https://ui.example.com".into()];
    let s = TestServer::start(cfg).await;
    let addr = s.running.as_ref().unwrap().addr;
    let ok = preflight(addr, "https://ui.example.com").await;
    assert!(
        ok.contains("access-control-allow-origin: https://ui.example.com"),
        "{ok}"
    );
    assert!(ok.contains("x-grpc-web"), "{ok}");
    let other = preflight(addr, "https://evil.example.com").await;
    assert!(!other.contains("access-control-allow-origin"), "{other}");
}
