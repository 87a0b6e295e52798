ALTER TABLE memberships ADD CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE memberships ADD CONSTRAINT memberships_directory_id_fkey FOREIGN KEY (directory_id) REFERENCES directories (id) ON DELETE CASCADE;
