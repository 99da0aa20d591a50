# One image for every Cairn process; docker-compose.yml picks the command (`cairn worker`, ...).

# Cairn Studio's bundle (docs/studio.md), built with Node 20 and copied into the image below.
FROM node:20-slim AS studio
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/index.html ui/vite.config.ts ui/tsconfig.json ./
COPY ui/src ./src
RUN npx tsc -p tsconfig.json && npx vite build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package needs: the build context also holds .venv/ and .cairn/.
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY core ./core
COPY store ./store
COPY domain ./domain
COPY api ./api
COPY worker ./worker
COPY cli ./cli
RUN pip install . \
    && useradd --create-home --uid 10001 cairn \
    && mkdir /data && chown cairn /data

COPY --from=studio /ui/dist /app/ui/dist

USER cairn
ENV CAIRN_DATA_DIR=/data \
    CAIRN_UI_DIR=/app/ui/dist
CMD ["cairn", "--help"]
