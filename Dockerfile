# safetybot: one process per container (uvicorn, one worker); SQLite data on a volume by default.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/home/safetybot/.matplotlib \
    VENV=/opt/venv

WORKDIR /app
# System packages (CJK font, tzdata) come from the same script CI runs.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --system-only && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY models models
COPY scheduler scheduler
RUN scripts/setup.sh \
    && useradd --create-home --uid 10001 safetybot \
    && mkdir -p /data && chown safetybot /data

USER safetybot
# Warm matplotlib's font cache at build time so the first chart is fast.
RUN /opt/venv/bin/python -c "import matplotlib.font_manager"

ENV PATH=/opt/venv/bin:$PATH
# Relative paths in the config (the default SQLite file, data_dir) land on the volume.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# Mount the config at /config/config.toml; secrets come from environment variables it names.
# 0.0.0.0 so the platforms' callbacks reach the container. The chat simulator (/sim) stays unexposed: it is off
# unless the config says [simulator] enabled = true, and on a non-loopback host it is mounted only with a token
# ([simulator] token_env); keep enabled = false in production (see README, "The simulator is for rehearsal").
CMD ["safetybot", "serve", "--config", "/config/config.toml", "--host", "0.0.0.0", "--port", "8000"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
