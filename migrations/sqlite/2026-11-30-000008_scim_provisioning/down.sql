DROP TABLE directory_accounts;
DROP TABLE provisioning_cursors;
