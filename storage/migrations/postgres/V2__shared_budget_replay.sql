-- SQLite's V10: what the replicas on one database share beyond the campaigns.
-- create_budget: the provider account's create rate as a schedule (GCRA) on the
-- database's clock: next_at is the next free slot, paused_until the end of a 429's
-- pause every replica sees (epoch seconds).
CREATE TABLE create_budget (
    account TEXT PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL,
    paused_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
-- replay_keys: requests a front end has taken (a Slack signature or trigger id, a
-- Discord interaction id), kept until `until`, so a request delivered to two replicas
-- starts nothing twice.
CREATE TABLE replay_keys (
    key TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL
);
CREATE INDEX replay_keys_until ON replay_keys (until);
