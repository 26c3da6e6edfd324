CREATE TABLE articles (
    id          bigserial PRIMARY KEY,
    slug        text        NOT NULL UNIQUE,
    title       text        NOT NULL,
    body        text        NOT NULL,
    tags        text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
    ) STORED
);
CREATE INDEX articles_search_idx ON articles USING gin (search);
CREATE INDEX articles_tags_idx ON articles USING gin (tags);
