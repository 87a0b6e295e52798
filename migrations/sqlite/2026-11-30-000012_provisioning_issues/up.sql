-- The users of a followed directory that have no account, and why: `no_email` (skipped),
-- `not_found` (no calendar account of the unit knows the email), `revoked` (the
-- integrator revoked that email's account). One row per user, replaced by each outcome
-- and removed when the user is provisioned or deleted, so the admin API counts users,
-- not events. It replaces the cursor's event counter `skipped`.
CREATE TABLE provisioning_issues (
    directory_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT,
    reason TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (directory_id, user_id)
);
ALTER TABLE provisioning_cursors DROP COLUMN skipped;
