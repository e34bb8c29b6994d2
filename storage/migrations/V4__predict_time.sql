-- Seconds of compute the provider reported for a step (Replicate's
-- metrics.predict_time, summed over the step's attempts); NULL when unknown.
ALTER TABLE steps ADD COLUMN predict_time_s REAL;
