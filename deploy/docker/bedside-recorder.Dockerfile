# syntax=docker/dockerfile:1
# Image of `bedside-recorder`. Build from the repository root:
#   docker build -f deploy/docker/bedside-recorder.Dockerfile -t bedside-recorder:0.1.0 .
# The same image runs `export`, `verify` and `sweep`:
#   docker run --rm ... bedside-recorder:0.1.0 sweep --config /etc/bedside/recorder.toml

FROM rust:1.89.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libopus-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bedside-recorder \
 && install -D -m 0755 target/release/bedside-recorder /out/bedside-recorder

FROM debian:12.11-slim
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bedside-recorder /usr/bin/bedside-recorder
# Recordings and the recorder's own audit log live under /var/lib/bedside-recorder (0700).
# libopus: the recorder decodes Opus with the system library (the `opus` crate links it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10003 bedside-recorder \
 && useradd --system --uid 10003 --gid 10003 --home-dir /var/lib/bedside-recorder \
        --no-create-home --shell /usr/sbin/nologin bedside-recorder \
 && install -d -o 10003 -g 10003 -m 0700 /var/lib/bedside-recorder \
        /var/lib/bedside-recorder/recordings \
 && (find / -xdev -perm /6000 -type f -exec chmod a-s {} + || true)
USER 10003:10003
VOLUME ["/var/lib/bedside-recorder"]
# No listening port and no HTTP endpoint: the recorder only connects out (to bedside's 8443
# and media port), so there is no EXPOSE and no HEALTHCHECK.
ENTRYPOINT ["/usr/bin/bedside-recorder"]
CMD ["run", "--config", "/etc/bedside/recorder.toml"]
