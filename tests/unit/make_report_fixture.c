/* tests/unit/make_report_fixture — writes the report_fixture.h run into a file, for
 * test_report_cli.py. Usage: make_report_fixture FILE [DROPPED_REQUESTS] */
#include <stdio.h>
#include <stdlib.h>

#include "report_fixture.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: make_report_fixture FILE [DROPPED_REQUESTS]\n");
        return 2;
    }
    char err[512];
    if (!report_fixture_write(argv[1], argc == 3 ? strtoull(argv[2], NULL, 10) : 0, err,
                              sizeof err)) {
        fprintf(stderr, "make_report_fixture: %s\n", err);
        return 1;
    }
    return 0;
}
