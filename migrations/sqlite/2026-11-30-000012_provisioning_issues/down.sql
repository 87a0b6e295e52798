ALTER TABLE provisioning_cursors ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0;
DROP TABLE provisioning_issues;
