/* serve_cmd — `harness serve`: placeholder until the server runtime lands. */
#include <stdio.h>
#include "commands.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("harness serve: the server runtime is not built yet\n", stderr);
    return 2;
}
