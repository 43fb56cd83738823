# syntax=docker/dockerfile:1
# Image of `bedside-turn` (TURN/STUN relay). Build from the repository root:
#   docker build -f deploy/docker/bedside-turn.Dockerfile -t bedside-turn:0.1.0 .
# Configuration, certificate and the REST secret are mounted at run time.

FROM rust:1.89.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bedside-turn \
 && install -D -m 0755 target/release/bedside-turn /out/bedside-turn

FROM debian:12.11-slim
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bedside-turn /usr/bin/bedside-turn
# Port 443 as a non-root user: in a bridge network Docker lets any user bind low ports
# (net.ipv4.ip_unprivileged_port_start=0), but with network_mode: host (compose.yaml) it
# does not, so the binary carries the one file capability it needs (as coturn's image does).
# The setuid/setgid bits of every other file are removed, so nothing else can raise
# privileges. libcap2-bin is installed and purged in the same step.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /usr/bin/bedside-turn \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10002 bedside-turn \
 && useradd --system --uid 10002 --gid 10002 --no-create-home --shell /usr/sbin/nologin \
        bedside-turn \
 && (find / -xdev -perm /6000 -type f -exec chmod a-s {} + || true)
USER 10002:10002
# 3478/udp+tcp TURN/STUN; 443/tcp TURN over TLS and plain TCP on one port; 9641/tcp metrics.
# Relay ports (relay_port_min..relay_port_max, UDP) are only exchanged with the SFU.
EXPOSE 3478/udp 3478/tcp 443/tcp 9641/tcp
# The metrics listener answers only GET /metrics; it must listen on 127.0.0.1 or 0.0.0.0.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9641 && printf 'GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/bedside-turn"]
CMD ["--config", "/etc/bedside/turn.toml"]
