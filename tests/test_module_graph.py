"""scripts/module-graph (make cycles): the module graph of harness/src, failing on a cycle."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "module-graph")


def run(src):
    return subprocess.run(["/usr/bin/python3", SCRIPT, str(src)], capture_output=True,
                          text=True)


def write(d, files):
    for name, text in files.items():
        (d / name).write_text(text)


def test_a_cycle_fails_and_is_named(tmp_path):
    write(tmp_path, {
        "a.h": "void a_run(void);\n",
        "a.c": '#include "a.h"\n#include "b.h"\nvoid a_run(void)\n{\n    b_run();\n}\n',
        "b.h": "void b_run(void);\n",
        "b.c": '#include "b.h"\n#include "a.h"\nvoid b_run(void)\n{\n    a_run();\n}\n',
        "c.h": "void c_run(void);\n",
        "c.c": '#include "c.h"\n#include "a.h"\nvoid c_run(void)\n{\n    a_run();\n}\n',
    })
    r = run(tmp_path)
    assert r.returncode == 1
    assert "CYCLE among a, b: a -> b -> a" in r.stderr
    assert "c " not in r.stderr.split("CYCLE among")[1]


def test_a_header_of_another_modules_functions_counts_for_them(tmp_path):
    # life.h has no life.c: its functions live in server.c, so respond -> server, and
    # server -> respond closes a cycle (the shape exchange.h once had)
    write(tmp_path, {
        "life.h": "void life_suspend(void);\nvoid respond_go(void);\n",
        "server.c": '#include "life.h"\nvoid life_suspend(void)\n{\n    respond_go();\n}\n',
        "respond.c": '#include "life.h"\nvoid respond_go(void)\n{\n    life_suspend();\n}\n',
    })
    r = run(tmp_path)
    assert r.returncode == 1 and "CYCLE among respond, server" in r.stderr


def test_a_shared_declaration_header_links_only_what_is_called(tmp_path):
    write(tmp_path, {
        "commands.h": "int cmd_a(void);\nint cmd_b(void);\n",
        "a_cmd.c": '#include "commands.h"\nint cmd_a(void)\n{\n    return 0;\n}\n',
        "b_cmd.c": '#include "commands.h"\nint cmd_b(void)\n{\n    return 0;\n}\n',
        "main.c": '#include "commands.h"\nint main(void)\n{\n    return cmd_a() + cmd_b();\n}\n',
    })
    r = run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "main             -> a_cmd b_cmd" in r.stdout


def test_the_server_modules_have_no_cycle():
    r = run(os.path.join(ROOT, "harness", "src"))
    server = {"server", "exchange", "respond", "plan", "deliver", "control", "ws_upgrade"}
    for line in r.stderr.splitlines():
        if line.startswith("CYCLE among"):
            members = set(line.split(":")[0][len("CYCLE among "):].split(", "))
            assert not members & server, line
