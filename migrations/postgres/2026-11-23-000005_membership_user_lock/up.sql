-- Per-row foreign-key checks on memberships cost about 280 ms of a 10 000-member PATCH at
-- 1 M users. The guarantees are kept without them:
-- * users: adding members loads those users FOR KEY SHARE in one statement, deleting a
--   user locks it FOR UPDATE first and removes its memberships (store::users);
-- * directories: a membership's group belongs to the directory, and the group foreign key
--   (kept: one cached lookup) cascades when the directory's groups are deleted.
ALTER TABLE memberships DROP CONSTRAINT memberships_user_id_fkey;
ALTER TABLE memberships DROP CONSTRAINT memberships_directory_id_fkey;
