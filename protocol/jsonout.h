/* protocol/jsonout — writing JSON strings safely, and the UTF-8 check every text writer uses.
 *
 * Owns: escaping arbitrary bytes (SQL text, tag values, server strings) into the body of a JSON
 * string. Bytes that are not valid UTF-8 become \u00XX (their Latin-1 code point), so the
 * output is always valid JSON and nothing is silently dropped; control characters (C0, DEL and
 * C1) are escaped too, so no terminal showing the JSON meets a raw one. Pure; used by every JSON
 * writer (query log, `pgtally fingerprint`, the report). */
#ifndef PGTALLY_PROTOCOL_JSONOUT_H
#define PGTALLY_PROTOCOL_JSONOUT_H

#include <stddef.h>

/* Length of the valid UTF-8 character at s (1..4 bytes, never past len), or 0 when the bytes
 * there are not valid UTF-8 (bad lead byte, truncated, overlong, surrogate, > U+10FFFF). */
size_t utf8_char_len(const unsigned char *s, size_t len);

/* Worst-case output size for `len` input bytes (plus the NUL). */
#define JSON_ESCAPED_MAX(len) (6 * (len) + 1)

/* Writes the escaped body (no surrounding quotes) and a NUL. Returns bytes written excluding
 * the NUL, or 0 when cap < JSON_ESCAPED_MAX(len) and the text did not fit. Bytes after the
 * NUL, up to out + cap, may be overwritten (whole blocks are stored ahead): pass the room
 * that is really free. */
size_t json_escape(char *out, size_t cap, const char *s, size_t len);

#endif
