# The campaign bot: one image for every front end (slack, discord, gallery, run, resume).
#   docker build -t campaign-bot .
#   docker run --env-file .env -v campaign-data:/data -p 3000:3000 campaign-bot slack --host 0.0.0.0
# ffmpeg comes inside the pinned imageio-ffmpeg wheel; nothing is installed with apt.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CAMPAIGN_DATA_DIR=/data \
    CAMPAIGN_HTTP_HOST=0.0.0.0 \
    CAMPAIGN_HTTP_PORT=8080

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --create-home --home-dir /home/bot \
        --shell /usr/sbin/nologin bot \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY . .

USER 10001:10001
VOLUME ["/data"]
# 3000: Slack over HTTP (/slack/events); 8080: /healthz and /readyz (CAMPAIGN_HTTP_PORT)
EXPOSE 3000 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.health"]

# SIGTERM (docker stop) hands running campaigns over; the next start finishes them.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "bot.py"]
CMD ["slack", "--host", "0.0.0.0", "--port", "3000"]
