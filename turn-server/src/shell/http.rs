//! A minimal HTTP/1.1 responder for `GET /metrics` on the metrics listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::shell::Ctx;

pub(crate) async fn serve_metrics(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((mut s, _)) = r else { continue };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut n = 0;
                    let read = async {
                        while n < buf.len() {
                            match s.read(&mut buf[n..]).await {
                                Ok(0) | Err(_) => break,
                                Ok(k) => n += k,
                            }
                            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(5), read).await.is_err() {
                        return;
                    }
                    let (status, body) = if buf[..n].starts_with(b"GET /metrics ") {
                        ("200 OK", ctx.shared.metrics.render())
                    } else {
                        ("404 Not Found", "not found\n".to_string())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(body.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}
