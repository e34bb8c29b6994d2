-- The audit ledger: who asked for what, where, what it was estimated to cost
-- and what it cost. One 'submitted' row per stored campaign is what quotas
-- count (with the campaign's status and its steps' costs). 'refused' and
-- 'blocked' rows record requests stopped before anything was stored, and a
-- 'finished' row is added each time a campaign ends (again after a retry).
-- channel and guild are '<platform>:<id>' (guild: a Discord server or a
-- Slack workspace). No foreign key: the ledger outlives what it describes.
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    event        TEXT NOT NULL,
    campaign_id  TEXT,
    requester    TEXT,
    channel      TEXT,
    guild        TEXT,
    theme        TEXT NOT NULL DEFAULT '',
    estimate_usd REAL,
    cost_usd     REAL,
    reason       TEXT
);
CREATE INDEX audit_by_requester ON audit (requester, at);
CREATE INDEX audit_by_channel ON audit (channel, at);
CREATE INDEX audit_by_guild ON audit (guild, at);
CREATE INDEX audit_by_campaign ON audit (campaign_id);
CREATE INDEX audit_by_at ON audit (at);

-- Campaigns stored before the ledger existed count as submitted when they
-- were created (their estimate is unknown: 0, so what they cost counts).
INSERT INTO audit (at, event, campaign_id, requester, channel, guild, theme, estimate_usd)
SELECT created_at, 'submitted', id, requester,
    CASE WHEN channel IS NOT NULL THEN platform || ':' || channel END,
    CASE WHEN guild IS NOT NULL THEN platform || ':' || guild END,
    theme, 0
FROM (
    SELECT *,
        CASE WHEN json_valid(origin_json)
            THEN COALESCE(json_extract(origin_json, '$.platform'), 'terminal') END AS platform,
        CASE WHEN json_valid(origin_json)
            THEN json_extract(origin_json, '$.channel') END AS channel,
        CASE WHEN json_valid(origin_json) THEN COALESCE(
            json_extract(origin_json, '$.guild'), json_extract(origin_json, '$.team')) END AS guild
    FROM campaigns
);
