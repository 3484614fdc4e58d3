"""Covers: sidecar.observability.redaction, sidecar.alerts.channels, sidecar.config.model.

Redaction by key, by value, of env maps, channel names and the log filter; a URL apprise
cannot use is named without its secret; a config error never quotes a secret.

Every case asserts the secret's text is absent from ``json.dumps`` of what is shown, so a rule
that is dropped fails here."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import sys

import pytest

from sidecar.alerts.policy import Level, Notification
from sidecar.config import model as config
from sidecar.observability import redaction as rd
from sidecar.observability.redaction import (
    REDACTED,
    RedactingFilter,
    channel_name,
    channel_shown,
    forget_secrets,
    is_secret_key,
    redact_notification,
    redact_secrets,
    redact_text,
    redact_values,
    remember_config_secrets,
    remember_secrets,
    secrets_of_url,
    shown_value,
)


@pytest.fixture(autouse=True)
def no_known_secrets():
    forget_secrets()
    yield
    forget_secrets()


def shown(tree):
    return json.dumps(redact_secrets(tree))


# ------------------------------------------------------------------ by key
@pytest.mark.parametrize("key", [
    "token", "bridge-token", "password", "DB_PASSWORD", "passwd", "smtp-passwd", "secret",
    "client_secret", "credential", "aws-credentials", "api-key", "api_key", "apikey",
    "private-key", "private_key", "ssh-private-key", "Token", "PASSWORD", "PASSWD", "CREDENTIAL",
    "privatekey", "PRIVATE-KEY"])
def test_every_secret_key_pattern_hides_its_value(key) -> None:
    assert is_secret_key(key)
    tree = {"python3": {"section": {key: "s3cr3t-value"}}}
    out = redact_secrets(tree)
    assert out["python3"]["section"][key] == REDACTED
    assert "s3cr3t-value" not in json.dumps(out)


@pytest.mark.parametrize("key", ["host", "levels", "name", "endpoint", "user", "keyboard",
                                 "private", "pass", "credit", "api", "tok", 3, None])
def test_an_ordinary_key_is_shown(key) -> None:
    assert not is_secret_key(key)
    assert redact_secrets({key: "plain-value"}) == {key: "plain-value"}


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_secret_stays_empty_so_unset_can_be_seen(empty) -> None:
    assert redact_secrets({"token": empty, "password": empty}) == {"token": empty,
                                                                  "password": empty}
    # and anything else under a secret key is hidden, whatever its type
    assert redact_secrets({"token": 0, "secret": ["a"]}) == {"token": REDACTED,
                                                             "secret": REDACTED}


@pytest.mark.parametrize("falsy", [False, [], {}])
def test_a_falsy_but_set_secret_is_still_redacted(falsy) -> None:
    assert redact_secrets({"token": falsy}) == {"token": REDACTED}


@pytest.mark.parametrize("key", ["token-file", "token_file", "private-key-file", "token-path",
                                 "password_path", "TOKEN-FILE", "api-key-Path"])
def test_a_file_or_path_key_names_where_the_secret_lives_and_is_shown(key) -> None:
    assert not is_secret_key(key)
    assert redact_secrets({key: "/etc/py3sidecar/token"}) == {key: "/etc/py3sidecar/token"}


@pytest.mark.parametrize("key", ["profile-token", "filed-password", "xpath-secret",
                                 "token-filer", "secret-paths", "pathtoken", "filetoken",
                                 "token-filename", "token-file-contents", "file-password",
                                 "path_credential", "tokenfile"])
def test_only_a_file_or_path_suffix_is_a_location(key) -> None:
    assert is_secret_key(key)
    # "file" / "path" elsewhere in the name does not make the value a location
    out = redact_secrets({key: "hunter2-value"})
    assert out == {key: REDACTED}


# ------------------------------------------------------------------ by value, anywhere
URL_SECRETS = [
    ("json://alertuser:alertpass@127.0.0.1:8080/alerts", "alertpass"),
    ("mailto://ops:mailpass99@smtp.plant.test?to=a@b.c", "mailpass99"),
    ("postgres://app:dbpass123@db/x", "dbpass123"),
    ("redis://:onlypass42@cache:6379/0", "onlypass42"),
    ("https://user:httppass1@example.com/path", "httppass1"),
    ("http://u:p%40ss-enc@h/", "p%40ss-enc"),
    ("tcp://svc:tcppass77@10.0.0.5:5557", "tcppass77"),
    ("https://example.com/hook?token=querytok1&x=1", "querytok1"),
    ("https://example.com/hook?key=querykey2", "querykey2"),
    ("https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrId", "TIiajkdnlaz"),
    ("https://discord.com/api/webhooks/123456/discordtok9", "discordtok9"),
    ("https://plant.webhook.office.com/webhookb2/teamsguid1/IncomingWebhook/x/y", "teamsguid1"),
    ("https://api.telegram.org/bot123456:AAHbottoken/sendMessage", "AAHbottoken"),
    # apprise: the host or path is the secret
    ("pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b", "gn5kj6nfhv736"),
    ("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi", "azGDORePK8g"),
    ("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi", "uQiRzpo4DX"),
    ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345", "AAHdqTcvCH1v"),
    ("ntfy://plant-secret-topic", "plant-secret-topic"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "TIiajkdnlazk"),
    ("discord://123456/abcdefghijkdiscord", "abcdefghijkdiscord"),
    ("msteams://teamA/tokenB123/tokenC456/", "tokenB123"),
    ("json://webhook.internal/alerts?token=jsontok5", "jsontok5"),
]


@pytest.mark.parametrize("url, secret", URL_SECRETS)
def test_a_url_secret_is_gone_from_any_string_at_any_depth(url, secret) -> None:
    tree = {"python3": {"notes": f"see {url} for details",
                        "deep": [{"list": [url, {"x": (url,)}]}], "plain": url}}
    assert secret not in shown(tree)
    assert secret not in redact_text(f"error: could not reach '{url}': refused")


@pytest.mark.parametrize("text", [
    "tcp://127.0.0.1:5557", "tls://10.0.0.5:8786", "http://127.0.0.1:5558/health",
    "file:///var/log/metrics.jsonl", "udp://127.0.0.1:25888",
    "expected an apprise URL such as mailto://, json://, mmost://"])
def test_a_location_url_without_credentials_is_shown_unchanged(text) -> None:
    assert redact_text(text) == text


def test_a_url_keeps_its_user_and_host_and_loses_its_password() -> None:
    assert redact_text("https://ops:pw123456@host:8443/x") == f"https://ops:{REDACTED}@host:8443/x"
    assert redact_text("see pbul://tok123456 now") == f"see pbul://{REDACTED} now"


# ------------------------------------------------------------------ env and channels
def test_worker_env_values_are_hidden_unless_listed_as_not_secret() -> None:
    tree = config.load(text=(
        "python3:\n  worker:\n"
        "    env: {DATABASE_URL: 'postgres://app:dbpass123@db/x', SHORT: abc, LANG: C.UTF-8,"
        " EMPTY: ''}\n"
        "    env-not-secret: [LANG]\n"
        "  pools:\n    ml:\n      worker:\n        env: {POOL_KEY: poolvalue77}\n"
        "  fallback:\n    secondary:\n      env: {SECONDARY_DB: secondval88}\n"
    )).model_dump(by_alias=True)
    out = redact_secrets(tree)
    text = json.dumps(out)
    for secret in ("dbpass123", "postgres://", "abc", "poolvalue77", "secondval88"):
        assert secret not in text, secret
    env = out["python3"]["worker"]["env"]
    assert env == {"DATABASE_URL": REDACTED, "SHORT": REDACTED, "LANG": "C.UTF-8",
                   "EMPTY": ""}
    assert out["python3"]["worker"]["env-not-secret"] == ["LANG"]


def test_an_alert_channel_url_is_shown_by_its_scheme_only() -> None:
    tree = config.load(text=(
        "python3:\n  alerts:\n    channels:\n"
        "      - url: 'json://alertuser:alertpass@127.0.0.1:8080/alerts'\n"
        "      - url: 'pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b'\n"
        "      - url: 'ntfy://plant-topic-x'\n"
    )).model_dump(by_alias=True)
    out = redact_secrets(tree)
    channels = out["python3"]["alerts"]["channels"]
    assert [c["url"] for c in channels] == [f"json://{REDACTED}", f"pbul://{REDACTED}",
                                           f"ntfy://{REDACTED}"]
    text = json.dumps(out)
    for secret in ("alertuser", "alertpass", "127.0.0.1:8080", "gn5kj6nfhv736", "plant-topic"):
        assert secret not in text


@pytest.mark.parametrize("url, index, name", [
    ("json://alertuser:alertpass@127.0.0.1/alerts", 0, "json#0"),
    ("mailto://u:p@smtp/", 1, "mailto#1"), ("PBUL://token", 2, "pbul#2"),
    ("tgram://123:abc/chat", 7, "tgram#7"), ("not a url", 3, "url#3")])
def test_a_channel_is_named_by_scheme_and_position(url, index, name) -> None:
    assert channel_name(url, index) == name


def test_a_channel_apprise_cannot_use_is_a_config_error_naming_the_key_not_the_secret(
        caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token = "badbottoken"  # apprise logs this one whole
    with pytest.raises(config.ConfigError) as err:
        config.load(text=(
            "python3:\n  alerts:\n    channels:\n      - url: 'json://127.0.0.1/a'\n"
            "      - url: 'mailto://u:p@127.0.0.1'\n"
            f"      - url: 'tgram://{token}/chat'\n"))
    message = str(err.value)
    assert "python3.alerts.channels.2.url" in message and "tgram://" in message
    assert token not in message and "chat" not in message
    assert token not in caplog.text  # apprise's own "Unparseable Telegram URL ..." is muted
    with pytest.raises(config.ConfigError) as err:
        config.load(text="python3:\n  alerts:\n    channels:\n      - url: 'nosuch://secret99x'\n")
    assert "channels.0.url" in str(err.value) and "nosuch://" in str(err.value)
    assert "secret99x" not in str(err.value)


def test_a_config_error_never_quotes_an_env_value_or_a_secret() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(text="python3:\n  worker:\n    env: {DB_URL: [postgres://a:envpw1234@h/x]}\n")
    assert "python3.worker.env.DB_URL" in str(err.value) and "envpw1234" not in str(err.value)
    with pytest.raises(config.ConfigError) as err:
        config.load(text="python3:\n  bridge:\n    token: [tokval-98765]\n")
    assert "python3.bridge.token" in str(err.value) and "tokval-98765" not in str(err.value)


# ------------------------------------------------------------------ known values, the logs
def test_the_secrets_of_a_config_are_replaced_in_any_text() -> None:
    remember_config_secrets(config.load(text=(
        "python3:\n  worker:\n    env: {DATABASE_URL: 'postgres://app:dbpass123@db/x',"
        " API: plainapikey55, LANG: C.UTF-8}\n    env-not-secret: [LANG]\n"
        "  bridge:\n    token: bridge-token-0123456789\n"
        "  alerts:\n    channels:\n"
        "      - url: 'tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345'\n"
        "      - url: 'ntfy://plant-topic-x'\n"
        "      - url: 'json://alertuser:alertpass@127.0.0.1:8080/alerts'\n"
    )).model_dump(by_alias=True))
    # a library's log line that carries a piece of a URL (urllib3, apprise), or a value alone
    line = ("POST https://api.telegram.org:443/botAAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send; "
            "topic plant-topic-x; pw alertpass; value plainapikey55; db dbpass123; "
            "token bridge-token-0123456789; lang C.UTF-8; host 127.0.0.1")
    out = redact_text(line)
    for secret in ("AAHdqTcvCH1v", "plant-topic-x", "alertpass", "plainapikey55",
                   "dbpass123", "bridge-token-0123456789"):
        assert secret not in out
    assert "C.UTF-8" in out and "127.0.0.1" in out  # not secret: listed, an address


def test_short_values_are_not_remembered_so_words_survive() -> None:
    remember_secrets(["abc", "info", "secret-long-enough"])
    assert redact_text("abc info secret-long-enough") == f"abc info {REDACTED}"


def test_the_log_filter_redacts_message_arguments_and_tracebacks() -> None:
    remember_secrets(["known-secret-77"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("cannot reach %s with %r", "json://u:argpass11@h/x", {"v": "known-secret-77"})
        try:
            raise ValueError("failed for https://ops:tbpass22@host/x")
        except ValueError:
            logger.exception("delivery failed")
        logger.warning("stack", stack_info=True, extra={"x": 1})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "cannot reach json://" in text and "delivery failed" in text
    assert "ValueError: failed for https://ops:<redacted>@host/x" in text
    for secret in ("argpass11", "known-secret-77", "tbpass22"):
        assert secret not in text


def test_an_alert_notification_loses_its_secrets() -> None:
    remember_secrets(["dbpass123"])
    note = Notification(at=0.0, kind="firing", group="pool primary", level=Level.CRITICAL,
                        title="remote json://u:titlepw1@h/x down",
                        body="cannot connect to postgres://app:dbpass123@db/x",
                        firing=[{"summary": "tcp://u:firepw22@10.0.0.5:5557"}])
    text = json.dumps(redact_notification(note).view())
    for secret in ("titlepw1", "dbpass123", "firepw22"):
        assert secret not in text
    assert note.title.endswith("@h/x down")  # the original is untouched


def test_the_alert_manager_shows_and_delivers_no_secret_of_a_condition() -> None:
    from sidecar.alerts.channels import AlertChannels
    from sidecar.alerts.manager import AlertManager
    from sidecar.alerts.policy import AlertPolicy, ThrottleSettings
    from sidecar.loop import Loop

    now = [1000.0]
    loop = Loop(clock=lambda: now[0])
    policy = AlertPolicy(ThrottleSettings(group_wait=0, repeat_interval=3600),
                         clock=lambda: now[0])
    manager = AlertManager(loop, policy, AlertChannels([]))
    seen: list[Notification] = []
    manager.listeners.append(seen.append)
    try:
        manager.raise_condition("remote/x", "CRITICAL", "cannot reach tcp://u:condpw123@h:1",
                                {"endpoint": "tcp://u:condpw123@h:1"}, group="remote")
        assert "condpw123" not in json.dumps(manager.snapshot(), default=str)
        manager.flush()
        assert seen and "condpw123" not in json.dumps([n.view() for n in seen], default=str)
        assert "condpw123" not in json.dumps(manager.snapshot(), default=str)
    finally:
        manager.close()
        loop.close()


@pytest.mark.parametrize("text", ["python3:\n  bridge:\n    token: abc: yamlsecret-1\n",
                                  'python3:\n  bridge:\n    token: "yamlsecret-1\n  x: ['])
def test_a_yaml_error_says_where_without_quoting_the_line(text) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(text=text)
    assert "is not valid YAML" in str(err.value) and "line 3, column" in str(err.value)
    assert "yamlsecret" not in str(err.value)


def test_every_secret_in_the_config_tree_is_redacted():
    tree = config.load(text=(
        "python3:\n  bridge:\n    token: bridge-secret\n"
        "  worker:\n    env: {DB_PASSWORD: pw-secret, API_KEY: key-secret, PLAIN: shown}\n"
        "    env-not-secret: [PLAIN]\n"
        "  fallback:\n    remote:\n      token: remote-secret\n      token-file: /etc/t\n"
    )).model_dump(by_alias=True)
    tree["python3"]["extra"] = [{"nested": {"client_secret": "deep-secret"}}]
    shown = redact_secrets(tree)
    text = repr(shown)
    for secret in ("bridge-secret", "pw-secret", "key-secret", "remote-secret", "deep-secret"):
        assert secret not in text
    assert shown["python3"]["bridge"]["token"] == REDACTED
    assert shown["python3"]["fallback"]["remote"]["token-file"] == "/etc/t"  # a path, shown
    assert shown["python3"]["worker"]["env"]["PLAIN"] == "shown"
    assert tree["python3"]["bridge"]["token"] == "bridge-secret"  # the original is untouched


def test_secrets_are_found_at_any_depth_and_the_tree_is_a_copy():
    tree = {"python3": {"bridge": {"token": "s3cr3t-value", "endpoint": "tcp://127.0.0.1:5557"},
                        "pools": [{"name": "a", "remote": {"api-key": "s3cr3t-value"}},
                                  ({"passwd": "s3cr3t-value"},)]},
            "credential": {"nested": "whole subtree is the secret"}}
    assert redact_secrets(tree) == {
        "python3": {"bridge": {"token": REDACTED, "endpoint": "tcp://127.0.0.1:5557"},
                    "pools": [{"name": "a", "remote": {"api-key": REDACTED}},
                              [{"passwd": REDACTED}]]},
        "credential": REDACTED}
    assert tree["python3"]["bridge"]["token"] == "s3cr3t-value"  # the original is untouched
    assert redact_secrets("plain") == "plain" and redact_secrets(7) == 7


# ---------------------------------------------------------------- exact outputs (mutation)
R = REDACTED


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
    ("https://a@b@hooks.slack.com/x", f"https://a@b@hooks.slack.com/{R}"),
    ("https://u@hooks.slack.com:443/x", f"https://u@hooks.slack.com:443/{R}"),
    ("https://Xhooks.slack.com/x", "https://Xhooks.slack.com/x"),
    ("https://hooks.slack.comX/x", "https://hooks.slack.comX/x"),
    ("https://[hooks.slack.com]/x", f"https://[hooks.slack.com]/{R}"),
    ("https://hooks.slack.com:443:1/x", f"https://hooks.slack.com:443:1/{R}"),
    ("http://h?a=1?key=2", "http://h?a=1?key=2"),
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
    ("http://u:pass:word99@h", {"http://u:pass:word99@h", "pass:word99", "u:pass:word99@h"}),
    ("http://u:pw@h/abcdefghij/klmnopqrst",
     {"abcdefghij", "http://u:pw@h/abcdefghij/klmnopqrst", "klmnopqrst", "pw",
      "u:pw@h/abcdefghij/klmnopqrst"}),
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
    both = [{"env-not-secret": ["X"]}, {"env-not-secret": ["Y"]}, {"env": {"X": "1", "Y": "2"}}]
    assert redact_secrets(both)[2]["env"] == {"X": "1", "Y": "2"}


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
        "db": "see http://me:hunter22@h/x and http://x:yyyyyy@z and http://nouser@h/abcdefghij",
        "dsn": "tcp://me@corp:passed99@h tcp://h/p:notasecret@x tcp://me:pass:word99@h"}}
    remember_config_secrets(tree)
    assert set(rd._known) == {
        "123456789", "123456789:AAbbccddeeff", "123456789:AAbbccddeeff/x", "AAbbccddeeff",
        "abcdefghijkl", "hunter22", "pbul://abcdefghijkl", "tgram://123456789:AAbbccddeeff/x",
        "tokenvalue1", "yyyyyy", "qqqqqqqqqq", "passed99", "pass:word99"}


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
