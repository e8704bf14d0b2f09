# protogate's container image: the release binary on distroless, run as a
# non-root user. Build and try it from the repository root:
#
#   docker build -t protogate:0.1.0 .
#   docker run --rm -p 8080:8080 -p 9901:9901 \
#     -v "$PWD/my-config.yaml:/etc/protogate/protogate.yaml:ro" protogate:0.1.0
#
# The config must listen on 0.0.0.0 (not 127.0.0.1) to be reached from
# outside the container. deploy/kubernetes/ runs this image; tests/deploy.rs
# checks that the two agree (ports, paths, user).

# Build stage: the toolchain the crate declares (rust-version 1.95), on the
# Debian release the runtime stage is made from, so the binary is linked
# against the glibc it will run with.
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, in layers of their own, rebuilt only when the
# manifest, the lock file or what build.rs compiles change. build.rs reads
# proto/ and tests/protos/etcd/ (the etcd API the bench compares with).
# The stub sources stand in for src/ while the dependencies compile.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY tests/protos/etcd tests/protos/etcd
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && echo '//! stub' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The crate itself. COPY keeps the files' times, which may be older than
# the stub build: touch the crate roots so cargo rebuilds them rather than
# keep the stub binary, and check the result is the real one (the stub
# prints no version). The release profile keeps line tables, about 120 MB
# of the 150 MB binary: the image drops them, keeping the symbols, so a
# backtrace still names functions (not lines).
COPY src src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && target/release/protogate --version | grep -q '^protogate ' \
    && mkdir /out \
    && strip --strip-debug -o /out/protogate target/release/protogate

# Runtime stage: distroless's cc image has glibc, libgcc and the CA
# certificates (for https:// upstreams) and nothing else: no shell, no
# package manager. Its `nonroot` variant is user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/protogate /usr/local/bin/protogate
# Numeric, so Kubernetes' runAsNonRoot can check it without a passwd file.
USER 65532:65532
# `listen` and `admin.listen` of the config the image is run with.
EXPOSE 8080 9901
# protogate stops gracefully on SIGTERM: no new connections, requests in
# flight finish within `timeouts.shutdown`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["protogate"]
CMD ["serve", "--config", "/etc/protogate/protogate.yaml"]
