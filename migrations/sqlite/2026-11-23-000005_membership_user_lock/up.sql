-- PostgreSQL drops the memberships -> users and -> directories foreign keys here in
-- favour of row locks.
-- SQLite keeps them: its writers take turns (BEGIN IMMEDIATE), so the check is cheap and
-- no lock is needed. Kept as a step so both backends list the same migrations.
SELECT 1;
