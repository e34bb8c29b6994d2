-- Campaigns, their products and every product's steps.
CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY,
    theme            TEXT NOT NULL,
    request_json     TEXT NOT NULL,
    status           TEXT NOT NULL,
    executor         TEXT NOT NULL,
    generator        TEXT NOT NULL,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    contact_sheet    TEXT,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX campaigns_by_created ON campaigns (created_at DESC);
CREATE INDEX campaigns_by_status ON campaigns (status);

CREATE TABLE products (
    campaign_id  TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    product_type TEXT NOT NULL,
    tagline      TEXT NOT NULL,
    image_prompt TEXT NOT NULL,
    video_prompt TEXT NOT NULL,
    PRIMARY KEY (campaign_id, idx)
);

CREATE TABLE steps (
    campaign_id TEXT NOT NULL,
    product_idx INTEGER NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  REAL,
    finished_at REAL,
    provider_id TEXT,
    output      TEXT,
    error       TEXT,
    cost_usd    REAL NOT NULL DEFAULT 0,
    worker      TEXT,
    model       TEXT,
    PRIMARY KEY (campaign_id, product_idx, name),
    FOREIGN KEY (campaign_id, product_idx)
        REFERENCES products (campaign_id, idx) ON DELETE CASCADE
);
