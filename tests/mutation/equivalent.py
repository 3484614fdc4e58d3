"""Survivors of ``make mutate`` that cannot change behaviour, each with the reason.

Keyed by (module, function, changed lines) as ``tests/mutation/report.py`` prints them, so a
renumbering of mutmut's mutants keeps the entry; a change to the code under it drops it (and
the survivor shows up again, to be looked at anew).
"""

from __future__ import annotations

_PUBLISH_ONLY = ("the returned flag only makes the caller run _publish_pending, which publishes "
                 "pending transition events; with no transition there are none (an event "
                 "pending from another thread is published by that thread)")
_FALSY = ("read only for its truth value (`if`, `or`, `and`, `not`): False, '' and None are all "
          "false")
_FORGOTTEN = ("every 'forgotten' drop is of a crash record (record_run and _expire check "
              "`since is None`; clear() drops the held ones first), and _drop returns for a crash "
              "record right after the tracked count, before it reads action, now, reason or events")
_INF = "float() parses 'inf' in any case: float('INF') == float('inf')"
_COUNT_PRESENT = ("the key is always present when its count drops (a drop follows its own add), "
                  "so pop(key) never needs the default")
_CLEAR_LOOKUP = ("the looked-up record is used only when an id was given: with None the branch "
                 "above runs, and '' never reaches clear (quarantine_op passes `or None`)")
_BIG_DEFAULT = "int.from_bytes defaults to byteorder 'big' since Python 3.11 (requires-python)"
_PAST_END = ("past the end any byte value that starts no string or integer gives the same None "
             "(-1, -2 and 1 all fall through every header test)")
_CODEC_NAME = "codec names are case-insensitive: 'UTF-8' is 'utf-8'"
_EMPTY_CONTAINER = ("the only bytes the bounds move are 0x80 (an empty map) and 0x90 (an empty "
                    "array): both give EnvelopeHead(None, None) either way (no member to read)")
_ONE_BYTE_VALUE = ("the moved bound takes in one header byte (0x80, 0x90, 0xA0 or 0xC0) whose "
                   "value is one byte with nothing pending in both branches (an empty map, array "
                   "or string; nil): the same position and budget")
_KEY_LIMIT = ("only the keys 'token' and 'id' are compared; a 17-byte key is neither, and is "
              "stepped over to the same position whether read as a string or skipped")
_FIND_NONE = "bytes.find(sub, None, end) starts at 0, as find(sub, 0, end)"
_URLSAFE_DEFAULT = "secrets.token_urlsafe(None) uses the default 32 bytes: the same token length"
_STARTED_AT = ("never read before start_call sets it (the watchdog, resources and the pool read "
               "it only for a running call)")
_OUTCOME = ("answer() sets outcome before the sink runs, and only sinks read it (metrics, "
            "fallback, diagnostics)")
_DRAIN_KILL_REASON = ("the drain's follow-up kill finds the worker already STOPPING: "
                      "take_out_of_service returns before storing the reason, so the drain's own "
                      "reason is what health, events and the log show (the text is never read)")
_BREAK_RETURN = "the loop is the last statement of the function: break and return both leave it"
_EXIT_ONCE = ("a worker's exit is handled once (its pidfd is closed by reap() just above), so it "
              "is still in the set's handles here and pop needs no default")
_LOG_ONLY = "the condition guards a log line only (log statements are not mutated)"
_RETURN_IGNORED = "the metrics hook's return value is ignored"
_SPLICE = ("the decoded path builds the same reply (value, id, worker) and the same success "
           "count and timings; the splice only saves the decode (measured in benchmarks)")
_FAILURE_DURATION = ("a failure's duration is kept in the score's history, but nothing reads it "
                     "(mean_execution_ms counts successes only)")
_KILL_REASON_SET = ("take_out_of_service(worker, reason) ran just before the capture: the kill's "
                    "own take_out_of_service returns early, so this reason is never stored")
_ZERO_WAIT = ("a call dispatched at once has a wait of exactly 0 (the monotonic clock never goes "
              "back): adding it or not changes nothing")
_OPENED_AT = "read only in OPEN, and every move to OPEN sets it first"
_SPLICED_FLOATS = ("on the spliced path wall and cpu come from struct.unpack ('>d5xd' in "
                   "bridge.passthrough): always floats, so `and` and `or` agree")
_GRACE_PASSED = ("Pool.terminate, the worker set's only caller of terminate, always passes its own "
                 "grace: the set's default is never used")
_KEY_LENGTH = ("token_bytes(None) is a random key of 32 bytes instead of 16: still secret, per "
               "run, and within blake2b's 64-byte key limit; nothing reads the key's length")
_HALF_OPEN_RETRY = ("in HALF_OPEN _retry_after returns 0.0 without reading the time (this is the "
                    "half-open branch; the open one is killed by test_breaker_edges)")


EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("bridge/breaker.py", "CircuitBreaker._record_half_open",
     "- return False | + return True"): _PUBLISH_ONLY,
    ("sidecar/pool/lifecycle.py", "WorkerSet.recycle",
     '- worker.recycle_after_call = "" | + worker.recycle_after_call = None'): _FALSY,
    ("sidecar/pool/lifecycle.py", "WorkerSet.resize", "- if size > old: | + if size >= old:"):
        "at an unchanged size ensure_capacity finds nothing to start: the pool refills on "
        "every exit, failed start and back-off timer, so no missing member whose start is "
        "allowed now outlives a loop turn; and the shrink branch drains nothing at surplus 0",
    ('bridge/breaker.py', 'CircuitBreaker.__init__', '- self._opened_at = 0.0 | + self._opened_at = None'):
        _OPENED_AT,
    ('bridge/breaker.py', 'CircuitBreaker.__init__', '- self._opened_at = 0.0 | + self._opened_at = 1.0'):
        _OPENED_AT,
    ('bridge/breaker.py', 'CircuitBreaker._acquire', '- result = (state, self._retry_after(now)) | + result = (state, self._retry_after(None))'):
        _HALF_OPEN_RETRY,
    ('bridge/breaker.py', 'CircuitBreaker._maybe_half_open', '- return False | + return True'):
        _PUBLISH_ONLY,
    ('bridge/breaker.py', 'CircuitBreaker._record_closed', '- return False | + return True'):
        _PUBLISH_ONLY,
    ('bridge/preauth.py', '_length', '- return int.from_bytes(data[pos:pos + size], "big") | + return int.from_bytes(data[pos:pos + size], )'):
        _BIG_DEFAULT,
    ('bridge/preauth.py', '_short_id', '- b = data[pos] if pos < len(data) else -1 | + b = data[pos] if pos < len(data) else -2'):
        _PAST_END,
    ('bridge/preauth.py', '_short_id', '- return int.from_bytes(data[pos + 1:pos + 1 + size], "big", signed=b >= 0xD0) | + return int.from_bytes(data[pos + 1:pos + 1 + size], signed=b >= 0xD0)'):
        _BIG_DEFAULT,
    ('bridge/preauth.py', '_short_id', '- return text.decode("utf-8") | + return text.decode("UTF-8")'):
        _CODEC_NAME,
    ('bridge/preauth.py', '_str_at', '- b = data[pos] if pos < len(data) else -1 | + b = data[pos] if pos < len(data) else +1'):
        _PAST_END,
    ('bridge/preauth.py', '_str_at', '- b = data[pos] if pos < len(data) else -1 | + b = data[pos] if pos < len(data) else -2'):
        _PAST_END,
    ('bridge/preauth.py', 'peek_envelope', '- if 0x80 <= b <= 0x8F: | + if 129 <= b <= 0x8F:'):
        _EMPTY_CONTAINER,
    ('bridge/preauth.py', 'peek_envelope', '- if 0x80 <= b <= 0x8F: | + if 0x80 < b <= 0x8F:'):
        _EMPTY_CONTAINER,
    ('bridge/preauth.py', 'peek_envelope', '- if 0x80 <= b <= 0x8F: | + if 0x80 <= b <= 144:'):
        _EMPTY_CONTAINER,
    ('bridge/preauth.py', 'peek_envelope', '- found_token = False | + found_token = None'):
        _FALSY,
    ('bridge/preauth.py', 'peek_envelope', '- key, value_at = _str_at(data, pos, 16) | + key, value_at = _str_at(data, pos, 17)'):
        _KEY_LIMIT,
    ('bridge/preauth.py', 'skip_values', '- if b <= 0x7F or b >= 0xE0: # fixint | + if b <= 128 or b >= 0xE0: # fixint'):
        _ONE_BYTE_VALUE,
    ('bridge/preauth.py', 'skip_values', '- elif b <= 0x8F: # fixmap: keys and values follow | + elif b <= 144: # fixmap: keys and values follow'):
        _ONE_BYTE_VALUE,
    ('bridge/preauth.py', 'skip_values', '- elif b <= 0x9F: # fixarray | + elif b <= 160: # fixarray'):
        _ONE_BYTE_VALUE,
    ('bridge/preauth.py', 'skip_values', '- elif b <= 0xBF: # fixstr | + elif b <= 192: # fixstr'):
        _ONE_BYTE_VALUE,
    ('bridge/preauth.py', 'token_near_start_matches', '- at = data.find(_TOKEN_KEY, 0, _FAST_WINDOW) | + at = data.find(_TOKEN_KEY, None, _FAST_WINDOW)'):
        _FIND_NONE,
    ('sidecar/observability/redaction.py', 'channel_name', '- match = _SCHEME.match(url or "") | + match = _SCHEME.match(url or "XXXX")'):
        "only a falsy url reaches the default, and 'XXXX' holds no '://' either: no match, 'url#N'",
    ('sidecar/observability/redaction.py', 'channel_shown', '- match = _SCHEME.match(url or "") | + match = _SCHEME.match(url or "XXXX")'):
        "only a falsy url reaches the default, and 'XXXX' holds no '://' either: no match, REDACTED",
    ('sidecar/observability/redaction.py', '_redact_url', '- hostname = netloc.rpartition("@")[2].split(":", 1)[0].strip("[]") # before any port | + hostname = netloc.rpartition("@")[2].split(":", )[0].strip("[]") # before any port'):
        "[0] of a split is the text before the first ':' whatever the number of splits",
    ('sidecar/observability/redaction.py', '_redact_url', '- hostname = netloc.rpartition("@")[2].split(":", 1)[0].strip("[]") # before any port | + hostname = netloc.rpartition("@")[2].split(":", 2)[0].strip("[]") # before any port'):
        "[0] of a split is the text before the first ':' whatever the number of splits",
    ('sidecar/observability/redaction.py', '_redact_tree', '- shown[key] = {name: _redact_tree(v, not_secret) | + shown[key] = {name: _redact_tree(v, None)'):
        ("an env map's values are strings (python3...env is dict[str, str] in "
         "sidecar/config/model.py): _redact_tree reads not_secret only under a nested env key"),
    ('sidecar/observability/redaction.py', 'secrets_of_url', '- match = _URL.search(url or "") | + match = _URL.search(url or "XXXX")'):
        ("only a falsy url ('' or None) reaches the default, and 'XXXX' holds no '://' either: "
         "no match, and the next line returns set() for a falsy url"),
    ('bridge/token.py', 'ensure_token', '- existing = "" | + existing = None'):
        _FALSY,
    ('bridge/token.py', 'new_token', '- token = secrets.token_urlsafe(32) | + token = secrets.token_urlsafe(None)'):
        _URLSAFE_DEFAULT,
    ('sidecar/pool/call.py', 'Call.__init__', '- self.started_at = 0.0 | + self.started_at = None'):
        _STARTED_AT,
    ('sidecar/pool/call.py', 'Call.__init__', '- self.started_at = 0.0 | + self.started_at = 1.0'):
        _STARTED_AT,
    ('sidecar/pool/call.py', 'Call.__init__', '- self.outcome: str | None = None # None = success, else the error kind | + self.outcome: str | None = "" # None = success, else the error kind'):
        _OUTCOME,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.drain', '- lambda: self.kill(worker, "it did not exit")) | + lambda: self.kill(worker, None))'):
        _DRAIN_KILL_REASON,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.drain', '- lambda: self.kill(worker, "it did not exit")) | + lambda: self.kill(worker, "XXit did not exitXX"))'):
        _DRAIN_KILL_REASON,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.drain', '- lambda: self.kill(worker, "it did not exit")) | + lambda: self.kill(worker, "IT DID NOT EXIT"))'):
        _DRAIN_KILL_REASON,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.ensure_capacity', '- break | + return'):
        _BREAK_RETURN,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.on_exit', '- self.handles.pop(worker.id, None) | + self.handles.pop(worker.id, )'):
        _EXIT_ONCE,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.start_template', '- if self.settings.spawn == TEMPLATE and reason: | + if self.settings.spawn == TEMPLATE or reason:'):
        _LOG_ONLY,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.start_template', '- if self.settings.spawn == TEMPLATE and reason: | + if self.settings.spawn != TEMPLATE and reason:'):
        _LOG_ONLY,
    ('sidecar/pool/local.py', 'Pool.__init__', '- self.closing = False | + self.closing = None'):
        _FALSY,
    ('sidecar/pool/local.py', 'Pool.answer_from_worker', '- if isinstance(wall, float) and isinstance(cpu, float): | + if isinstance(wall, float) or isinstance(cpu, float):'):
        _SPLICED_FLOATS,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.__init__', '- self.closing = False | + self.closing = None'):
        _FALSY,
    ('sidecar/pool/lifecycle.py', 'WorkerSet.terminate', '- def terminate(self, grace: float = 2.0) -> None: | + def terminate(self, grace: float = 3.0) -> None:'):
        _GRACE_PASSED,
    ('sidecar/routing/quarantine.py', 'Quarantine.__init__', '- self._key = secrets.token_bytes(KEY_BYTES) if key is None else key | + self._key = secrets.token_bytes(None) if key is None else key'):
        _KEY_LENGTH,
    ('sidecar/pool/local.py', 'Pool.__init__', '- self.observe_queue_wait: Callable[[float], None] = lambda seconds: None # metrics | + self.observe_queue_wait: Callable[[float], None] = lambda seconds: 0 # metrics'):
        _RETURN_IGNORED,
    ('sidecar/pool/local.py', 'Pool.answer_from_worker', '- spliced = splice_success(frame, call.rid, worker.id) | + spliced = None'):
        _SPLICE,
    ('sidecar/pool/local.py', 'Pool.answer_from_worker', '- worker.score.record(kind, seconds) | + worker.score.record(kind, None)'):
        _FAILURE_DURATION,
    ('sidecar/pool/local.py', 'Pool.answer_from_worker', '- worker.score.record(kind, seconds) | + worker.score.record(kind, )'):
        _FAILURE_DURATION,
    ('sidecar/pool/local.py', 'Pool.expire', '- self.workers.kill(worker, reason) | + self.workers.kill(worker, None)'):
        _KILL_REASON_SET,
    ('sidecar/pool/local.py', 'Pool.start_call', '- if now - call.accepted_at > 0.0: | + if now + call.accepted_at > 0.0:'):
        _ZERO_WAIT,
    ('sidecar/pool/local.py', 'Pool.start_call', '- if now - call.accepted_at > 0.0: | + if now - call.accepted_at >= 0.0:'):
        _ZERO_WAIT,
    ('sidecar/routing/quarantine.py', 'Quarantine.__init__', '- self._next_expiry = float("inf") | + self._next_expiry = float("INF")'):
        _INF,
    ('sidecar/routing/quarantine.py', 'Quarantine._count', '- counts.pop(key, None) | + counts.pop(key, )'):
        _COUNT_PRESENT,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, None, now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", None, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, None, events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, "", None)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "XXforgottenXX", now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "FORGOTTEN", now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, "XXXX", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine._expire', '- if r.since is not None), default=float("inf")) | + if r.since is not None), default=float("INF"))'):
        _INF,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- record = self._records.get(fingerprint_id or "") | + record = self._records.get(fingerprint_id or "XXXX")'):
        _CLEAR_LOOKUP,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, None, now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", None, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, None, events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, "", None)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "XXforgottenXX", now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "FORGOTTEN", now, "", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.clear', '- self._drop(key, "forgotten", now, "", events) | + self._drop(key, "forgotten", now, "XXXX", events)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, None, self._clock(), "", [])'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "forgotten", None, "", [])'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "forgotten", self._clock(), None, [])'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "forgotten", self._clock(), "", None)'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "XXforgottenXX", self._clock(), "", [])'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "FORGOTTEN", self._clock(), "", [])'):
        _FORGOTTEN,
    ('sidecar/routing/quarantine.py', 'Quarantine.record_run', '- self._drop(key, "forgotten", self._clock(), "", []) | + self._drop(key, "forgotten", self._clock(), "XXXX", [])'):
        _FORGOTTEN,
}
