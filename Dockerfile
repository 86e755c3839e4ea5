# syntax=docker/dockerfile:1
#
# Chatbox container image: a static Go binary on distroless, non-root, no shell.
#
#   docker build -t chatbox .
#   docker run --rm -p 8080:8080 -e CHATBOX_SERVER_MODE=dev chatbox     # try it
#
# Production needs secrets and MongoDB; see docs/deployment.md. The image reads
# /etc/chatbox/chatbox.toml (deploy/docker/chatbox.toml, replaced in Kubernetes
# by the ConfigMap) and keeps the embedded store, when used, in /var/lib/chatbox.

# ---- build ------------------------------------------------------------------
# $BUILDPLATFORM: compile natively and cross-compile for the target, so
# `docker buildx build --platform linux/amd64,linux/arm64` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, in their own layer: source edits do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS TARGETARCH
# CGO_ENABLED=0: a static binary (the embedded store's SQLite is pure Go), so
# it runs on distroless/static, which has no libc.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /chatbox ./cmd/chatbox

# The final stage has no shell to mkdir/chown with, so the data directory is
# made here and copied with the nonroot owner (uid/gid 65532). A named Docker
# volume mounted there starts with this owner.
RUN mkdir -p /rootfs/var/lib/chatbox

# ---- run --------------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd, nothing else;
# the :nonroot tag runs as uid 65532 by default.
FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="chatbox" \
      org.opencontainers.image.description="Chat server for LLM conversations with human takeover"

COPY --from=build /chatbox /chatbox
COPY deploy/docker/chatbox.toml /etc/chatbox/chatbox.toml
COPY --from=build --chown=65532:65532 /rootfs/var/lib/chatbox /var/lib/chatbox

# In a container the server must listen on every interface, whatever the
# mounted config says (environment beats the file). To use another port,
# override this variable, not the file's server.listen.
ENV CHATBOX_SERVER_LISTEN=0.0.0.0:8080

USER nonroot:nonroot
EXPOSE 8080
# SIGTERM (the default stop signal) starts the graceful shutdown; allow more
# than server.shutdown_timeout (30s): docker stop -t 45.
ENTRYPOINT ["/chatbox"]
CMD ["serve", "-config", "/etc/chatbox/chatbox.toml"]
