/* proxy/cmd_fingerprint — `pgtally fingerprint`. Stub: being written. */
#include "proxy/cmd_fingerprint.h"

#include <stdio.h>

int cmd_fingerprint_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "pgtally fingerprint: not implemented yet\n");
    return 2;
}
