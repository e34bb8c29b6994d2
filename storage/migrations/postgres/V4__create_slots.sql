-- SQLite's V12: create_budget.slots, how many create slots the schedule has handed out in
-- all (one per create the replicas sent, however many went in one reservation).
ALTER TABLE create_budget ADD COLUMN slots BIGINT NOT NULL DEFAULT 0;
