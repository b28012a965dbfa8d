# egress-gateway: multi-stage build on the current Node LTS (the code also runs on Node 20).
# Pinned below 24.19: addons compiled against 24.19+ headers abort when the GC frees their
# objects (nodejs/node#65446), which takes down better-sqlite3 12. Move on once that is fixed.
FROM node:24.18.0-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
# npm ci builds dist/ (the `prepare` script); the image runs that JavaScript, no transpiler.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24.18.0-bookworm-slim
ENV NODE_ENV=production \
    EGRESS_DB=/data/egress.db \
    EGRESS_API=0.0.0.0:8080 \
    EGRESS_HTTP_PROXY=0.0.0.0:3128 \
    EGRESS_SOCKS=0.0.0.0:1080 \
    EGRESS_DNS=0.0.0.0:5353 \
    EGRESS_TRANSPARENT_TLS=0.0.0.0:8443 \
    EGRESS_TRANSPARENT_HTTP=0.0.0.0:8081 \
    EGRESS_AGENT_GATEWAY=0.0.0.0:8090 \
    EGRESS_MCP_HUB=0.0.0.0:8091
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY package.json ./
COPY policies ./policies
# nft: the DaemonSet's init container loads the host firewall from this image.
RUN apt-get update && apt-get install -y --no-install-recommends nftables && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# API + metrics, HTTP proxy, SOCKS5, DNS (UDP and TCP), transparent TLS, transparent HTTP, agent gateway, MCP hub
EXPOSE 8080 3128 1080 5353/udp 5353/tcp 8443 8081 8090 8091
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/egress-gateway.js"]
CMD ["serve"]
