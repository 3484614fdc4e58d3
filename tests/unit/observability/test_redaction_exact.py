"""Covers: sidecar.observability.redaction.

The exact text each redaction rule produces (docs/mutation.md asked for it): URLs of every
shape, the secret pieces of a channel URL, a config error's quoted value, the log filter's
record, an alert's fields and the list of known secrets."""

from __future__ import annotations

import dataclasses
import logging
import sys

import pytest

from sidecar.observability import redaction as rd
from sidecar.observability.redaction import (
    REDACTED,
    RedactingFilter,
    channel_name,
    channel_shown,
    forget_secrets,
    redact_notification,
    redact_secrets,
    redact_text,
    redact_values,
    remember_config_secrets,
    remember_secrets,
    secrets_of_url,
    shown_value,
)

R = REDACTED


@pytest.fixture(autouse=True)
def no_known_secrets():
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(("text", "shown"), [
    ("mailto://, json://", "mailto://, json://"),
    ("pbul://abcdefTOKEN", f"pbul://{R}"),
    ("Tgram://bot123/chat", f"Tgram://{R}"),
    ("http://user:pw@host/x", f"http://user:{R}@host/x"),
    ("http://user@host/x", "http://user@host/x"),
    ("https://u:p@10.0.0.5:8000/a?b=1", f"https://u:{R}@10.0.0.5:8000/a?b=1"),
    ("http://host?key=abc&x=1", f"http://host?key={R}&x=1"),
    ("http://host?token=zz&sig=&code=9", f"http://host?token={R}&sig=&code={R}"),
    ("https://hooks.slack.com/services/T0/B0/XX", f"https://hooks.slack.com/{R}"),
    ("https://user:p@discord.com:443/api/webhooks/1/abc",
     f"https://user:{R}@discord.com:443/{R}"),
    ("https://[::1]:80/x", "https://[::1]:80/x"),
    ("https://hooks.slack.com", "https://hooks.slack.com"),
    ("http://host/p?Api-Key=s3&name=v#frag", f"http://host/p?Api-Key={R}&name=v#frag"),
    ("tcp://a@b:c@host/p", f"tcp://a@b:{R}@host/p"),
    ("HTTP://u:p@h/x?access_key=1", f"HTTP://u:{R}@h/x?access_key={R}"),
    ("http://h/a/b?auth=x&keyx=y", f"http://h/a/b?auth={R}&keyx=y"),
    ("https://foo.hooks.slack.com/x", f"https://foo.hooks.slack.com/{R}"),
    ("https://notslack.com/x", "https://notslack.com/x"),
    ("http://a:b:c@h", f"http://a:{R}@h"),
    ("http://host:8000", "http://host:8000"),
    ("http://host/a/b?c=d", "http://host/a/b?c=d"),
    ("http://host/a?x=1?key=2", "http://host/a?x=1?key=2"),
    ("http://h?x=1/y", "http://h?x=1/y"),
    ("http://u:p@h?key=v", f"http://u:{R}@h?key={R}"),
    ("http://u:p@hooks.slack.com/a", f"http://u:{R}@hooks.slack.com/{R}"),
    ("https://api.telegram.org:443/bot1:AA/send", f"https://api.telegram.org:443/{R}"),
    ("see 'http://u:pw@h/x' and \"tls://a:b@c\"", f"see 'http://u:{R}@h/x' and \"tls://a:{R}@c\""),
])
def test_url_shapes_are_shown_exactly(text, shown):
    assert redact_text(text) == shown


@pytest.mark.parametrize(("url", "secrets"), [
    ("", set()),
    ("plain", {"plain"}),
    ("tcp://127.0.0.1:5555", {"127.0.0.1:5555", "tcp://127.0.0.1:5555"}),
    ("http://user:p%40ss@host/x?q=1#f",
     {"http://user:p%40ss@host/x?q=1#f", "p%40ss", "p@ss", "user:p%40ss@host/x"}),
    ("http://u:pw@h/x#frag?no", {"http://u:pw@h/x#frag?no", "pw", "u:pw@h/x"}),
    ("pbul://abcdefghijkl", {"abcdefghijkl", "pbul://abcdefghijkl"}),
    ("pbul://abcdefg", {"abcdefg", "pbul://abcdefg"}),
    ("tgram://123456789:AAbbccddeeff/987654321",
     {"123456789", "123456789:AAbbccddeeff", "123456789:AAbbccddeeff/987654321", "987654321",
      "AAbbccddeeff", "tgram://123456789:AAbbccddeeff/987654321"}),
    ("json://localhost:8000/path/longpiece12",
     {"json://localhost:8000/path/longpiece12", "localhost:8000/path/longpiece12",
      "longpiece12"}),
    ("json://[::1]:8000/abcdefgh", {"json://[::1]:8000/abcdefgh", "[::1]:8000/abcdefgh",
                                     "abcdefgh"}),
    ("http://10.0.0.5:8000/shortp/abcdefghij",
     {"10.0.0.5:8000/shortp/abcdefghij", "abcdefghij", "http://10.0.0.5:8000/shortp/abcdefghij"}),
    ("x http://u:pw@h", {"pw", "u:pw@h", "x http://u:pw@h"}),
    ("http://user:longpassword@longhostname/abcdefghi@jklmnopqr",
     {"abcdefghi@jklmnopqr", "http://user:longpassword@longhostname/abcdefghi@jklmnopqr",
      "longpassword", "user:longpassword@longhostname/abcdefghi@jklmnopqr"}),
    ("mail://longusername@longhostname/", {"mail://longusername@longhostname/",
                                            "longusername@longhostname/", "longusername",
                                            "longhostname"}),
    ("http://u:@h/abcdefghij", {"http://u:@h/abcdefghij", "u:@h/abcdefghij", "abcdefghij"}),
])
def test_the_secret_pieces_of_a_url(url, secrets):
    assert secrets_of_url(url) == secrets


@pytest.mark.parametrize(("location", "value", "shown"), [
    (("python3", "alerts", "channels", 0, "url"), "pbul://abc", f"'pbul://{R}'"),
    (("a", "url"), 5, "5"),
    (("a", "url"), "no scheme", f"'{R}'"),
    (("a", "env", "X"), "v", R),
    (("env",), "v", R),
    (("a", "api-key"), "v", R),
    ((0, "password", 1), 5, R),
    (("a", "b"), "http://u:pw@h", f"'http://u:{R}@h'"),
    (("a", "url", "b"), "http://u:pw@h", f"'http://u:{R}@h'"),
    ((), "x", "'x'"),
    (("token-file",), "x", "'x'"),
    (("environment",), "x", "'x'"),
])
def test_a_config_error_quotes_a_value_so(location, value, shown):
    assert shown_value(location, value) == shown


def test_a_remembered_secret_is_blanked_in_a_quoted_value():
    remember_secrets(["s3cr3tvalue"])
    assert shown_value(("a",), "x s3cr3tvalue y") == f"'x {R} y'"


def test_channel_names_and_shown_urls():
    assert channel_shown("") == R
    assert channel_shown(None) == R
    assert channel_shown("  JSON://x") == f"json://{R}"
    assert channel_shown("not a url") == R
    assert channel_name("", 3) == "url#3"
    assert channel_name(None, 0) == "url#0"
    assert channel_name("Mailto://x", 1) == "mailto#1"
    assert channel_name("nourl", 2) == "url#2"


def test_redact_values_keeps_keys_and_non_strings():
    tree = {"http://u:pw@h": ("http://a:b@c", [1, None, {"k": "tls://x:y@z"}]), "n": 2.5}
    assert redact_values(tree) == {"http://u:pw@h": [f"http://a:{R}@c",
                                                     [1, None, {"k": f"tls://x:{R}@z"}]],
                                   "n": 2.5}
    assert redact_values(7) == 7


def test_a_config_tree_redacted_exactly():
    tree = {"env": {"A": "", "B": None, "C": "x", "D": "http://u:p@h", "E": 5},
            "env-not-secret": ["D"], "password": "", "secret": None, "api_key": "k",
            "url": "Json://x", "l": ("a", {"u": "http://a:b@c"}), "n": 5, "o": {"url": 3},
            "token-path": "/run/tok"}
    assert redact_secrets(tree) == {
        "env": {"A": "", "B": None, "C": R, "D": f"http://u:{R}@h", "E": R},
        "env-not-secret": ["D"], "password": "", "secret": None, "api_key": R,
        "url": f"json://{R}", "l": ["a", {"u": f"http://a:{R}@c"}], "n": 5, "o": {"url": 3},
        "token-path": "/run/tok"}


def test_env_not_secret_is_collected_from_any_depth():
    tree = {"a": [{"env": {"X": "vx", "Y": "vy", "Z": "vz"},
                   "env-not-secret": ["X", 1]}],
            "env-not-secret": "not a list",
            "b": ({"env-not-secret": ("Y",)},)}
    assert redact_secrets(tree)["a"][0]["env"] == {"X": "vx", "Y": "vy", "Z": R}
    assert redact_secrets({"env-not-secret": "X", "env": {"X": "v"}})["env"] == {"X": R}


def test_the_secrets_remembered_from_a_config():
    tree = {"python3": {
        "alerts": {"channels": [{"url": "pbul://abcdefghijkl"}]},
        "worker": {"env": {"A": "tgram://123456789:AAbbccddeeff/x", "B": "shown-value-1",
                           "C": 5},
                   "env-not-secret": ["B"]},
        "pools": ({"env": {"Q": "qqqqqqqqqq"}},),
        "bridge": {"token": "tokenvalue1", "token-file": "/x/y/zzzzzzzz", "n": 3,
                   "password": 123456789},
        "other": {"url": 12345678},
        "db": "see http://me:hunter22@h/x and http://x:yyyyyy@z and http://nouser@h/abcdefghij"}}
    remember_config_secrets(tree)
    assert set(rd._known) == {
        "123456789", "123456789:AAbbccddeeff", "123456789:AAbbccddeeff/x", "AAbbccddeeff",
        "abcdefghijkl", "hunter22", "pbul://abcdefghijkl", "tgram://123456789:AAbbccddeeff/x",
        "tokenvalue1", "yyyyyy", "qqqqqqqqqq"}


def test_known_secrets_from_six_characters_longest_first():
    remember_secrets(["12345", "123456", None, 1234567, "abcdef-long", "abcdef"])
    assert set(rd._known) == {"123456", "abcdef-long", "abcdef"}
    assert rd._known_sorted[0] == "abcdef-long"
    assert redact_text("x abcdef-long 12345 123456") == f"x {R} 12345 {R}"
    remember_secrets(iter(["zzzzzzzz"]))
    assert set(rd._known) == {"123456", "abcdef-long", "abcdef", "zzzzzzzz"}
    assert rd._known_sorted == ("abcdef-long", "zzzzzzzz", "123456", "abcdef") or \
        rd._known_sorted == ("abcdef-long", "zzzzzzzz", "abcdef", "123456")


def record(msg, args=(), exc_info=None, stack_info=None):
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info,
                             sinfo=stack_info)


def test_the_log_filter_rewrites_a_record_with_args():
    remember_secrets(["tokenvalue1"])
    rec = record("sent %s to %s", ("tokenvalue1", "http://u:pw@h"))
    assert RedactingFilter().filter(rec) is True
    assert rec.msg == f"sent {R} to http://u:{R}@h" and rec.args is None
    assert rec.getMessage() == f"sent {R} to http://u:{R}@h"


def test_the_log_filter_folds_args_even_when_nothing_is_secret():
    rec = record("n=%d", (5,))
    assert RedactingFilter().filter(rec) is True
    assert rec.msg == "n=5" and rec.args is None


def test_the_log_filter_leaves_a_plain_record_alone():
    rec = record("plain text")
    assert RedactingFilter().filter(rec) is True
    assert rec.msg == "plain text" and rec.args == ()
    assert rec.exc_text is None and rec.stack_info is None


def test_a_bad_format_string_shows_no_argument():
    rec = record("x %s %s tokenvalue1", ("only-one-arg-secret",))
    remember_secrets(["tokenvalue1"])
    assert RedactingFilter().filter(rec) is True
    assert rec.msg == f"x %s %s {R}" and rec.args is None


def test_the_log_filter_redacts_traceback_and_stack():
    remember_secrets(["tokenvalue1"])
    try:
        raise RuntimeError("failed with tokenvalue1")
    except RuntimeError:
        exc_info = sys.exc_info()
    rec = record("m", exc_info=exc_info, stack_info="Stack tokenvalue1")
    RedactingFilter().filter(rec)
    assert "tokenvalue1" not in rec.exc_text and f"RuntimeError: failed with {R}" in rec.exc_text
    assert rec.exc_text.startswith("Traceback (most recent call last)")
    assert rec.stack_info == f"Stack {R}"
    pre = record("m", exc_info=exc_info)
    pre.exc_text = "given tokenvalue1"
    RedactingFilter().filter(pre)
    assert pre.exc_text == f"given {R}"


def test_install_log_redaction_adds_one_filter_per_handler():
    root = logging.getLogger()
    handlers = [logging.StreamHandler(), logging.StreamHandler()]
    for handler in handlers:
        root.addHandler(handler)
    try:
        rd.install_log_redaction()
        rd.install_log_redaction()
        for handler in handlers:
            assert handler.filters.count(rd._FILTER) == 1
    finally:
        for handler in handlers:
            root.removeHandler(handler)


@dataclasses.dataclass
class Note:
    title: str
    body: str
    firing: list
    resolved: list
    level: str = "x http://u:pw@h"


def test_an_alert_notification_redacted_field_by_field():
    note = Note("t http://u:pw@h", "b tls://a:b@c", [{"k": "http://x:y@z"}],
                ["http://q:r@s"])
    shown = redact_notification(note)
    assert shown == Note(f"t http://u:{R}@h", f"b tls://a:{R}@c", [{"k": f"http://x:{R}@z"}],
                         [f"http://q:{R}@s"], "x http://u:pw@h")
