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

# Runtime: slim Debian with ffmpeg for the default profile, non-root.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
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
EXPOSE 8000
# The API listens on every interface of the container, so recorderd
# refuses to start without a token: give it RECORDERD_API_TOKENS_FILE (a
# secret file of `name:role:token` lines, as compose.yaml does) or
# RECORDERD_API_TOKEN. The probes (/healthz, /readyz) stay open for the
# health check below.
# recorderd is the entrypoint (PID 1): SIGTERM stops every recording
# cleanly; give it time with `docker stop -t 60` (see README).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["recorderd", "health", "--address", "127.0.0.1:8000"]
ENTRYPOINT ["recorderd"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
