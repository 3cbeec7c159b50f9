# syntax=docker/dockerfile:1
# Build stage: installs commcentre into /opt/venv; only that venv reaches the final image.
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# requirements.lock (`make lock`) pins every runtime dependency and the build backend
# (hatchling) for CPython 3.12 on Linux, x86_64 and aarch64 alike, with the sha256 of each
# file: pip installs exactly those wheels, checks their hashes and resolves nothing. The
# project then goes in without its dependencies and without an index, built by the pinned
# hatchling, and pip check fails the build if the lock misses a requirement.
COPY requirements.lock ./
RUN pip install --no-compile --no-deps --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-compile --no-deps --no-index --no-build-isolation . \
    && pip check \
    && python -m compileall -q /opt/venv

# Final stage: slim runtime, non-root, config by environment.
FROM python:3.12-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMMCENTRE_ENVIRONMENT=prod \
    COMMCENTRE_HOST=0.0.0.0 \
    COMMCENTRE_PORT=8000 \
    COMMCENTRE_KEYRING_PATH=/var/lib/commcentre/keyring.json \
    COMMCENTRE_DATABASE_URL=sqlite+aiosqlite:////var/lib/commcentre/commcentre.db
RUN groupadd --system --gid 10001 commcentre \
    && useradd --system --uid 10001 --gid commcentre --home-dir /var/lib/commcentre --shell /usr/sbin/nologin commcentre \
    && install -d -o commcentre -g commcentre -m 0700 /var/lib/commcentre /var/lib/commcentre/keys /var/lib/commcentre/audit
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root migrations ./migrations
ENV COMMCENTRE_MIGRATIONS_DIR=/app/migrations
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('COMMCENTRE_PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["commcentre"]
CMD ["serve"]
