"""The shared keyword index: BM25 postings and statistics in PostgreSQL (kb.search.keyword).

Each chunk row carries its own keywords (``keyword_terms``/``keyword_tfs``, written by
whoever writes the chunk). Statement-level triggers on ``kb_chunk`` turn the rows an
INSERT, UPDATE or DELETE touched (its transition tables) into postings, document
frequencies and per-knowledge-base statistics, in the same transaction: a search sees a
document's keywords exactly when it sees its chunks, and whatever deletes a chunk (a
new version, a document, a knowledge base, an account, raw SQL) takes its keywords
with it. The triggers lock the knowledge base rows they change, in id order, so the
statistics of one knowledge base have one writer at a time and writers never deadlock.

Existing chunks are not indexed here (keyword_scheme = ''): `manage.py keyword_reindex`
indexes them online, in batches (`make run` runs it).

The foreign keys to kb_knowledgebase are the database's own, immediate and ON DELETE
CASCADE (Django's are deferred, see 0010); postings have none (millions of rows, each a
constraint check): the chunk triggers keep them.
"""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

APPLY = """
CREATE FUNCTION kb_keyword_apply(
    sign integer, p_chunk bigint[], p_kb bigint[], p_term text[], p_tf integer[]
) RETURNS void LANGUAGE plpgsql AS $$
-- (chunk, knowledge base, term, tf) for every term of every chunk added (sign 1) or
-- removed (sign -1); a chunk without terms comes once with term NULL and tf 0.
BEGIN
    IF p_chunk IS NULL OR cardinality(p_chunk) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM kb_knowledgebase WHERE id = ANY (p_kb) ORDER BY id FOR NO KEY UPDATE;
    INSERT INTO kb_keywordstats AS s (knowledge_base_id, chunks, total_length, version)
        SELECT kb, sign * count(DISTINCT chunk), sign * coalesce(sum(tf), 0), 1
        FROM unnest(p_chunk, p_kb, p_tf) AS p (chunk, kb, tf)
        GROUP BY kb ORDER BY kb
    ON CONFLICT (knowledge_base_id) DO UPDATE
        SET chunks = s.chunks + excluded.chunks,
            total_length = s.total_length + excluded.total_length,
            version = s.version + 1;
    IF sign > 0 THEN
        INSERT INTO kb_keywordterm AS t (knowledge_base_id, term, df)
            SELECT kb, term, count(*) FROM unnest(p_kb, p_term) AS p (kb, term)
            WHERE term IS NOT NULL GROUP BY kb, term ORDER BY kb, term
        ON CONFLICT (knowledge_base_id, term) DO UPDATE SET df = t.df + excluded.df;
        INSERT INTO kb_keywordposting (chunk_id, term_id, tf, doc_len)
            SELECT p.chunk, t.id, p.tf, l.len
            FROM unnest(p_chunk, p_kb, p_term, p_tf) AS p (chunk, kb, term, tf)
            JOIN kb_keywordterm t ON t.knowledge_base_id = p.kb AND t.term = p.term
            JOIN (SELECT chunk, sum(tf)::integer AS len FROM unnest(p_chunk, p_tf) AS q (chunk, tf)
                  GROUP BY chunk) l ON l.chunk = p.chunk;
    ELSE
        DELETE FROM kb_keywordposting k
            USING unnest(p_chunk, p_kb, p_term) AS p (chunk, kb, term), kb_keywordterm t
            WHERE t.knowledge_base_id = p.kb AND t.term = p.term
              AND k.term_id = t.id AND k.chunk_id = p.chunk;
        UPDATE kb_keywordterm t SET df = t.df - d.n
            FROM (SELECT kb, term, count(*) AS n FROM unnest(p_kb, p_term) AS p (kb, term)
                  WHERE term IS NOT NULL GROUP BY kb, term ORDER BY kb, term) d
            WHERE t.knowledge_base_id = d.kb AND t.term = d.term;
        DELETE FROM kb_keywordterm t
            USING (SELECT DISTINCT kb, term FROM unnest(p_kb, p_term) AS p (kb, term)
                   WHERE term IS NOT NULL) d
            WHERE t.knowledge_base_id = d.kb AND t.term = d.term AND t.df <= 0;
    END IF;
END $$;

CREATE FUNCTION kb_chunk_keywords_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE c bigint[]; k bigint[]; t text[]; f integer[];
BEGIN
    SELECT array_agg(r.id), array_agg(r.knowledge_base_id), array_agg(u.term),
           array_agg(coalesce(u.tf, 0))
      INTO c, k, t, f
      FROM new_rows r LEFT JOIN LATERAL unnest(r.keyword_terms, r.keyword_tfs) AS u (term, tf)
        ON true
     WHERE r.keyword_scheme <> '';
    PERFORM kb_keyword_apply(1, c, k, t, f);
    RETURN NULL;
END $$;

CREATE FUNCTION kb_chunk_keywords_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE c bigint[]; k bigint[]; t text[]; f integer[];
BEGIN
    SELECT array_agg(r.id), array_agg(r.knowledge_base_id), array_agg(u.term),
           array_agg(coalesce(u.tf, 0))
      INTO c, k, t, f
      FROM old_rows r LEFT JOIN LATERAL unnest(r.keyword_terms, r.keyword_tfs) AS u (term, tf)
        ON true
     WHERE r.keyword_scheme <> '';
    PERFORM kb_keyword_apply(-1, c, k, t, f);
    RETURN NULL;
END $$;

CREATE FUNCTION kb_chunk_keywords_updated() RETURNS trigger LANGUAGE plpgsql AS $$
-- Only rows whose keywords changed (a re-embedding's UPDATE changes none).
DECLARE c bigint[]; k bigint[]; t text[]; f integer[];
BEGIN
    SELECT array_agg(o.id), array_agg(o.knowledge_base_id), array_agg(u.term),
           array_agg(coalesce(u.tf, 0))
      INTO c, k, t, f
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      LEFT JOIN LATERAL unnest(o.keyword_terms, o.keyword_tfs) AS u (term, tf) ON true
     WHERE o.keyword_scheme <> ''
       AND (o.keyword_scheme, o.keyword_terms, o.keyword_tfs, o.knowledge_base_id)
           IS DISTINCT FROM (n.keyword_scheme, n.keyword_terms, n.keyword_tfs, n.knowledge_base_id);
    PERFORM kb_keyword_apply(-1, c, k, t, f);
    SELECT array_agg(n.id), array_agg(n.knowledge_base_id), array_agg(u.term),
           array_agg(coalesce(u.tf, 0))
      INTO c, k, t, f
      FROM new_rows n JOIN old_rows o ON o.id = n.id
      LEFT JOIN LATERAL unnest(n.keyword_terms, n.keyword_tfs) AS u (term, tf) ON true
     WHERE n.keyword_scheme <> ''
       AND (o.keyword_scheme, o.keyword_terms, o.keyword_tfs, o.knowledge_base_id)
           IS DISTINCT FROM (n.keyword_scheme, n.keyword_terms, n.keyword_tfs, n.knowledge_base_id);
    PERFORM kb_keyword_apply(1, c, k, t, f);
    RETURN NULL;
END $$;

CREATE TRIGGER kb_chunk_keywords_inserted AFTER INSERT ON kb_chunk
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_keywords_inserted();
CREATE TRIGGER kb_chunk_keywords_deleted AFTER DELETE ON kb_chunk
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_keywords_deleted();
CREATE TRIGGER kb_chunk_keywords_updated AFTER UPDATE ON kb_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_chunk_keywords_updated();
"""

UNAPPLY = """
DROP TRIGGER kb_chunk_keywords_updated ON kb_chunk;
DROP TRIGGER kb_chunk_keywords_deleted ON kb_chunk;
DROP TRIGGER kb_chunk_keywords_inserted ON kb_chunk;
DROP FUNCTION kb_chunk_keywords_updated();
DROP FUNCTION kb_chunk_keywords_deleted();
DROP FUNCTION kb_chunk_keywords_inserted();
DROP FUNCTION kb_keyword_apply(integer, bigint[], bigint[], text[], integer[]);
"""

POSTINGS = """
CREATE TABLE kb_keywordposting (
    chunk_id bigint NOT NULL,
    term_id integer NOT NULL,
    tf integer NOT NULL,
    doc_len integer NOT NULL,
    CONSTRAINT kb_keywordposting_pkey PRIMARY KEY (term_id, chunk_id) INCLUDE (tf, doc_len)
);
"""

FOREIGN_KEYS = """
ALTER TABLE kb_keywordstats ADD CONSTRAINT kb_keywordstats_knowledge_base_fk
    FOREIGN KEY (knowledge_base_id) REFERENCES kb_knowledgebase (id) ON DELETE CASCADE;
ALTER TABLE kb_keywordterm ADD CONSTRAINT kb_keywordterm_knowledge_base_fk
    FOREIGN KEY (knowledge_base_id) REFERENCES kb_knowledgebase (id) ON DELETE CASCADE;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0010_text_embedding"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="keyword_scheme",
            field=models.CharField(blank=True, default="", max_length=40),
        ),
        migrations.AddField(
            model_name="chunk",
            name="keyword_terms",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(), blank=True, default=list, size=None
            ),
        ),
        migrations.AddField(
            model_name="chunk",
            name="keyword_tfs",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.PositiveIntegerField(), blank=True, default=list, size=None
            ),
        ),
        migrations.CreateModel(
            name="KeywordStats",
            fields=[
                (
                    "knowledge_base",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="kb.knowledgebase",
                    ),
                ),
                ("chunks", models.BigIntegerField(default=0)),
                ("total_length", models.BigIntegerField(default=0)),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="KeywordTerm",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("term", models.TextField()),
                ("df", models.PositiveIntegerField()),
                (
                    "knowledge_base",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="kb.knowledgebase",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("knowledge_base", "term"), name="kb_keywordterm_unique"
                    )
                ],
            },
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="KeywordPosting",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "term_id",
                                "chunk_id",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),  # fmt: skip
                        ("term_id", models.IntegerField()),
                        ("chunk_id", models.BigIntegerField()),
                        ("tf", models.IntegerField()),
                        ("doc_len", models.IntegerField()),
                    ],
                ),
            ],
            database_operations=[
                migrations.RunSQL(POSTINGS, "DROP TABLE kb_keywordposting"),
            ],
        ),
        migrations.RunSQL(
            FOREIGN_KEYS,
            "ALTER TABLE kb_keywordterm DROP CONSTRAINT kb_keywordterm_knowledge_base_fk; "
            "ALTER TABLE kb_keywordstats DROP CONSTRAINT kb_keywordstats_knowledge_base_fk;",
        ),
        migrations.RunSQL(APPLY, UNAPPLY),
    ]
