/* protocol/pctdecode — percent escapes (`%XX`), decoded one way for every caller.
 *
 * Owns: decoding `%XX` (hex digits of either case) in a byte span, for sqlcommenter tag
 * values (protocol/sqltags) and postgres:// URLs (proxy/upstream). A `%` that is not followed
 * by two hex digits is kept as written, as libpq and sqlcommenter's readers keep it. Pure:
 * no allocation, no NUL added, bounded by the caller's capacity. */
#ifndef PGTALLY_PROTOCOL_PCTDECODE_H
#define PGTALLY_PROTOCOL_PCTDECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `%%` reads as `%` first, which may itself start an escape (`%%3A` is `:`): Python's
 * sqlcommenter doubles `%` for drivers that interpolate. */
#define PCT_DOUBLED 1u

/* pct_decode's answer when the decoded bytes do not fit. */
#define PCT_TOO_LONG SIZE_MAX

/* The value of one hex digit, or -1. */
int pct_hex_value(unsigned char c);

/* Decodes src[0..len) into dst, which has room for cap bytes (no NUL is added). dst may be
 * src, since decoding only shrinks. Returns the decoded length, or PCT_TOO_LONG when it does
 * not fit (dst then holds the cap bytes that did). */
size_t pct_decode(char *dst, size_t cap, const char *src, size_t len, unsigned flags);

/* The same into a C string: cap counts the NUL. False when it does not fit. */
bool pct_decode_str(char *dst, size_t cap, const char *src, size_t len, unsigned flags);

#endif
