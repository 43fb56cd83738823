//! The web client, embedded in the binary so `bedside` needs no separate build or install step.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub(crate) const INDEX: &str = include_str!("../../web-client/index.html");
pub(crate) const JOIN: &str = include_str!("../../web-client/join.html");

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/style.css"),
    ),
];

const CSP: &str = "default-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; \
                   img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn secure_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"),
    );
}

/// An HTML page. Pages may show visit data once loaded, so nothing caches them.
pub(crate) fn page(html: &'static str) -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    secure_headers(&mut res);
    res
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => {
            let mut res = (
                [
                    (header::CONTENT_TYPE, *mime),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response();
            secure_headers(&mut res);
            res
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use bedside_proto::ErrorCode;

    const APP: &str = include_str!("../../web-client/app.js");

    /// The text of `APP` between `start` and the next `end`.
    fn between(start: &str, end: &str) -> &'static str {
        let from = APP.find(start).expect("the marker is in app.js") + start.len();
        let len = APP[from..].find(end).expect("the end marker follows");
        &APP[from..from + len]
    }

    /// The `'quoted'` names in `text`.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('\'').skip(1).step_by(2).collect()
    }

    #[test]
    fn the_web_clients_copy_of_the_error_codes_is_in_step() {
        let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let closing = quoted(between("const CLOSING = new Set([", "]);"));
        for code in ErrorCode::ALL.into_iter().filter(|c| c.closes_session()) {
            assert!(
                closing.contains(&code.as_str()),
                "{} closes the session: app.js CLOSING must list it",
                code.as_str()
            );
        }
        let texts: Vec<&str> = between("function errorText(code, message) {", "default:")
            .split("case '")
            .skip(1)
            .filter_map(|c| c.split('\'').next())
            .collect();
        assert!(texts.len() > 10, "{texts:?}");
        for name in closing.iter().chain(&texts) {
            assert!(known.contains(name), "app.js names an unknown code {name}");
        }
    }
}
