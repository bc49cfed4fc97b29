/* tests/corpus/corpus.h — loading the NUL-terminated statement corpus, and the client-side
 * marker substitution that turns a logged statement into what the server would parse.
 *
 * Owns: the one reader of tests/corpus/orm_statements.sql (format: README.md beside it),
 * shared by the libpg_query oracle (tests/unit/test_oracle.c) and the normalizer benchmark
 * (tests/bench/bench_sqlnorm.c), so both see exactly the same statement mix. Test code:
 * allocates freely and aborts on out-of-memory. */
#ifndef PGTALLY_TESTS_CORPUS_H
#define PGTALLY_TESTS_CORPUS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct CorpusEntry {
    const char *sql; /* NUL-terminated, inside Corpus.data */
    size_t len;
} CorpusEntry;

typedef struct Corpus {
    char *data;
    size_t data_len;
    CorpusEntry *entries;
    size_t count;
} Corpus;

/* Reads a NUL-terminated statement file. Returns false (corpus zeroed) when unreadable. */
bool corpus_load(Corpus *corpus, const char *path);
void corpus_free(Corpus *corpus);

/* Length of the string literal, quoted identifier, dollar quote or comment that starts at
 * s[i], or 0 when s[i] starts none of them. Runs to n when unterminated. */
size_t corpus_opaque_len(const char *s, size_t n, size_t i);

/* A malloc'ed, NUL-terminated copy of s with every client-side marker in operand position
 * (`?`, `%s`, `%(name)s`; after one of `= < > ( ,` or a word such as AND, LIMIT, FIRST)
 * replaced by $1, $2, ... — what JDBC, knex or psycopg would send. Markers never appear
 * inside literals or comments, which are copied unchanged. *had_markers tells whether any
 * marker was replaced. */
char *corpus_server_form(const char *s, size_t n, bool *had_markers);

#endif
