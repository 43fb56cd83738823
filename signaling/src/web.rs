//! The web client, embedded in the binary so `bedside` needs no separate build or install step.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub(crate) const INDEX: &str = include_str!("../../web-client/index.html");
pub(crate) const JOIN: &str = include_str!("../../web-client/join.html");

/// A served file: its name under `/static/`, its type and its text.
macro_rules! asset {
    ($name:literal, $mime:expr) => {
        (
            $name,
            $mime,
            include_str!(concat!("../../web-client/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the web client but the pages: the style sheet and its ES modules (the pages
/// load `main.js`, which imports the rest). A test checks the list against the folder.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("main.js", JS),
    asset!("state.js", JS),
    asset!("dom.js", JS),
    asset!("i18n.js", JS),
    asset!("messages.js", JS),
    asset!("token.js", JS),
    asset!("signaling.js", JS),
    asset!("errors.js", JS),
    asset!("devices.js", JS),
    asset!("media.js", JS),
    asset!("sounds.js", JS),
    asset!("nettest.js", JS),
    asset!("ui-prejoin.js", JS),
    asset!("ui-call.js", JS),
    asset!("ui-clinic.js", JS),
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
    use super::{ASSETS, INDEX, JOIN};
    use bedside_proto::ErrorCode;

    fn asset(name: &str) -> &'static str {
        ASSETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is served"))
            .2
    }

    /// The text of `file` between `start` and the next `end`.
    fn between(file: &'static str, start: &str, end: &str) -> &'static str {
        let from = file.find(start).expect("the marker is there") + start.len();
        let len = file[from..].find(end).expect("the end marker follows");
        &file[from..from + len]
    }

    /// The `'quoted'` names in `text`.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('\'').skip(1).step_by(2).collect()
    }

    #[test]
    fn every_file_of_the_web_client_is_served_and_every_import_resolves() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".js") || n.ends_with(".css"))
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        served.sort();
        assert_eq!(
            served, on_disk,
            "ASSETS lists exactly the files in web-client/"
        );
        for (name, mime, _) in ASSETS {
            let want = if name.ends_with(".js") {
                "text/javascript"
            } else {
                "text/css"
            };
            assert!(mime.starts_with(want), "{name}: {mime}");
        }
        // What the pages and the modules load is all served.
        for page in [INDEX, JOIN] {
            for part in page.split("/static/").skip(1) {
                let name = &part[..part.find('"').unwrap()];
                asset(name);
            }
        }
        for (name, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for part in body.split("from './").skip(1) {
                let target = &part[..part.find('\'').unwrap()];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, which is not served"
                );
            }
        }
    }

    #[test]
    fn the_web_clients_copy_of_the_error_codes_is_in_step() {
        let errors = asset("errors.js");
        let catalogue = asset("messages.js");
        let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let closing = quoted(between(errors, "const CLOSING = new Set([", "]);"));
        for code in ErrorCode::ALL.into_iter().filter(|c| c.closes_session()) {
            assert!(
                closing.contains(&code.as_str()),
                "{} closes the session: errors.js CLOSING must list it",
                code.as_str()
            );
        }
        for name in &closing {
            assert!(
                known.contains(name),
                "errors.js names an unknown code {name}"
            );
        }
        // Every code has words for people, in each language of the catalogue.
        let languages = catalogue.matches("\nconst ").count();
        assert_eq!(languages, 2, "en and es");
        for code in &known {
            let key = format!("'error.{code}':");
            assert_eq!(
                catalogue.matches(&key).count(),
                languages,
                "{key} in every language"
            );
        }
    }
}
