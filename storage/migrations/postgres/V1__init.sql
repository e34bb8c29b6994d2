-- The PostgreSQL schema: SQLite's V1..V9 (storage/migrations/V*.sql) in one file,
-- since no PostgreSQL database predates them. Later versions come in pairs: the
-- SQLite V10 and the PostgreSQL V2 make the same change, each in its dialect.
-- Times are epoch seconds (DOUBLE PRECISION), as in SQLite; lease times
-- (heartbeat_at) are written on the database's clock.
CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY,
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,  -- insertion order (SQLite's rowid)
    theme            TEXT NOT NULL,
    request_json     TEXT NOT NULL,
    status           TEXT NOT NULL,
    executor         TEXT NOT NULL,
    generator        TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    contact_sheet    TEXT,
    error            TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    requester        TEXT,
    origin_json      TEXT NOT NULL DEFAULT '{}',
    owner            TEXT,
    heartbeat_at     DOUBLE PRECISION,
    plan_provider_id TEXT,
    plan_intent_at   DOUBLE PRECISION,
    plan_sent_input  TEXT,
    reel             TEXT,
    timeline         TEXT
);
CREATE INDEX campaigns_by_created ON campaigns (created_at DESC);
CREATE INDEX campaigns_by_status ON campaigns (status);
CREATE INDEX campaigns_by_requester ON campaigns (requester, created_at DESC);

CREATE TABLE products (
    campaign_id  TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    product_type TEXT NOT NULL,
    tagline      TEXT NOT NULL,
    image_prompt TEXT NOT NULL,
    video_prompt TEXT NOT NULL,
    attempt_of   INTEGER,
    action       TEXT,
    PRIMARY KEY (campaign_id, idx)
);

CREATE TABLE steps (
    campaign_id    TEXT NOT NULL,
    product_idx    INTEGER NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    started_at     DOUBLE PRECISION,
    finished_at    DOUBLE PRECISION,
    provider_id    TEXT,
    output         TEXT,
    error          TEXT,
    cost_usd       DOUBLE PRECISION NOT NULL DEFAULT 0,
    worker         TEXT,
    model          TEXT,
    predict_time_s DOUBLE PRECISION,
    output_url     TEXT,
    intent_at      DOUBLE PRECISION,
    sent_input     TEXT,
    PRIMARY KEY (campaign_id, product_idx, name),
    FOREIGN KEY (campaign_id, product_idx)
        REFERENCES products (campaign_id, idx) ON DELETE CASCADE
);

-- The audit ledger (see SQLite's V7): no foreign key, it outlives what it describes.
CREATE TABLE audit (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           DOUBLE PRECISION NOT NULL,
    event        TEXT NOT NULL,
    campaign_id  TEXT,
    requester    TEXT,
    channel      TEXT,
    guild        TEXT,
    theme        TEXT NOT NULL DEFAULT '',
    estimate_usd DOUBLE PRECISION,
    cost_usd     DOUBLE PRECISION,
    reason       TEXT
);
CREATE INDEX audit_by_requester ON audit (requester, at);
CREATE INDEX audit_by_channel ON audit (channel, at);
CREATE INDEX audit_by_guild ON audit (guild, at);
CREATE INDEX audit_by_campaign ON audit (campaign_id);
CREATE INDEX audit_by_at ON audit (at);

-- Provider documents (see SQLite's V9).
CREATE TABLE provider_cache (
    key        TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    body       TEXT NOT NULL,
    checked_at DOUBLE PRECISION NOT NULL
);
