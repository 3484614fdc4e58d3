"""py3sidecar.settings - the one place an integrator edits.

Every other module of the library reads its settings from here (through
`get()`), so a change here plus a project save is all that is needed: the
shared connection notices that the settings changed and reconnects.

Units: all times are milliseconds, as in Ignition's own system.* functions.
"""

# 'py4j' (default), 'zmq' (the sidecar's ZeroMQ front: needs py3sidecar-gateway.jar, or
# jeromq.jar for an older sidecar, on the gateway) or 'unix' (a sidecar on the gateway's host:
# its Unix socket, named in CONNECTION_FILE; the cheapest per call; needs py3sidecar-gateway.jar
# and Java 16+, and the gateway's user in python3.bridge.token-group when it is another user).
TRANSPORT = 'py4j'

# The sidecar's connection file (<runtime dir>/connection.json, written by the sidecar each
# time it starts): the ports it actually listens on and where its token file is. Every setting
# below left at None is taken from it (and re-read when the sidecar cannot be reached or
# rejects the token, so a restarted sidecar on new ports is found again).
CONNECTION_FILE = '/var/lib/py3sidecar/runtime/connection.json'

# Py4J: the sidecar listens on PY4J_PYTHON_PORT (config key python3.bridge.py4j.python-port).
# The gateway only connects out; it binds no port of its own.
# None: from CONNECTION_FILE, else 127.0.0.1 / 25334.
PY4J_HOST = None
PY4J_PYTHON_PORT = None
# Py4J over TLS (the sidecar's python3.bridge.py4j.tls): the PEM file of the certificate to
# trust, the sidecar's own or the CA's that signed it. Set: TLS, with hostname verification
# (PY4J_HOST must be a name or address in the certificate). None: from CONNECTION_FILE
# (py4j.tls and py4j.tls_cert_file), else plain.
PY4J_TLS_CERT = None

# ZeroMQ: the sidecar's ROUTER endpoint (config key python3.bridge.zmq.endpoint).
# None: from CONNECTION_FILE, else tcp://127.0.0.1:5557.
ZMQ_ENDPOINT = None
# How the ZeroMQ handshake authenticates: 'plain' (the token, through py3sidecar-gateway.jar),
# 'null' (JeroMQ, for an older sidecar that authenticates inside the envelope only).
# None: what CONNECTION_FILE says (zmq.mechanism), else 'plain'. A sidecar with
# python3.bridge.zmq.curve.enabled is not reachable over ZeroMQ from Jython: use 'py4j'.
ZMQ_MECHANISM = None

# Token: either the token itself, or the path of the sidecar's token file
# (<runtime dir>/token, readable by the gateway's user). TOKEN wins when set.
# TOKEN_FILE None: the one named in CONNECTION_FILE.
TOKEN = None
TOKEN_FILE = None

# Failover: more sidecars, tried in order after the one above (the local sidecar) when it
# cannot be reached, loses the connection or misses the client-side deadline, or answers
# `unavailable` / `circuit_open` (the call never ran there). Never on your code's errors
# (`user`), `timeout` or `bad_request`. Each entry is a dict of the settings above that apply to
# that sidecar: NAME (shown by python3.clientStatus() and the health tags), TRANSPORT (default:
# TRANSPORT above; 'unix' needs CONNECTION_FILE), CONNECTION_FILE (a sidecar on this host), or
# PY4J_HOST + PY4J_PYTHON_PORT / ZMQ_ENDPOINT (a sidecar on another host: its Py4J front must
# listen on an address the gateway reaches), and TOKEN or TOKEN_FILE (that sidecar's token). Nothing is inherited from the local
# sidecar's ports or token. Example:
#   FAILOVER_SIDECARS = [{'NAME': 'backup', 'PY4J_HOST': '10.0.0.2', 'PY4J_PYTHON_PORT': 25334,
#                         'TOKEN_FILE': '/var/lib/py3sidecar/backup.token'}]
FAILOVER_SIDECARS = []

# Client-side circuit breaker, one per sidecar (the local one included): after
# BREAKER_FAILURE_THRESHOLD consecutive transport failures (cannot connect, connection lost,
# client-side deadline) the sidecar is skipped without touching the network (microseconds per
# call) for BREAKER_OPEN_MS; then ONE probe call tries it again, and its success brings traffic
# back. A local sidecar that restarts (its connection file changes) is probed at once.
BREAKER_FAILURE_THRESHOLD = 1
BREAKER_OPEN_MS = 2000

# Default per-call timeout (sent to the sidecar, which enforces it on the worker).
DEFAULT_TIMEOUT_MS = 30000
# Extra time the gateway waits past the call timeout before it gives up on its own
# (client-side deadline): covers the sidecar's own reply latency.
CLIENT_GRACE_MS = 2000
# How long to wait for a connection to the sidecar before failing with Unavailable.
CONNECT_TIMEOUT_MS = 1000
# Timeout for ping()/health()/diagnostics().
CONTROL_TIMEOUT_MS = 5000

# Threads that run executeAsync/callAsync calls (shared by the whole gateway).
ASYNC_THREADS = 4
# Async calls waiting for a thread beyond this many fail at once with Overloaded.
ASYNC_QUEUE = 1000

# Which JVM talks to the sidecar. 'auto': gateway and Perspective scripts directly; Designer,
# Script Console and Vision client code (which run on the operator's PC) through the gateway
# message handler MESSAGE_HANDLER of project GATEWAY_PROJECT: the bundle's runnable project
# py3sidecar-gateway (a child of this library) holds that handler, once per gateway (None: the
# running project, which must then carry the handler itself). 'direct' / 'gateway' force one route.
ROUTE = 'auto'
MESSAGE_HANDLER = 'py3sidecar'
GATEWAY_PROJECT = 'py3sidecar-gateway'

# Logger name used through system.util.getLogger.
LOGGER_NAME = 'python3'

# Health polling timer script (py3sidecar.healthpoll.run): tag folder for the results.
HEALTH_TAG_PROVIDER = 'default'
HEALTH_TAG_FOLDER = 'Python3Sidecar'
# The poll runs once per gateway however many projects carry the timer: the project whose timer
# polled last keeps the lease (in system.util.getGlobals()); another project's timer skips, and
# takes over when the lease has not been renewed for this long (3 x the timer's 10 s delay).
HEALTH_POLL_LEASE_MS = 30000

# Site settings: a JSON object of the names above (e.g. {"CONNECTION_FILE": "...",
# "HEALTH_TAG_PROVIDER": "plant"}), applied over the values above each time this module runs
# (gateway start, project save). It lives outside the project, so importing a new version of
# py3sidecar (an upgrade) keeps it: `py3sidecar install` writes it once and never overwrites it.
# Read where the file exists, i.e. on the gateway host: Designer and Vision clients run on
# other PCs and keep the values above (so keep GATEWAY_PROJECT / MESSAGE_HANDLER as shipped, or
# set them in this module of a child project). Its problems are in SITE_PROBLEMS (python3.selfTest()).
# Where: the environment variable PY3SIDECAR_SITE_SETTINGS of the gateway's process when set (a
# path), else /etc/py3sidecar/ignition-site.json, and on a Windows gateway (no /etc there)
# %ProgramData%\py3sidecar\ignition-site.json (usually C:\ProgramData\py3sidecar\...).


def site_settings_file(environ=None, os_name=None):
    """The site settings file for this gateway (see above); `environ` and `os_name` (the JVM's
    os.name) are for tests."""
    import os
    environ = os.environ if environ is None else environ
    explicit = (environ.get('PY3SIDECAR_SITE_SETTINGS') or '').strip()
    if explicit:
        return explicit
    if os_name is None:
        import java.lang
        os_name = java.lang.System.getProperty('os.name') or ''
    if os_name.lower().startswith('windows'):
        base = (environ.get('ProgramData') or environ.get('PROGRAMDATA') or
                'C:\\ProgramData').rstrip('\\/')
        return base + '\\py3sidecar\\ignition-site.json'
    return '/etc/py3sidecar/ignition-site.json'


SITE_SETTINGS_FILE = site_settings_file()


def get():
    """Returns the settings as a dict (a snapshot: safe to compare with an older one)."""
    return {
        'transport': TRANSPORT,
        'connection_file': CONNECTION_FILE,
        'py4j_host': PY4J_HOST,
        'py4j_python_port': PY4J_PYTHON_PORT,
        'py4j_tls_cert': PY4J_TLS_CERT,
        'zmq_endpoint': ZMQ_ENDPOINT,
        'zmq_mechanism': ZMQ_MECHANISM,
        'token': TOKEN,
        'token_file': TOKEN_FILE,
        'failover_sidecars': [dict(s) for s in (FAILOVER_SIDECARS or [])],
        'breaker_failure_threshold': BREAKER_FAILURE_THRESHOLD,
        'breaker_open_ms': BREAKER_OPEN_MS,
        'default_timeout_ms': DEFAULT_TIMEOUT_MS,
        'client_grace_ms': CLIENT_GRACE_MS,
        'connect_timeout_ms': CONNECT_TIMEOUT_MS,
        'control_timeout_ms': CONTROL_TIMEOUT_MS,
        'async_threads': ASYNC_THREADS,
        'async_queue': ASYNC_QUEUE,
        'logger_name': LOGGER_NAME,
        'health_tag_provider': HEALTH_TAG_PROVIDER,
        'health_tag_folder': HEALTH_TAG_FOLDER,
    }


def load_site(path=None):
    """Applies the site settings file (default SITE_SETTINGS_FILE) over this module's values.
    Returns (the file applied or None, [problems]); a missing file is no problem."""
    import json
    import os
    path = path or SITE_SETTINGS_FILE
    if not path or not os.path.isfile(path):
        return None, []
    try:
        f = open(path)
        try:
            data = json.loads(f.read())
        finally:
            f.close()
    except (IOError, OSError, ValueError), e:
        return None, ['cannot read the site settings file %s (%s): fix its JSON or its '
                      'permissions (the gateway\'s user must read it)' % (path, e)]
    if not isinstance(data, dict):
        return None, ['the site settings file %s must hold a JSON object of setting names'
                      % path]
    names = globals()
    problems = []
    for key, value in sorted(data.items()):
        key = str(key)
        if key == 'SITE_SETTINGS_FILE' or not key.isupper() or key.startswith('SITE_') \
                or key not in names:
            problems.append('unknown setting %r in %s (ignored): use the names of '
                            'py3sidecar.settings' % (key, path))
            continue
        names[key] = value
    return path, problems


SITE_LOADED, SITE_PROBLEMS = load_site()
