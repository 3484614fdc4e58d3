"""Covers: sidecar.cli.commands, sidecar.cli.inputs.

`py3sidecar exec`/`call` with code and values from files and stdin (values past the OS
argument limit: one argv string is capped at 128 KiB)."""

import hashlib
import json
import subprocess
import sys


def cli(sidecar, *args, stdin=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "sidecar", *args, "--endpoint",
                           sidecar.endpoint], capture_output=True, text=True,
                          env=dict(sidecar.env), input=stdin, timeout=timeout)


def test_exec_file_and_vars_file_with_a_5_mib_value(sidecar, tmp_path):
    big = "x" * (5 << 20)
    (tmp_path / "vars.json").write_text(json.dumps({"blob": big, "n": 3}))
    (tmp_path / "big.py").write_text("import hashlib\n"
                                     "[len(blob), n, hashlib.sha256(blob.encode()).hexdigest()]\n")
    result = cli(sidecar, "exec", "--file", str(tmp_path / "big.py"),
                 "--vars-file", str(tmp_path / "vars.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [5 << 20, 3, hashlib.sha256(big.encode()).hexdigest()]


def test_var_from_file_overrides_vars_file_and_code_from_stdin(sidecar, tmp_path):
    (tmp_path / "vars.json").write_text('{"a": 1, "b": 2}')
    (tmp_path / "b.json").write_text('[10, 20]')
    result = cli(sidecar, "exec", "-", "--vars-file", str(tmp_path / "vars.json"),
                 "--var", f"b=@{tmp_path / 'b.json'}", stdin="x = a\n[x, b]\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1, [10, 20]]


def test_call_arguments_from_files(sidecar, tmp_path):
    (tmp_path / "args.json").write_text("[[1, 2, 3, 4]]")
    result = cli(sidecar, "call", "statistics:mean", "--args-file", str(tmp_path / "args.json"))
    assert (result.returncode, result.stdout.strip()) == (0, "2.5"), result.stderr
    (tmp_path / "one.json").write_text('"a-b-c"')
    (tmp_path / "kw.json").write_text('{"sep": "-"}')
    result = cli(sidecar, "call", "builtins:str.split", f"@{tmp_path / 'one.json'}",
                 "--kwargs-file", str(tmp_path / "kw.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["a", "b", "c"]


def test_file_errors_name_the_flag_and_the_file(sidecar, tmp_path):
    missing = tmp_path / "nope.json"
    result = cli(sidecar, "exec", "x", "--var", f"x=@{missing}")
    assert result.returncode == 2 and "--var x" in result.stderr and "nope.json" in result.stderr
    (tmp_path / "bad.json").write_text("{oops")
    result = cli(sidecar, "exec", "x", "--vars-file", str(tmp_path / "bad.json"))
    assert result.returncode == 2 and "--vars-file" in result.stderr
    assert "not valid JSON" in result.stderr
    (tmp_path / "list.json").write_text("[1]")
    result = cli(sidecar, "exec", "x", "--vars-file", str(tmp_path / "list.json"))
    assert result.returncode == 2 and "JSON object" in result.stderr
    result = cli(sidecar, "exec", "1", "--file", str(tmp_path / "list.json"))
    assert result.returncode == 2 and "one of them" in result.stderr
    result = cli(sidecar, "exec")
    assert result.returncode == 2 and "exec needs the code" in result.stderr
    # the sidecar never saw any of it and still serves
    assert cli(sidecar, "exec", "1+1").stdout.strip() == "2"
