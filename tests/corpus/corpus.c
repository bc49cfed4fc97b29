/* tests/corpus/corpus.c — corpus loading and client-marker substitution (see corpus.h). */
#include "tests/corpus/corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool corpus_load(Corpus *corpus, const char *path)
{
    memset(corpus, 0, sizeof(*corpus));
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return false;
    }
    long size = ftell(f);
    rewind(f);
    if (size < 0) {
        fclose(f);
        return false;
    }
    corpus->data = malloc((size_t)size + 1);
    if (!corpus->data)
        abort();
    if (fread(corpus->data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        corpus_free(corpus);
        return false;
    }
    fclose(f);
    corpus->data[size] = 0; /* a last statement without its NUL still ends */
    corpus->data_len = (size_t)size;
    size_t cap = 1;
    for (size_t i = 0; i < corpus->data_len; i++)
        cap += corpus->data[i] == 0;
    corpus->entries = calloc(cap, sizeof(*corpus->entries));
    if (!corpus->entries)
        abort();
    for (size_t i = 0; i < corpus->data_len;) {
        size_t len = strlen(corpus->data + i);
        corpus->entries[corpus->count].sql = corpus->data + i;
        corpus->entries[corpus->count].len = len;
        corpus->count++;
        i += len + 1;
    }
    return true;
}

void corpus_free(Corpus *corpus)
{
    free(corpus->data);
    free(corpus->entries);
    memset(corpus, 0, sizeof(*corpus));
}

static bool is_word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_word_char(unsigned char c)
{
    return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

size_t corpus_opaque_len(const char *s, size_t n, size_t i)
{
    size_t j;
    char c = s[i];
    bool word_before = i > 0 && is_word_char((unsigned char)s[i - 1]);
    if (c == '-' && i + 1 < n && s[i + 1] == '-') {
        for (j = i; j < n && s[j] != '\n' && s[j] != '\r'; j++)
            ;
        return j - i;
    }
    if (c == '/' && i + 1 < n && s[i + 1] == '*') {
        int depth = 0;
        for (j = i; j < n; j++) {
            if (s[j] == '/' && j + 1 < n && s[j + 1] == '*') {
                depth++;
                j++;
            } else if (s[j] == '*' && j + 1 < n && s[j + 1] == '/') {
                j++;
                if (--depth == 0)
                    return j + 1 - i;
            }
        }
        return n - i;
    }
    if (c == '\'' || c == '"' ||
        (!word_before && strchr("eEbBxXnN", c) && c && i + 1 < n && s[i + 1] == '\'')) {
        bool escapes = c == 'e' || c == 'E';
        char q = c == '"' ? '"' : '\'';
        j = (c == '\'' || c == '"') ? i + 1 : i + 2;
        for (; j < n; j++) {
            if (escapes && s[j] == '\\') {
                j++;
                continue;
            }
            if (s[j] == q) {
                if (j + 1 < n && s[j + 1] == q) {
                    j++;
                    continue;
                }
                return j + 1 - i;
            }
        }
        return n - i;
    }
    if (c == '$' && !word_before && i + 1 < n &&
        (s[i + 1] == '$' || is_word_start((unsigned char)s[i + 1]))) {
        j = i + 1;
        while (j < n && s[j] != '$' && is_word_char((unsigned char)s[j]))
            j++;
        if (j < n && s[j] == '$') {
            size_t tag_len = j + 1 - i;
            for (size_t k = j + 1; k + tag_len <= n; k++)
                if (memcmp(s + k, s + i, tag_len) == 0)
                    return k + tag_len - i;
            return n - i;
        }
    }
    return 0;
}

static const char *const operand_words[] = {"and",    "or",    "then",  "else",   "when", "between",
                                            "first",  "next",  "limit", "offset", "in",   "values",
                                            "select", "where", "not",   "like",   "set",  NULL};

char *corpus_server_form(const char *s, size_t n, bool *had_markers)
{
    char *out = malloc(n * 4 + 16);
    if (!out)
        abort();
    size_t o = 0, i = 0;
    int k = 0;
    char prev = '('; /* last significant char; statement start is operand position */
    char prev_word[16] = "";
    *had_markers = false;
    while (i < n) {
        size_t op = corpus_opaque_len(s, n, i);
        if (op) {
            memcpy(out + o, s + i, op);
            o += op;
            i += op;
            prev = 'x';
            prev_word[0] = 0;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        bool operand = strchr("=<>(,", prev) != NULL;
        for (int w = 0; operand_words[w] && !operand; w++)
            operand = strcmp(prev_word, operand_words[w]) == 0;
        size_t marker = 0;
        if (operand && c == '?')
            marker = 1;
        else if (operand && c == '%' && i + 1 < n && s[i + 1] == 's' &&
                 (i + 2 >= n || !is_word_char((unsigned char)s[i + 2])))
            marker = 2;
        else if (operand && c == '%' && i + 1 < n && s[i + 1] == '(') {
            const char *close = memchr(s + i, ')', n - i);
            if (close && close + 1 < s + n && close[1] == 's')
                marker = (size_t)(close + 2 - (s + i));
        }
        if (marker) {
            o += (size_t)sprintf(out + o, "$%d", ++k);
            i += marker;
            prev = 'x';
            prev_word[0] = 0;
            *had_markers = true;
            continue;
        }
        if (is_word_start(c)) {
            size_t start = i;
            while (i < n && is_word_char((unsigned char)s[i]))
                i++;
            size_t len = i - start;
            memcpy(out + o, s + start, len);
            o += len;
            if (len < sizeof(prev_word)) {
                for (size_t w = 0; w < len; w++)
                    prev_word[w] = (char)(s[start + w] | 0x20);
                prev_word[len] = 0;
            } else {
                prev_word[0] = 0;
            }
            prev = 'x';
            continue;
        }
        out[o++] = (char)c;
        i++;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') {
            prev = (char)c;
            prev_word[0] = 0;
        }
    }
    out[o] = 0;
    return out;
}
