-- create_budget.slots: how many create slots the schedule has handed out in all (one per
-- create the processes of this database sent, however many went in one reservation).
ALTER TABLE create_budget ADD COLUMN slots INTEGER NOT NULL DEFAULT 0;
