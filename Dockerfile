# syntax=docker/dockerfile:1
# verdict's container image: built in a full Rust image, run from a
# distroless one (glibc and CA certificates, no shell, no package manager)
# as a non-root user. The binary is built without the `bench` feature: the
# server and the client commands only.
#
#   docker build -t verdict:0.1.0 .
#   docker run --rm -p 50051:50051 verdict:0.1.0 serve --dev --listen 0.0.0.0:50051
#
# Kubernetes probes it with its built-in `grpc` probe (grpc.health.v1), so
# the image needs no probe binary (deploy/kubernetes/deployment.yaml).

ARG RUST_VERSION=1.88

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a source change does not
# rebuild them. The build script compiles proto/ with protox (no protoc).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY proto-vendor ./proto-vendor
COPY examples ./examples
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --no-default-features --bin verdict \
 && rm -rf src
COPY src ./src
# Newer than the placeholder build, so cargo rebuilds verdict itself.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --no-default-features --bin verdict \
 && cp target/release/verdict /verdict

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="verdict" \
      org.opencontainers.image.description="Incident-remediation decision service: alerts become incidents, incidents get safe, approvable remediation proposals." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/verdict/verdict"
COPY --from=build /verdict /usr/local/bin/verdict
# distroless's `nonroot` user (65532); the manifests run it as 10001,
# which works as well: the binary needs no file of its own at run time.
USER 65532:65532
ENV VERDICT_LISTEN=0.0.0.0:50051 \
    VERDICT_LOG_FORMAT=json
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/verdict"]
CMD ["serve"]
