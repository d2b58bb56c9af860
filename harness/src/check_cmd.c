/* check_cmd — `harness check`: placeholder until the scenario loader lands. */
#include <stdio.h>
#include "commands.h"

int cmd_check(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("harness check: the scenario loader is not built yet\n", stderr);
    return 2;
}
