"""Covers: sidecar.cli.inputs.

What the CLI reads from its arguments: JSON inline or ``@file``, ``--var`` over
``--vars-file``, and refusals that say what to write instead.
"""

from __future__ import annotations

import json

import pytest

from sidecar.cli import inputs


def test_json_inline_or_from_a_file(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"rows": [1, 2]}))
    assert inputs.value("[1, 2]", "--arg") == [1, 2]
    assert inputs.value(f"@{path}", "--arg") == {"rows": [1, 2]}


def test_vars_file_first_then_each_var_on_top(tmp_path):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({"a": 1, "b": 2}))
    assert inputs.variables(["b=3", "c=\"x\""], [str(path)]) == {"a": 1, "b": 3, "c": "x"}


@pytest.mark.parametrize("items, files_content, fragment", [
    (None, [1, 2], "JSON object"),
    (None, {"not-an-identifier": 1}, "identifiers"),
])
def test_a_vars_file_that_is_no_object_of_names_is_refused(tmp_path, items, files_content,
                                                          fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(files_content))
    with pytest.raises(inputs.UsageError, match=fragment):
        inputs.variables(items, [str(path)])


def test_bad_json_is_refused_naming_the_option():
    with pytest.raises(inputs.UsageError, match="--arg"):
        inputs.value("{not json", "--arg")
