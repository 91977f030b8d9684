# Two stages: the first compiles TypeScript, the WebAssembly line walk and the fs-ext flock addon, the second
# carries only the compiled code and production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# node-gyp needs python3, make and g++ to build fs-ext.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY wasm ./wasm
COPY scripts ./scripts
COPY bench ./bench
COPY test ./test
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/cli ./dist/cli
COPY openapi ./openapi
# Run as the image's unprivileged user; mount the log directory writable for it (or set user: to the writer's uid).
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/bin.cjs"]
CMD ["serve"]
