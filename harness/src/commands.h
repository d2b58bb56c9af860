/* commands — the subcommands of `harness`. Each takes its own argv (argv[0] is the
 * command name) and returns the process exit status. */
#ifndef HARNESS_COMMANDS_H
#define HARNESS_COMMANDS_H

int cmd_serve(int argc, char **argv);  /* serve_cmd.c */
int cmd_check(int argc, char **argv);  /* check_cmd.c */
int cmd_keys(int argc, char **argv);   /* keys_cmd.c */
int cmd_regex(int argc, char **argv);  /* regex_cmd.c */
int cmd_schema(int argc, char **argv); /* schema_cmd.c */

#endif
