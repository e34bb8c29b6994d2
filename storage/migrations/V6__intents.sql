-- Intent before spend: when a paid create was about to be sent, so that a
-- process resuming after a crash looks for the prediction (by its input, among
-- the account's recent ones) before it creates another. The planning
-- prediction is remembered on the campaign like a step's.
ALTER TABLE steps ADD COLUMN intent_at REAL;
ALTER TABLE campaigns ADD COLUMN plan_provider_id TEXT;
ALTER TABLE campaigns ADD COLUMN plan_intent_at REAL;
