DROP TABLE events;
DROP TABLE memberships;
DROP TABLE scim_groups;
DROP TABLE users;
DROP TABLE directories;
