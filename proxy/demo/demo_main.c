/* proxy/demo/demo_main — the `pgtally-demo` program behind `pgtally demo`.
 *
 * Owns nothing but the entry point: the demo lives in its own binary so that libpq, which its
 * workload needs, is never loaded by the proxy itself (see proxy/meson.build). */
#include "proxy/demo/cmd_demo.h"

int main(int argc, char **argv)
{
    return cmd_demo_main(argc, argv);
}
