# syntax=docker/dockerfile:1
# Build stage: the release binary only.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations migrations
COPY testkit testkit
COPY src src
COPY examples examples
RUN cargo build --release --locked --bin recorderd

# Runtime: slim Debian with ffmpeg for the default profile and pocketsphinx
# for its transcripts, non-root. (whisper.cpp is used instead when
# `whisper-cli` and a model are added: see RECORDERD_WHISPER_MODEL.)
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg pocketsphinx pocketsphinx-en-us ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin recorderd \
 && mkdir -p /data && chown recorderd:recorderd /data
COPY --from=build /src/target/release/recorderd /usr/local/bin/recorderd
USER recorderd
VOLUME ["/data"]
ENV RECORDERD_DATA_DIR=/data
# A container's host name changes when it is recreated; the node id must
# not (it names who supervises each job). Give each server of a cluster
# its own.
ENV RECORDERD_NODE_ID=recorderd
# Every setting is a RECORDERD_* variable; none is fixed by a flag below,
# so `-e RECORDERD_BIND=0.0.0.0:9000` moves the server and its health
# check alike.
ENV RECORDERD_BIND=0.0.0.0:8000
EXPOSE 8000
# The API listens on every interface of the container, so recorderd
# refuses to start without a token: give it RECORDERD_API_TOKENS_FILE (a
# secret file of `name:role:token` lines, as compose.yaml does) or
# RECORDERD_API_TOKEN. The probes (/healthz, /readyz) stay open for the
# health check below.
# recorderd is the entrypoint (PID 1): SIGTERM stops every recording
# cleanly; give it time with `docker stop -t 60` (see README).
STOPSIGNAL SIGTERM
# Asks the address RECORDERD_BIND names (on loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["recorderd", "health"]
ENTRYPOINT ["recorderd"]
CMD ["serve"]
