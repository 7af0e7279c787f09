# The regmigrate CLI as a container image (deploy/kubernetes/*.yaml use it):
#   docker build -t regmigrate:0.1.0 .
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY fixtures ./fixtures
COPY bench ./bench
COPY scripts ./scripts
COPY man ./man
RUN npm run build

FROM node:20-slim
WORKDIR /opt/regmigrate
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
# man regmigrate, man regmigrate-push, …: the pages npm run docs writes.
COPY --from=build /src/man/ /usr/local/share/man/man1/
RUN ln -s /opt/regmigrate/bin/regmigrate /usr/local/bin/regmigrate \
 && groupadd --system --gid 10001 regmigrate \
 && useradd --system --uid 10001 --gid regmigrate --home-dir /nonexistent --shell /usr/sbin/nologin regmigrate
USER 10001:10001
ENTRYPOINT ["regmigrate"]
CMD ["--help"]
