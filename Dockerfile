# The sidecar-redirect image: the one-shot init step (the default command) and the proxy agent (`run`).
# BASE is a Node 24 image with npm and Node's headers, pinned by digest so a rebuild starts from the same bytes:
# the public node:24-bookworm-slim (24.18.0; multi-arch, so `--platform linux/arm64` picks its arm64 image) by
# default; the tests pass a locally made stand-in by its digest, since no registry is reachable there
# (scripts/image/base.sh). To move to a newer base, pass or update the tag@sha256 digest.
ARG BASE=docker.io/library/node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d

FROM ${BASE} AS build
# g++ and python3 build the posix addon against Node 24 (gcc and libc6-dev, which g++ brings, the static CNI
# plugin); iptables, iproute2 (ip) and util-linux (setpriv, nsenter) are copied into the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 iptables ipset nftables util-linux iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Node's own headers, so node-gyp builds offline. --omit=peer: the chart tests' Helm package pulls the AWS CDK in
# as a peer (~160 MB) that nothing here uses. Behind a TLS-inspecting proxy, pass its CA bundle as the
# optional build secret `npm-ca` (podman/docker build --secret id=npm-ca,src=...); it never enters a layer.
RUN --mount=type=secret,id=npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi; \
    npm_config_nodedir=/usr/local npm ci --omit=peer --no-audit --no-fund --loglevel=error
COPY build.mjs tsconfig.json entrypoint ./
COPY src ./src
COPY scripts/image/rootfs.sh ./
RUN npm run build && bash rootfs.sh /rootfs
# Warm Node's compile cache (the entrypoint keeps it in dist/.cache), inside the finished root so each module is
# cached under the path it runs from: `plan` loads init's whole start-up path; the other chunks load on demand,
# and so does koffi, which the live probe (init's default) loads: its CommonJS files are cached here too.
# Both run with the entrypoint's own V8 flag: a V8 whose cache key holds its flags would reject a cache made without.
RUN chroot /rootfs /app/entrypoint plan >/dev/null \
 && chroot /rootfs /usr/local/bin/node --max-semi-space-size=8 --input-type=module -e " \
      import module from 'node:module'; import { readdirSync } from 'node:fs'; \
      module.enableCompileCache('/app/dist/.cache'); \
      for (const f of readdirSync('/app/dist')) if (/^(?!cli|peer).*\.mjs$/.test(f)) await import('/app/dist/' + f); \
      module.createRequire('/app/dist/cli.mjs')('koffi').load('libc.so.6');"
# Marks the build stage's last image, which the build leaves untagged, so scripts/image/build.sh can find and remove
# the ones older builds left; it changes no file, and comes last so no cached step depends on it.
LABEL io.sidecar-redirect.stage=build

FROM scratch
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/sidecar-redirect/sidecar-redirect
# The commit built from (scripts/image/build.sh passes git's HEAD); "unknown" outside a git checkout.
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sidecar-redirect" \
      org.opencontainers.image.description="One-shot init step that redirects a pod's TCP traffic to its sidecar proxy, verifies it, and exits; also the proxy agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin
WORKDIR /app
ENTRYPOINT ["/app/entrypoint"]
CMD ["init"]
