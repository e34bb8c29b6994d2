-- What the processes on one database share beyond the campaigns themselves.
-- create_budget: the provider account's create rate as a schedule (GCRA): next_at is the
-- next free slot (epoch s), paused_until the end of a 429's pause that every process sees.
CREATE TABLE create_budget (
    account TEXT PRIMARY KEY,
    next_at REAL NOT NULL,
    paused_until REAL NOT NULL DEFAULT 0
);
-- replay_keys: requests a front end has taken (a Slack signature or trigger id, a Discord
-- interaction id), kept until `until` (epoch s), so a request delivered to two replicas
-- (or replayed) starts nothing twice.
CREATE TABLE replay_keys (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE INDEX replay_keys_until ON replay_keys (until);
