//! HTTP routes: the public router (web client, signaling, health) and the admin router
//! (`/metrics`, health). Metrics never appear on the public listener.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::{session, web, AppState};

/// Frames above this are refused by the WebSocket layer itself; frames between 64 KiB and this
/// get a `message_too_large` error first, so clients see why.
const WS_HARD_LIMIT: usize = 1024 * 1024;

/// One year, with subdomains: browsers then refuse plain HTTP to this host.
const HSTS: &str = "max-age=31536000; includeSubDomains";

pub(crate) fn public_router(state: Arc<AppState>, https: bool) -> Router {
    let router = Router::new()
        .route("/", get(|| async { web::page(web::INDEX) }))
        .route("/join", get(|| async { web::page(web::JOIN) }))
        .route("/static/{file}", get(web::asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/v1/signal", get(signal))
        .route("/v1/recorder", get(recorder))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state);
    if https {
        router.layer(axum::middleware::map_response(
            |mut res: axum::response::Response| async move {
                res.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(HSTS),
                );
                res
            },
        ))
    } else {
        router
    }
}

/// Redirects plain HTTP to the HTTPS listener (optional, `[http] redirect_listen`).
pub(crate) fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |req: axum::extract::Request| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-[]".contains(c))
            });
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "missing Host header\n").into_response();
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        axum::response::Redirect::permanent(&format!("https://{host}:{https_port}{path}"))
            .into_response()
    })
}

pub(crate) fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/webhooks", get(crate::webhooks::admin::get_list))
        .route("/visits/{visit}", get(crate::webhooks::admin::get_visit))
        .route(
            "/visits/{visit}/encounter",
            get(crate::webhooks::admin::get_encounter),
        )
        .route(
            "/webhooks/retry",
            axum::routing::post(crate::webhooks::admin::post_retry),
        )
        .with_state(state)
}

async fn signal(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(WS_HARD_LIMIT)
        .max_frame_size(WS_HARD_LIMIT)
        .on_upgrade(move |socket| session::run(state, socket, peer.ip()))
}

/// A recorder agent's control socket (`bedside-recorder run`); 404 when recording is off.
async fn recorder(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(recorders) = state.recorders.clone() else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if !recorders.authorised(auth) {
        crate::record_audit(
            &state.audit,
            bedside_audit::AuditEvent {
                kind: "refuse".into(),
                code: Some("recorder_unauthorised".into()),
                ..Default::default()
            },
        );
        return (StatusCode::UNAUTHORIZED, "unauthorised\n").into_response();
    }
    ws.on_upgrade(move |socket| recorders.serve_agent(socket))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut res = state.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}
