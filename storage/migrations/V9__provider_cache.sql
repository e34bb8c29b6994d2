-- What the provider publishes about its models (e.g. a Replicate model's input
-- schema), kept so the bot builds inputs while the provider is unreachable.
-- key: the model id; version: the provider's version id of what is stored;
-- body: the document as JSON; checked_at: when it was last compared (epoch s).
CREATE TABLE provider_cache (
    key TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    checked_at REAL NOT NULL
);
-- The input a paid create was about to send, with its intent: adoption after a
-- crash compares with what was sent, even if the model's schema changed since.
ALTER TABLE steps ADD COLUMN sent_input TEXT;
ALTER TABLE campaigns ADD COLUMN plan_sent_input TEXT;
