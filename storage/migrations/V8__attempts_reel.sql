-- Per-product actions and the campaign's finished pictures.
-- A product made by Reroll or Animate is a new attempt of an earlier product
-- (its slot, the original product's idx): attempt_of names that slot and
-- action says which button made it. The original products have NULLs.
ALTER TABLE products ADD COLUMN attempt_of INTEGER;
ALTER TABLE products ADD COLUMN action TEXT;
-- The campaign reel (one MP4 of every product's clip) and the timeline image.
ALTER TABLE campaigns ADD COLUMN reel TEXT;
ALTER TABLE campaigns ADD COLUMN timeline TEXT;
