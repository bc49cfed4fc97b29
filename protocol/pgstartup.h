/* protocol/pgstartup — startup-phase rules pgtally must apply exactly as PostgreSQL does.
 *
 * Owns: PostgreSQL's boolean spelling (the server's parse_bool), the meaning of a
 * StartupMessage's `replication` parameter, and the rewrite of an AuthenticationSASL
 * mechanism list (removing one mechanism). Pure: no sockets, no allocation, no globals. */
#ifndef PGTALLY_PROTOCOL_PGSTARTUP_H
#define PGTALLY_PROTOCOL_PGSTARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pgwire.h"

/* Parses value[0..len) as the server does for booleans: case-insensitive "true", "false",
 * "yes", "no" and any non-empty prefix of them, "on" and "off" with at least two letters
 * ("of" is off, "o" is nothing), and exactly "1" or "0". Returns false for anything else. */
bool pgstartup_parse_bool(const char *value, size_t len, bool *out);

typedef enum PgstartupReplication {
    PGSTARTUP_REPLICATION_OFF,      /* absent, or a false boolean: a normal connection */
    PGSTARTUP_REPLICATION_PHYSICAL, /* a true boolean: a physical-replication walsender */
    PGSTARTUP_REPLICATION_DATABASE, /* exactly "database": a logical-replication walsender */
    PGSTARTUP_REPLICATION_INVALID,  /* anything else: the server refuses the connection */
} PgstartupReplication;

/* What the server makes of a complete StartupMessage's `replication` parameter. The last
 * occurrence wins, as in the server. For INVALID, *bad_value (may be NULL) gets the value. */
PgstartupReplication pgstartup_replication(const uint8_t *packet, size_t len, PgwStr *bad_value);

typedef enum PgstartupSasl {
    PGSTARTUP_SASL_NOT_SASL,  /* not an AuthenticationSASL message: nothing to do */
    PGSTARTUP_SASL_REWRITTEN, /* out holds the message without the mechanism */
    PGSTARTUP_SASL_MALFORMED, /* the mechanism list is not terminated, or bytes follow it */
} PgstartupSasl;

/* msg[0..len) is one complete backend message (type byte, length, body). When it is
 * AuthenticationSASL, writes it to out without `mechanism` and sets *out_len. The result is
 * never longer than the input: out needs room for len bytes and may be msg itself. */
PgstartupSasl pgstartup_sasl_remove(const uint8_t *msg, size_t len, const char *mechanism,
                                    uint8_t *out, size_t *out_len);

#endif
