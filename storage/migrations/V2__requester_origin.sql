-- Who asked for a campaign and where its chat status message lives, so that
-- buttons can check the requester and front ends can find the message again.
ALTER TABLE campaigns ADD COLUMN requester TEXT;
ALTER TABLE campaigns ADD COLUMN origin_json TEXT NOT NULL DEFAULT '{}';
CREATE INDEX campaigns_by_requester ON campaigns (requester, created_at DESC);
