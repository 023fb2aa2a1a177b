# syntax=docker/dockerfile:1
# irsa-webhook image: two esbuild bundles (dist/handler.js the server, dist/cli.js the CLI) on Node 24 LTS.
#   docker build -t registry.example.com/irsa-webhook:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 .   (what .github/workflows/release.yml runs)
# The same artefact the tests start: `npm run build` writes dist/, `npm start` runs `node --max-semi-space-size=8 dist/handler.js`
# (the CMD below).
#
# Three stages, so a multi-arch build runs nothing under emulation that does not have to:
#   build        on the BUILD machine's platform ($BUILDPLATFORM): npm ci + esbuild, once for every target. Its
#                output is architecture-independent JavaScript; nothing in it depends on the target.
#   target-node  on the TARGET platform: the Node binary the image runs, and the compile cache written by that
#                same Node (a V8 code cache made by another architecture's Node would be rejected at run time).
#   runtime      distroless + what target-node made.

# Keep in step with the `node` devDependency in package.json (the Node the tests run on).
ARG NODE_VERSION=24.21.0
# The release version, package.json's `version` (the build stage fails when they differ; test/unit/version.test.ts
# checks this default). Release builds pass it with the commit and the repository URL (.github/workflows/release.yml).
ARG VERSION=0.1.0

FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install time. The one install script we would skip that matters is
# the `node` devDependency's, which downloads a second Node binary for the tests; the image already has this exact
# Node version, so we drop its placeholder from node_modules/.bin and npm scripts use the image's node. esbuild
# needs no install script (it finds its binary in the @esbuild/<platform> optional dependency, here the build
# machine's platform).
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && rm -f node_modules/.bin/node \
 && node --version
COPY . .
ARG VERSION
RUN npm run build \
 && test -f dist/handler.js \
 && node dist/cli.js --help > /dev/null \
 && node -e "const p=require('./dist/package.json'); if (p.type !== 'module') process.exit(1)" \
 && node -e "const v=require('./package.json').version; if (v !== process.argv[1]) { console.error('VERSION build arg ' + process.argv[1] + ' != package.json version ' + v); process.exit(1) }" "$VERSION"

# Node's compile cache (V8 code cache) for the bundle, so a cold start does not compile it: written here, on the
# target platform, by the runtime user (the cache is keyed by Node build, uid and file path), for the same /app/dist
# path and the same Node binary the runtime stage copies; only read at run time, so a read-only root filesystem is
# fine. The warm-up ends at config validation on purpose (exit 1); the test checks the cache was written.
FROM node:${NODE_VERSION}-bookworm-slim AS target-node
WORKDIR /src
COPY package.json ./
COPY scripts/warm-compile-cache.ts scripts/
COPY --from=build /src/dist/ /app/dist/
RUN mkdir -p /app/.compile-cache && chown 65532:65532 /app/.compile-cache
USER 65532:65532
RUN NODE_COMPILE_CACHE=/app/.compile-cache node scripts/warm-compile-cache.ts /app/dist; \
    test -n "$(ls -A /app/.compile-cache)"

# Runtime: distroless (glibc, libstdc++, CA certificates; no shell, no package manager, no npm) plus the target's
# Node binary, so the runtime Node is exactly NODE_VERSION. The bundle inlines every production dependency, so no
# node_modules is needed.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION
ARG REVISION=unknown
ARG SOURCE=
# OCI annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md); licenses is package.json's.
LABEL org.opencontainers.image.title="irsa-webhook" \
      org.opencontainers.image.description="IAM Roles for Service Accounts on Vultr: a Kubernetes mutating admission webhook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=target-node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=target-node --chown=0:0 /app/dist/ /app/dist/
COPY --from=target-node --chown=65532:65532 /app/.compile-cache/ /app/.compile-cache/
# 65532:65532 is distroless "nonroot"; the files stay root-owned and read-only to the process.
USER 65532:65532
ENV NODE_ENV=production NODE_COMPILE_CACHE=/app/.compile-cache
# Nothing is written at run time: run with readOnlyRootFilesystem: true.
EXPOSE 8443 8080
# Exec form: node is PID 1 and receives SIGTERM directly (the app installs the handler and drains).
ENTRYPOINT []
# --max-semi-space-size=8: under load V8 grew the young generation to ~128 MiB for a heap whose live data is
# ~12 MiB (docs/performance.md); 8 MiB semi-spaces keep memory close to the floor and measured no slower (smaller
# young generation, fewer cache misses). Same command as `npm start`.
CMD ["node", "--max-semi-space-size=8", "dist/handler.js"]
