"""Covers: sidecar.process.confinement, sidecar.config.model.

python3.worker.user / group: checked when the config loads, with the key in the message."""
import grp
import os
import pwd

import pytest

from sidecar.config import model as config
from sidecar.config.model import ConfigError
from sidecar.process.confinement import worker_credentials


@pytest.mark.parametrize("key, value, message", [
    ("user", "no-such-account-py3", "python3.worker.user: there is no account"),
    ("group", "no-such-group-py3", "python3.worker.group: there is no group"),
])
def test_a_missing_account_is_refused_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as info:
        config.load(text=f"python3:\n  worker:\n    {key}: {value}\n")
    assert message in str(info.value) and repr(value) in str(info.value)


def test_default_is_the_sidecars_own_account():
    worker = config.load(text="python3: {}\n").python3.worker
    assert (worker.user, worker.group) == ("", "")
    assert worker_credentials("", "") == {}


def test_credentials_drop_supplementary_groups_and_default_to_the_users_group():
    me = pwd.getpwuid(os.getuid())
    assert worker_credentials(me.pw_name, "") == {"user": me.pw_uid, "group": me.pw_gid,
                                                  "extra_groups": []}
    other = grp.getgrgid(os.getgid()).gr_name
    assert worker_credentials("", other) == {"group": os.getgid(), "extra_groups": []}
