DROP TABLE user_emails;
