-- Customer setup links (DESIGN.md §8): a URL that opens, with no other login, a page
-- scoped to one tenant and product or to one organizational unit. The URL carries a
-- secret; only its SHA-256 digest is kept, so the table alone opens no page.
CREATE TABLE setup_links (
    id TEXT PRIMARY KEY NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    -- Either tenant and product, or organizational_unit_id.
    tenant TEXT,
    product TEXT,
    organizational_unit_id TEXT,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX setup_links_created ON setup_links (created_at, id);
