DROP INDEX events_unsequenced;
ALTER TABLE events DROP COLUMN ordinal;
ALTER TABLE events ALTER COLUMN sequence SET NOT NULL;
