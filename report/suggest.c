/* report/suggest — see suggest.h. Works on the normalizer's output, which is regular: one
 * space between tokens, lowercase keywords, placeholders `$n`, collapsed lists as comments. */
#include "report/suggest.h"

#include <stdio.h>
#include <string.h>

#define MAX_PLACEHOLDERS 8

typedef struct Placeholder {
    size_t start, end; /* [start, end) of "$n" */
    int depth;         /* parenthesis depth */
} Placeholder;

static bool is_ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* True when the word `w` starts at s[i] and stands alone. */
static bool word_at(const char *s, size_t len, size_t i, const char *w)
{
    size_t n = strlen(w);
    return i + n <= len && memcmp(s + i, w, n) == 0 &&
           (i == 0 || !is_ident_char((unsigned char)s[i - 1])) &&
           (i + n == len || !is_ident_char((unsigned char)s[i + n]));
}

/* Start of the column reference (`a`, `t.a`, `"t"."a"`) that ends just before s[end]. */
static bool column_before(const char *s, size_t end, size_t *start)
{
    size_t i = end;
    while (i > 0) {
        char c = s[i - 1];
        if (c == '"') {
            size_t j = i - 1;
            while (j > 0 && s[j - 1] != '"')
                j--;
            if (j == 0)
                return false;
            i = j - 1;
        } else if (is_ident_char((unsigned char)c) || c == '.') {
            i--;
        } else {
            break;
        }
    }
    if (i == end || s[i] == '.' || is_digit(s[i]) || s[i] == '$')
        return false;
    *start = i;
    return true;
}

/* Length of a `::type` cast at s[i] (`::uuid`, `::int8`), 0 if none. */
static size_t cast_at(const char *s, size_t len, size_t i)
{
    if (i + 2 >= len || s[i] != ':' || s[i + 1] != ':')
        return 0;
    size_t j = i + 2;
    while (j < len && (is_ident_char((unsigned char)s[j]) || s[j] == '"'))
        j++;
    return j > i + 2 && !(j < len && s[j] == '[') ? j - i : 0;
}

/* Appends to out; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *used, const char *s, size_t n)
{
    if (*used + n + 1 > cap)
        return false;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
    return true;
}

bool suggest_batched(const char *sql, SuggestStyle style, char *out, size_t cap)
{
    if (!cap)
        return false;
    out[0] = '\0';
    size_t len = strlen(sql);
    if (!word_at(sql, len, 0, "select") && !word_at(sql, len, 0, "delete"))
        return false;

    /* One pass: placeholders and their depth, and the last top-level `where`. */
    Placeholder ph[MAX_PLACEHOLDERS];
    size_t n_ph = 0, where = 0;
    bool have_where = false;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = sql[i];
        if (c == '"' || c == '\'') {
            const char *close = strchr(sql + i + 1, c);
            if (!close)
                return false;
            i = (size_t)(close - sql);
        } else if (c == '/' && sql[i + 1] == '*') {
            const char *close = strstr(sql + i + 2, "*/");
            if (!close)
                return false;
            i = (size_t)(close - sql) + 1;
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (c == '$' && is_digit(sql[i + 1]) &&
                   (i == 0 || !is_ident_char((unsigned char)sql[i - 1]))) {
            if (n_ph == MAX_PLACEHOLDERS)
                return false;
            size_t j = i + 1;
            while (j < len && is_digit(sql[j]))
                j++;
            ph[n_ph++] = (Placeholder){i, j, depth};
            i = j - 1;
        } else if (depth == 0 && word_at(sql, len, i, "where")) {
            where = i;
            have_where = true;
        } else if (c == ';') {
            return false; /* several statements: not ours to rewrite */
        }
    }
    if (!have_where || n_ph == 0)
        return false;

    /* Exactly one `col = $n` after the where; at most one `limit $m`; nothing else. */
    const Placeholder *key = NULL, *limit = NULL;
    size_t col_start = 0, limit_start = 0;
    for (size_t k = 0; k < n_ph; k++) {
        const Placeholder *p = &ph[k];
        if (p->depth != 0 || p->start < where)
            return false;
        if (p->start >= 6 && memcmp(sql + p->start - 6, "limit ", 6) == 0) {
            if (limit)
                return false;
            limit = p;
            limit_start = p->start - 6;
            while (limit_start > 0 && sql[limit_start - 1] == ' ')
                limit_start--;
            continue;
        }
        if (key || p->start < 3 || memcmp(sql + p->start - 3, " = ", 3) != 0)
            return false;
        size_t cs;
        if (!column_before(sql, p->start - 3, &cs))
            return false;
        bool after_where = cs >= 6 && memcmp(sql + cs - 6, "where ", 6) == 0;
        bool after_and =
            cs >= 4 && memcmp(sql + cs - 4, "and ", 4) == 0 && (cs == 4 || sql[cs - 5] == ' ');
        if (!after_where && !after_and)
            return false;
        key = p;
        col_start = cs;
    }
    if (!key)
        return false;
    /* A limit must end the statement (`... limit $2`), or removing it changes more. */
    if (limit && limit->end != len)
        return false;
    size_t body_end = limit ? limit_start : len;
    size_t cast = cast_at(sql, body_end, key->end);
    const char *cast_text = sql + key->end;

    size_t used = 0;
    bool ok = put(out, cap, &used, sql, col_start) &&
              put(out, cap, &used, sql + col_start, key->start - 3 - col_start);
    if (style == SUGGEST_ANY) {
        ok = ok && put(out, cap, &used, " = any($1", 9);
        if (cast)
            ok = ok && put(out, cap, &used, cast_text, cast) && put(out, cap, &used, "[]", 2);
        ok = ok && put(out, cap, &used, ")", 1);
    } else {
        ok = ok && put(out, cap, &used, " in (", 5);
        for (int i = 1; ok && i <= 3; i++) {
            char num[8];
            int n = snprintf(num, sizeof num, "%s$%d", i > 1 ? ", " : "", i);
            ok = put(out, cap, &used, num, (size_t)n) &&
                 (!cast || put(out, cap, &used, cast_text, cast));
        }
        ok = ok && put(out, cap, &used, ", ...)", 6);
    }
    size_t rest = key->end + cast;
    ok = ok && put(out, cap, &used, sql + rest, body_end - rest);
    if (!ok)
        out[0] = '\0';
    return ok;
}
