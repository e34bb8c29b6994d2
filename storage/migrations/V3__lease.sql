-- Which process runs a campaign, and when it last said so: a campaign whose
-- owner stopped beating is an orphan that another process may resume.
ALTER TABLE campaigns ADD COLUMN owner TEXT;
ALTER TABLE campaigns ADD COLUMN heartbeat_at REAL;
