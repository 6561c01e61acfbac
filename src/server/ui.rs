//! The dashboard (issue 17): the built bundle of `web/` (committed in
//! `web/dist/`, like the generated clients) embedded in the binary and
//! served at `/` on the gRPC port, so `verdict serve --dev` shows it on a
//! machine without Node and without network access. The page talks to
//! verdict only through gRPC-Web on the same origin (the TypeScript client
//! in `clients/typescript`), which is what lets the Content-Security-Policy
//! below forbid everything else: no inline script or style, no other
//! origin, no framing. `--no-ui` (`ui_enabled = false`) leaves these routes
//! out; every other path is untouched and still reaches gRPC.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page shell; it only loads the two assets below.
const INDEX_HTML: &[u8] = include_bytes!("../../web/dist/index.html");
/// The bundled application (the client, protobuf runtime and the UI).
const APP_JS: &[u8] = include_bytes!("../../web/dist/app.js");
/// The stylesheet.
const APP_CSS: &[u8] = include_bytes!("../../web/dist/app.css");

/// The page's policy: its own origin for scripts, styles, images and
/// gRPC-Web calls; nothing inline, nothing else. SVG charts are built with
/// DOM calls and presentation attributes, which this policy allows.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes, to merge before the gRPC fallback.
pub fn router() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// One embedded file with the headers every dashboard response carries.
/// `no-cache` (revalidate every time) rather than long caching: the names
/// carry no content hash, and a stale script after an upgrade would speak
/// an older API.
fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut http::HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-cache");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed bundle is what is embedded, and the shell loads only
    /// same-origin assets (no CDN, nothing inline the policy would block).
    #[test]
    fn the_shell_loads_only_its_own_assets() {
        let html = std::str::from_utf8(INDEX_HTML).expect("utf-8");
        assert!(html.contains("/assets/app.js"), "{html}");
        assert!(html.contains("/assets/app.css"), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        assert!(!APP_JS.is_empty() && !APP_CSS.is_empty());
    }
}
