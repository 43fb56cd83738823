//! The outbox for operators: the admin listener's `GET /webhooks` (a listing) and
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
