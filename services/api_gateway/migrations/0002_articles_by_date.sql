-- Listing without a search term orders by recency.
CREATE INDEX articles_created_idx ON articles (created_at DESC, id DESC);
