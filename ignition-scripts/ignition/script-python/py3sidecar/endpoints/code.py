"""py3sidecar.endpoints - which sidecars this gateway uses, and how each one is reached.

Owns: the failover list built from py3sidecar.settings (the local sidecar, then
FAILOVER_SIDECARS, each checked with errors that name the entry and the key), and resolving one
entry's unset settings from its connection file (ports actually bound) and its token file.
Must not touch: connections, breakers, the wire (py3sidecar.client and py3sidecar.transport).

Gateway scope only (resource scope "G"): only py3sidecar.client calls it. Pure file reads, no
state, so a project save (which re-executes every module) needs nothing from it.
"""
import java.io


def _read_file(path):
    try:
        f = open(path, 'r')
        try:
            return f.read()
        finally:
            f.close()
    except (IOError, OSError):
        return None


_SIDECAR_KEYS = ('name', 'transport', 'connection_file', 'py4j_host', 'py4j_python_port',
                 'zmq_endpoint', 'token', 'token_file')


def sidecars(cfg):
    """The sidecars in failover order, each a settings dict: the local one (the top-level
    settings of py3sidecar.settings, found through CONNECTION_FILE), then FAILOVER_SIDECARS."""
    first = dict(cfg)
    first['name'] = 'local'
    out = [first]
    names = set(['local'])
    for i, entry in enumerate(cfg.get('failover_sidecars') or []):
        where = 'py3sidecar.settings.FAILOVER_SIDECARS[%d]' % i
        if not isinstance(entry, dict):
            raise python3.BadRequest('%s must be a dict (NAME, CONNECTION_FILE or PY4J_HOST/'
                                     'PY4J_PYTHON_PORT/ZMQ_ENDPOINT, TOKEN or TOKEN_FILE), not %r'
                                     % (where, entry))
        sc = dict(cfg)
        for k in _SIDECAR_KEYS:
            sc[k] = None
        sc['transport'] = cfg['transport']
        for k, v in entry.items():
            key = str(k).lower()
            if key not in _SIDECAR_KEYS:
                raise python3.BadRequest('%s: unknown key %r (known: %s)'
                                         % (where, k,
                                            ', '.join(x.upper() for x in _SIDECAR_KEYS)))
            if key == 'transport' and v is None:
                continue
            sc[key] = v
        sc['name'] = sc['name'] or 'failover%d' % (i + 1)
        if sc['name'] in names:
            raise python3.BadRequest('%s: the name %r is used twice' % (where, sc['name']))
        names.add(sc['name'])
        if not sc['connection_file'] and not (
                sc['transport'] == 'py4j' and sc['py4j_python_port']
                or sc['transport'] == 'zmq' and sc['zmq_endpoint']):
            raise python3.BadRequest('%s (%s) says neither where the sidecar listens (PY4J_HOST '
                                     'and PY4J_PYTHON_PORT, or ZMQ_ENDPOINT) nor its '
                                     'CONNECTION_FILE' % (where, sc['name']))
        out.append(sc)
    return out


def resolve(cfg):
    """Settings with every None filled in from the sidecar's connection file (or defaults),
    and the token read: what a connection uses."""
    import json
    r = dict(cfg)
    info = {}
    path = cfg.get('connection_file')
    # Taken before the read: a sidecar that restarts while we read is noticed next time.
    r['connection_stamp'] = java.io.File(path).lastModified() if path else None
    text = _read_file(path) if path else None
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
    py4j = info.get('py4j') or {}
    if r['py4j_host'] is None:
        r['py4j_host'] = py4j.get('host') or '127.0.0.1'
        if r['py4j_host'] in ('0.0.0.0', '::'):
            r['py4j_host'] = '127.0.0.1'
    if r['py4j_python_port'] is None:
        r['py4j_python_port'] = py4j.get('python_port') or 25334
    if r['zmq_endpoint'] is None:
        r['zmq_endpoint'] = (info.get('zmq') or {}).get('endpoint') or 'tcp://127.0.0.1:5557'
    if not r['token'] and not r['token_file']:
        r['token_file'] = info.get('token_file')
    if not r['token'] and r['token_file']:
        r['token'] = (_read_file(r['token_file']) or '').strip() or None
    return r
