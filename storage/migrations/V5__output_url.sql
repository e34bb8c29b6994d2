-- The provider's URL of a step's output (Replicate keeps it for an hour): a
-- video may start from its image's URL while the image is still being saved,
-- and a resumed chain uses it if the image finished recently enough.
ALTER TABLE steps ADD COLUMN output_url TEXT;
