-- plan_calls: a campaign's paid planning predictions, each stored like a step's (the
-- intent before its create, then its id): the outline, each group's details, or the one
-- call that plans every product ("plans"), with "/strict" for a second asking.
CREATE TABLE plan_calls (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    provider_id TEXT,
    intent_at REAL,
    sent_input TEXT,
    PRIMARY KEY (campaign_id, part)
);
-- the one planning prediction of earlier campaigns
INSERT INTO plan_calls (campaign_id, part, provider_id, intent_at, sent_input)
    SELECT id, 'plans', plan_provider_id, plan_intent_at, plan_sent_input FROM campaigns
    WHERE plan_provider_id IS NOT NULL OR plan_intent_at IS NOT NULL;
ALTER TABLE campaigns DROP COLUMN plan_provider_id;
ALTER TABLE campaigns DROP COLUMN plan_intent_at;
ALTER TABLE campaigns DROP COLUMN plan_sent_input;
