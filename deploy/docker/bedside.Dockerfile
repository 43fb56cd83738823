# syntax=docker/dockerfile:1
# Image of `bedside` (signaling, web client, SFU media). Build from the repository root:
#   docker build -f deploy/docker/bedside.Dockerfile -t bedside:0.1.0 .
# The web client is embedded in the binary, so the image holds only the binary and CA
# certificates. Configuration, TLS files and secrets are mounted at run time (never baked in).

# Build stage: the official Rust image, pinned to the workspace's rust-version (Cargo.toml).
FROM rust:1.89.0-bookworm AS build
# aws-lc-sys (str0m's crypto) may build through CMake; libopus-dev for the recorder (linked
# into bedside for `bedside dev`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libopus-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds; the binary is copied
# out in the same step because the cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bedside \
 && install -D -m 0755 target/release/bedside /out/bedside

# Runtime stage: Debian 12 slim, pinned to a point release.
FROM debian:12.11-slim
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bedside /usr/bin/bedside
# A fixed numeric non-root user (Kubernetes runAsNonRoot needs a number) and the only
# writable state: the audit log directory (mount a volume there).
# libopus: the recorder decodes Opus with the system library (the `opus` crate links it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 bedside \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/bedside --no-create-home \
        --shell /usr/sbin/nologin bedside \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/bedside \
 && (find / -xdev -perm /6000 -type f -exec chmod a-s {} + || true)
USER 10001:10001
VOLUME ["/var/lib/bedside"]
# 8443/tcp HTTPS + WebSocket signaling; 9090/tcp admin (/metrics, /healthz; publish it on an
# internal address only); 50000/udp the SFU's single media port ([media] bind).
EXPOSE 8443/tcp 9090/tcp 50000/udp
# The admin listener's /healthz, without adding curl to the image: bash's /dev/tcp. The
# admin listener must listen on an address the container reaches as 127.0.0.1 (0.0.0.0:9090
# in a container, published on the host's loopback only).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/bedside"]
CMD ["serve", "--config", "/etc/bedside/bedside.toml"]
