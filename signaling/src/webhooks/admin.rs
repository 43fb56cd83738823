//! Visits and the outbox for operators. The admin listener's `GET /visits/{id}` (what is known
//! of a running visit, or one that finished within a day) and `GET /visits/{id}/encounter` (the
//! same as a FHIR R4 Encounter), with `bedside visits show ID` printing the first as a table;
//! `GET /webhooks` (a listing) and
//! `POST /webhooks/retry` (dead letters back in their queues), and `bedside webhooks list|retry`,
//! which opens the store itself while the server is stopped and asks the running server's admin
//! listener otherwise (the store file is locked by the process that has it open).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bedside_store::{EmbeddedStore, EntryInfo, EntryState, Filter, Outbox, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::AppState;

/// One outbox entry as the listing shows it (no body: it stays in the store).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryView {
    pub endpoint: String,
    pub visit: String,
    pub seq: u64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub attempts: u32,
    pub created_at: String,
    pub next_attempt_at: String,
    pub last_error: String,
}

impl From<EntryInfo> for EntryView {
    fn from(e: EntryInfo) -> Self {
        EntryView {
            endpoint: e.key.destination,
            visit: e.key.visit,
            seq: e.key.seq,
            id: super::writer::event_id(&e.id),
            kind: e.kind,
            state: e.state.as_str().to_owned(),
            attempts: e.attempts,
            created_at: bedside_webhook::rfc3339_ms(e.created_ms),
            next_attempt_at: match e.state {
                EntryState::Pending => bedside_webhook::rfc3339_ms(e.next_attempt_ms),
                EntryState::Dead => "-".into(),
            },
            last_error: e.last_error,
        }
    }
}

/// Which entries: `state` (`pending`, `dead`), `endpoint`, `visit`; the listing's `limit`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Selection {
    pub state: Option<String>,
    pub endpoint: Option<String>,
    pub visit: Option<String>,
    pub limit: Option<usize>,
}

/// The most entries one listing returns.
const MAX_LIST: usize = 10_000;

impl Selection {
    fn filter(&self) -> Result<Filter, &'static str> {
        let state = match self.state.as_deref() {
            None | Some("all") => None,
            Some("pending") => Some(EntryState::Pending),
            Some("dead") => Some(EntryState::Dead),
            Some(_) => return Err("state is one of pending, dead, all"),
        };
        Ok(Filter {
            state,
            destination: self.endpoint.clone(),
            visit: self.visit.clone(),
        })
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(1000).min(MAX_LIST)
    }

    fn query(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("state", &self.state),
            ("endpoint", &self.endpoint),
            ("visit", &self.visit),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", percent(v)));
            }
        }
        if let Some(l) = self.limit {
            q.push(format!("limit={l}"));
        }
        q.join("&")
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Retried {
    pub retried: u64,
}

fn list(store: &dyn Outbox, sel: &Selection) -> Result<Vec<EntryView>, String> {
    let filter = sel.filter().map_err(str::to_owned)?;
    store
        .list(&filter, sel.limit())
        .map(|v| v.into_iter().map(EntryView::from).collect())
        .map_err(|e| e.to_string())
}

fn retry(store: &dyn Outbox, sel: &Selection) -> Result<Retried, String> {
    let filter = sel.filter().map_err(str::to_owned)?;
    store
        .retry_dead(super::now_ms(), &filter)
        .map(|retried| Retried { retried })
        .map_err(|e| e.to_string())
}

pub(crate) async fn get_list(
    State(state): State<Arc<AppState>>,
    Query(sel): Query<Selection>,
) -> Response {
    let Some(w) = state.webhooks.as_ref() else {
        return (StatusCode::NOT_FOUND, "webhooks are not configured\n").into_response();
    };
    let store = w.store.clone();
    match tokio::task::spawn_blocking(move || list(store.as_ref(), &sel)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) async fn post_retry(
    State(state): State<Arc<AppState>>,
    Query(sel): Query<Selection>,
) -> Response {
    let Some(w) = state.webhooks.as_ref() else {
        return (StatusCode::NOT_FOUND, "webhooks are not configured\n").into_response();
    };
    let store = w.store.clone();
    match tokio::task::spawn_blocking(move || retry(store.as_ref(), &sel)).await {
        Ok(Ok(r)) => {
            w.wake.notify_one();
            Json(r).into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn visit_id(raw: &str) -> Option<bedside_proto::VisitId> {
    (!raw.is_empty() && raw.len() <= 256).then(|| bedside_proto::VisitId::new(raw))
}

pub(crate) async fn get_visit(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(visit): axum::extract::Path<String>,
) -> Response {
    let Some(id) = visit_id(&visit) else {
        return (StatusCode::BAD_REQUEST, "a visit id is 1 to 256 bytes\n").into_response();
    };
    match state.visits.summary(&id).await {
        Some(s) => {
            let mut v = s.to_json();
            v["visit"] = serde_json::json!(id.as_str());
            v["status"] = serde_json::json!(if s.ended_ms.is_some() {
                "ended"
            } else {
                "running"
            });
            v["subject"] = serde_json::json!(s.subject);
            v["appointment"] = serde_json::json!(s.appointment);
            Json(v).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such visit on this server\n").into_response(),
    }
}

pub(crate) async fn get_encounter(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(visit): axum::extract::Path<String>,
) -> Response {
    let Some(id) = visit_id(&visit) else {
        return (StatusCode::BAD_REQUEST, "a visit id is 1 to 256 bytes\n").into_response();
    };
    match state.visits.summary(&id).await {
        Some(s) => {
            let mut res = Json(super::fhir::encounter(&s)).into_response();
            res.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/fhir+json"),
            );
            res
        }
        None => (StatusCode::NOT_FOUND, "no such visit on this server\n").into_response(),
    }
}

/// `bedside visits show ID`: what the running server knows of a visit, for people.
pub fn cli_show(config: &Config, visit: &str) -> anyhow::Result<String> {
    let mut addr = config.admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let body = admin_request(addr, "GET", &format!("/visits/{}", percent(visit)))?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(render_visit(&v))
}

fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The table `bedside visits show` prints.
pub fn render_visit(v: &serde_json::Value) -> String {
    let text = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    let status = match (v["status"].as_str(), v["reason"].as_str()) {
        (Some("ended"), Some(reason)) => match v["by"].as_str() {
            Some(by) => format!("ended ({reason}, by {by})"),
            None => format!("ended ({reason})"),
        },
        (Some(s), _) => s.to_owned(),
        _ => "-".into(),
    };
    for (label, value) in [
        (
            "visit",
            format!("{} ({})", text("visit"), text("visit_type")),
        ),
        ("status", status),
        ("started", text("started_at")),
        ("ended", text("ended_at")),
        ("duration", duration(v["duration_ms"].as_u64().unwrap_or(0))),
        ("subject", text("subject")),
        ("appointment", text("appointment")),
    ] {
        out.push_str(&format!("{label:<12} {value}\n"));
    }
    out.push_str(&format!(
        "\n{:<12} {:<24} {:>8} {:>14} {:>14} {:<10} {:<24} {}\n",
        "ROLE", "SUB", "SESSIONS", "WAITED", "IN VISIT", "NOW", "FIRST JOINED", "LAST LEFT"
    ));
    for p in v["participants"].as_array().into_iter().flatten() {
        let t = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
        out.push_str(&format!(
            "{:<12} {:<24} {:>8} {:>14} {:>14} {:<10} {:<24} {}\n",
            t("role"),
            t("sub"),
            p["sessions"].as_u64().unwrap_or(0),
            duration(p["waited_ms"].as_u64().unwrap_or(0)),
            duration(p["in_visit_ms"].as_u64().unwrap_or(0)),
            t("present"),
            t("first_joined_at"),
            t("last_left_at"),
        ));
    }
    if v["participants_truncated"] == true {
        out.push_str("(more participants than the summary keeps)\n");
    }
    out
}

/// Where `bedside webhooks` found the outbox.
enum Source {
    File(EmbeddedStore),
    Server(SocketAddr),
}

fn source(config: &Config) -> anyhow::Result<Source> {
    let limits = config.webhooks.limits();
    match EmbeddedStore::open_in(&config.state.dir, limits) {
        Ok(s) => Ok(Source::File(s)),
        Err(StoreError::InUse(_)) => {
            let mut addr = config.admin.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Ok(Source::Server(addr))
        }
        Err(e) => Err(e.into()),
    }
}

/// `bedside webhooks list`: the entries as a table.
pub fn cli_list(config: &Config, sel: &Selection) -> anyhow::Result<String> {
    let entries: Vec<EntryView> = match source(config)? {
        Source::File(s) => list(&s, sel).map_err(anyhow::Error::msg)?,
        Source::Server(addr) => serde_json::from_slice(&admin_request(
            addr,
            "GET",
            &format!("/webhooks?{}", sel.query()),
        )?)?,
    };
    Ok(render(&entries))
}

/// `bedside webhooks retry`: dead letters back in their queues.
pub fn cli_retry(config: &Config, sel: &Selection) -> anyhow::Result<String> {
    let r: Retried = match source(config)? {
        Source::File(s) => retry(&s, sel).map_err(anyhow::Error::msg)?,
        Source::Server(addr) => serde_json::from_slice(&admin_request(
            addr,
            "POST",
            &format!("/webhooks/retry?{}", sel.query()),
        )?)?,
    };
    Ok(format!(
        "{} dead letter(s) back in their queues{}\n",
        r.retried,
        if r.retried > 0 {
            "; they are delivered when bedside serve runs"
        } else {
            ""
        }
    ))
}

/// The table `bedside webhooks list` prints.
pub fn render(entries: &[EntryView]) -> String {
    let mut out = format!(
        "{:<16} {:<24} {:>6} {:<22} {:<8} {:>8} {:<24} {:<24} {:<16} ID\n",
        "ENDPOINT",
        "VISIT",
        "SEQ",
        "TYPE",
        "STATE",
        "ATTEMPTS",
        "CREATED",
        "NEXT ATTEMPT",
        "LAST ERROR"
    );
    for e in entries {
        out.push_str(&format!(
            "{:<16} {:<24} {:>6} {:<22} {:<8} {:>8} {:<24} {:<24} {:<16} {}\n",
            e.endpoint,
            e.visit,
            e.seq,
            e.kind,
            e.state,
            e.attempts,
            e.created_at,
            e.next_attempt_at,
            if e.last_error.is_empty() {
                "-"
            } else {
                &e.last_error
            },
            e.id
        ));
    }
    let dead = entries.iter().filter(|e| e.state == "dead").count();
    out.push_str(&format!(
        "{} entr{} ({} dead)\n",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        dead
    ));
    out
}

/// Reads at most this much of an admin answer.
const MAX_ANSWER: u64 = 32 * 1024 * 1024;

/// A plain HTTP/1.1 request to the admin listener; the body of a 200 answer.
fn admin_request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
        anyhow::anyhow!(
            "the store is in use by a running bedside, and its admin listener {addr} does not \
             answer: {e}"
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("the admin listener sent no HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        anyhow::bail!(
            "the admin listener answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(&body));
    }
    Ok(body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || body.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[(eol + 4 + size).min(body.len())..];
    }
}
