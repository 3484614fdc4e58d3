"""INSTALL.txt of the bundle: the integrator's steps for Ignition 8.1 and 8.3.

Owns: the text only (sidecar/deploy/bundle.py fills it in and writes it). Every Ignition fact in it
is marked by how sure we are: (doc) Inductive Automation's documentation says so; (reported)
third parties observed it; (unverified) our best reading, check it on your gateway.
"""

INSTALL_TXT = """\
py3sidecar for Ignition 8.1 and 8.3 - install
=============================================
What is in this bundle: two Ignition projects - py3sidecar (the python3.* script library,
inheritable) and py3sidecar-gateway (its runnable child holding the gateway events: the
health-poll timer, the startup ping and the `py3sidecar` message handler) -, the jars the library
needs (jars/), the sidecar's systemd unit, its config and a Grafana dashboard. Commands below
run on the gateway host as root.

A. The quick way: `py3sidecar install`
--------------------------------------
1. The sidecar's Python, in a virtualenv every account can read (NOT under /root):
     python3 -m venv /opt/py3sidecar/venv
     /opt/py3sidecar/venv/bin/pip install py3sidecar       # plus your packages (pandas ...)
2. Install (look first with --dry-run; every step is printed):
     /opt/py3sidecar/venv/bin/py3sidecar install --ignition-home /usr/local/bin/ignition
   It finds the gateway's systemd unit (a unit whose ExecStart or WorkingDirectory points into
   the Ignition folder; the Linux installer's is usually Ignition-Gateway.service (reported)),
   the gateway's account (that unit's User=, else RUN_AS_USER of ignition.sh, else the owner of
   data/; the installer runs the gateway as whoever ran it - root under sudo - and there is no
   `ignition` account by default (reported)) and the version (8.1 or 8.3, from the install
   tree). Pass --gateway-unit, --gateway-user, --ignition-version when it cannot tell. It:
   - creates the sidecar's account {user}, the workers' account {worker_user} (user code can
     neither signal the sidecar nor read its token) and the group {group} (the token file is
     0640 in it; the gateway's account joins it);
   - writes /etc/py3sidecar/config.yml, the unit (ExecStart: the interpreter that ran install,
     Before=<the gateway's unit>), /etc/py3sidecar/ignition-site.json (site settings: written
     once, kept by upgrades), and /etc/py3sidecar/install-manifest.json (every file, folder,
     account and group it made);
   - copies the jars into <ignition>/lib/core/gateway and the projects into
     <ignition>/data/projects/<name>, owned like the folders they go into;
   - on 8.3 with --api-token TOKEN [--gateway-url http://127.0.0.1:8088], imports the projects
     through the gateway's REST API instead (POST /data/api/v1/projects/import/<name>?overwrite
     =true, header X-Ignition-API-Token (reported)); the token needs gateway write permission;
   - enables and starts py3sidecar (unless --no-start).
3. Restart the gateway once (`systemctl restart <gateway unit>`): it loads the new jars and its
   account gets the new group. Then check: `py3sidecar doctor --ignition-home DIR` (below).
Upgrade: run the same `install` again with the new release: it replaces what it wrote (jars,
projects, unit, config) and keeps ignition-site.json. Uninstall: `py3sidecar uninstall` removes
exactly what the manifest lists (accounts and group included) and puts back any file it had
replaced; projects imported over REST are deleted by hand (Platform > System > Projects).

B. By hand, step by step
------------------------
1. Python: as A.1. The unit in systemd/ runs {python}; write the bundle again with
   `py3sidecar ignition-bundle OUT --python /opt/py3sidecar/venv/bin/python` if that is not it.
2. Accounts: useradd --system --no-create-home --shell /usr/sbin/nologin {user}
             useradd --system --no-create-home --shell /usr/sbin/nologin --user-group {worker_user}
             groupadd --system {group}; usermod -aG {group} {user}
             usermod -aG {group} <the gateway's account>      (not needed when it is root)
3. Files: mkdir -p /etc/py3sidecar && cp config.yml /etc/py3sidecar/config.yml
          cp systemd/py3sidecar.service /etc/systemd/system/   (check Before= names your
          gateway's unit: `systemctl list-units '*gnition*'`)
          systemctl daemon-reload && systemctl enable --now py3sidecar
   The unit's StateDirectory makes /var/lib/py3sidecar (0750, {user}:{group}); the sidecar writes
   its token (0640, group {group}) and connection.json into /var/lib/py3sidecar/runtime, and
   binds its Unix socket there (sidecar.sock, 0660, group {group}: the library's
   TRANSPORT = 'unix', for a gateway on this host; the group's members may connect).
4. Jars: cp jars/*.jar <ignition>/lib/core/gateway/ && chown <owner of that folder> them, and
   restart the gateway. (py3sidecar-gateway.jar is optional: the codec in Java.) Dropped jars are
   not in a gateway backup (.gwbk), not on a redundant backup node, and gone when a container is
   recreated (reported): redo this step there, or mount them (see Containers).
5. Projects. The library py3sidecar must be imported first, then its child py3sidecar-gateway.
   - 8.1 (doc): Gateway webpage > Config > Projects > Import project: py3sidecar-project.zip as
     py3sidecar (Inheritable), then py3sidecar-gateway-project-8.1.zip as py3sidecar-gateway
     (parent py3sidecar; the Designer shows project settings there too).
   - 8.3 (doc): Gateway webpage > Platform > System > Projects (the import action of that page):
     py3sidecar-project.zip, then py3sidecar-gateway-project.zip (it holds the 8.3 event
     resources). Or by REST (reported), with an API token that has gateway write permission:
       curl -X POST -H 'X-Ignition-API-Token: KEY' -H 'Content-Type: application/zip' \\
         --data-binary @py3sidecar-project.zip \\
         'http://127.0.0.1:8088/data/api/v1/projects/import/py3sidecar?overwrite=true'
     (and the same for py3sidecar-gateway-project.zip as py3sidecar-gateway).
   - Or copy the folders (project/ -> <ignition>/data/projects/py3sidecar, gateway-project/ ->
     .../py3sidecar-gateway; chown -R <gateway account> them) and have the gateway scan: 8.1.11
     picked up such files by itself within seconds, 8.3.8 did not (reported). The scan is
     system.project.requestScan() (doc: Gateway and Perspective scope only, so NOT from the
     Script Console): e.g. a Perspective button, or on 8.3 POST /data/api/v1/scan/projects
     (reported); a gateway restart also rescans.
   Project names: if your gateway refuses `py3sidecar-gateway` (8.0's docs allowed only letters,
   digits and `_`; 8.1/8.3 accept `-` inside names (unverified)), import it as
   py3sidecar_gateway and set GATEWAY_PROJECT = 'py3sidecar_gateway' in the library's
   py3sidecar/settings (the Designer and Vision clients read that module, not the site file).
6. Gateway events on 8.1 (doc: 8.1 keeps all of a project's gateway events in one binary
   resource; a timer written to disk is never run (reported)): open py3sidecar-gateway in the
   Designer, Project Browser > Scripting > Gateway Events, and paste from gateway-events/:
   - Message > add handler `py3sidecar` (Threading: Shared): message-handler-py3sidecar.py
     (its body: return py3sidecar.gatewayroute.handle(payload)).
   - Timer > add `py3sidecar-healthpoll`: 10000 ms, Fixed Delay, Dedicated thread, Enabled:
     timer-healthpoll.py (writes the health tags; it runs once per gateway even if another
     project carries it too: a lease in system.util.getGlobals()).
   - Startup: startup.py. Save the project.
   On 8.3 these are already resources of py3sidecar-gateway (ignition/timer, ignition/message,
   ignition/startup: a third party's measurements of the 8.3 layout, reported).
7. The parent chain. A project has ONE parent (doc). Your projects that call python3.* inherit
   py3sidecar (directly or through your own chain); keep py3sidecar-gateway as py3sidecar's
   child and do not give your projects a `py3sidecar` message handler of their own. If your
   site already has a "global" parent, make py3sidecar ITS parent (global -> py3sidecar's
   child), or make py3sidecar a child of global: either way each project sees both once.
   Tag event scripts and tag runScript() calls run in no project: they see a script library only
   when the Gateway Scripting Project (8.1: Config > Gateway Settings > Gateway Scripting
   Project (doc/forum); 8.3: the gateway settings page, unverified) inherits py3sidecar -
   point it at py3sidecar-gateway, or at your project that inherits py3sidecar.
8. Site settings: /etc/py3sidecar/ignition-site.json, a JSON object of py3sidecar.settings
   names, e.g. {{"CONNECTION_FILE": "/var/lib/py3sidecar/runtime/connection.json",
   "HEALTH_TAG_PROVIDER": "default"}}. Read by the library each time it runs on the gateway
   (gateway start, project save); an upgrade of the project never touches it. Do not edit
   py3sidecar/settings in the library: the next import replaces it.

C. Check it
-----------
- On the host: py3sidecar doctor --ignition-home <ignition>   (add --json for a machine)
  Every check with its fix: the gateway's unit and account, the sidecar's unit and whether it
  is active, the token's owner and mode, the jars (and that they are this release's), that the
  gateway's account can read connection.json and the token, ping and /readyz of the sidecar, the
  two projects and the parent of py3sidecar-gateway. Exit 0 only when all pass.
- From the shell, as the gateway's account (it reads the token through the group):
      sudo -u <gateway account> env PY3SIDECAR_RUNTIME_DIR=/var/lib/py3sidecar/runtime \\
        {python} -m sidecar ping
- On the gateway, from a gateway script (e.g. a Perspective button, or the startup script):
      print python3.selfTest()['report']     # which jar or setting is missing
  From the Script Console it checks the route and pings through the message handler.
- A call: print python3.call("statistics:mean", [[1, 2, 3]])   ->  2

D. Troubleshooting (symptom -> cause -> fix)
--------------------------------------------
- python3.Unavailable "cannot connect" -> the sidecar is down, or its ports differ from the
  settings -> `systemctl status py3sidecar`, `journalctl -u py3sidecar`; leave PY4J_PYTHON_PORT
  / ZMQ_ENDPOINT at None so they come from connection.json.
- python3.Unavailable "message handler ... of project ..." (Designer / Script Console / Vision)
  -> no `py3sidecar` handler in GATEWAY_PROJECT (py3sidecar-gateway) -> import that project
  (8.3) or create the handler (8.1, step B.6), and save.
- python3.Unavailable naming py4j / jeromq / msgpack classes, or NameError/ImportError on
  org.msgpack -> the jars are not on the gateway class path -> step B.4, restart the gateway;
  python3.selfTest() lists what is missing.
- python3.Unauthorized, or "Permission denied" on the token or connection.json -> the gateway's
  account cannot read the token -> it must be in group {group} (usermod -aG {group} <account>)
  and the gateway restarted; the token file is 0640 in that group (doctor shows owner and mode).
- python3.Forbidden -> a Designer/Vision call relayed by the handler asked for something the
  sidecar refuses to relayed requests (python3.access.routed.allow-targets) -> allow that target
  in the sidecar's config, or run the call from a gateway script.
- The sidecar does not start: "there is no account" -> python3.worker.user or
  token-group names an account that is missing -> re-run install, or create it (B.2).
- The health tags never update -> the timer is not in a runnable project, or is disabled ->
  it belongs to py3sidecar-gateway (not to the inheritable library); HealthPoll runs once per
  gateway: python3 tags from one project only is expected.
- Wrong user: the sidecar runs as the gateway's account -> it must not (user code would reach
  data/: the config database, certificates) -> use install, or the unit's User={user}.

E. Logs
-------
- The sidecar: journalctl -u py3sidecar (systemd's journal).
- The gateway: its web page's Status > Diagnostics > Logs (8.1) / Diagnostics > Logs (8.3),
  or <ignition>/logs/wrapper.log (print output of gateway scripts goes there (doc)); logger
  `python3` (py3sidecar.settings LOGGER_NAME).

F. Redundancy and containers
----------------------------
- Redundancy: the backup node runs its own gateway JVM on its own host: it needs its own
  sidecar (run install there too), its own jars (they are not synchronised (reported)) and the
  same site settings; the projects are synchronised by the gateway.
- Containers: run the sidecar in its own container (or on the host) and share with the gateway's
  container: the runtime folder /var/lib/py3sidecar/runtime (read-only for the gateway),
  /etc/py3sidecar/ignition-site.json, and the jars into <ignition>/lib/core/gateway (mounted,
  since recreating the container drops them); the token's group id must match the gateway's
  account's group inside its container. Loopback between containers needs a shared network
  namespace; otherwise see the remote-sidecar settings (PY4J_HOST + TLS, FAILOVER_SIDECARS).

G. Security: the gateway route
------------------------------
Whoever can open a Vision client or the Designer of a project can call its message handlers
(doc: Ignition puts no client permission on system.util.sendRequest), so the sidecar grants
what the `py3sidecar` handler relays only what python3.access.routed in config.yml allows:
ping and health; `call` of the targets listed in allow-targets (e.g.
["mymodule:predict", "plant.models.*"]); execute (any code, as the sidecar's user) only with
execute: true; diag, breaker and quarantine only with diag: true. Anything else raises
python3.Forbidden, naming the key to set. Gateway scripts keep full access. The handler marks
what it relays (route, project, and the user and client id the client claims, kept as
"claimed:...": Ignition gives a handler only the payload); a client can neither send nor strip
the mark. Restrict the handler itself as well: Ignition's message handler settings (Designer >
Gateway Events > Message > modify `py3sidecar`) have a Security option naming the security
zones and roles allowed to request it - allow only those that need python3 from a client.
(Documented for 8.x message handlers; not checked on an 8.3 gateway: verify it on yours.)

H. Security: encryption beyond loopback, and the audit log
-----------------------------------------------------------
On one host (the default: everything on 127.0.0.1) the token and the OS accounts are the
boundary. When the gateway and the sidecar are on two hosts, encrypt what crosses:
  - Py4J (the library's default transport): python3.bridge.py4j.tls: {{enabled: true,
    cert-file: ..., key-file: ...}} on the sidecar; on the gateway py3sidecar.settings
    PY4J_TLS_CERT = the sidecar's certificate (or its CA) and PY4J_HOST = a name in it.
  - ZeroMQ: python3.bridge.zmq.curve.enabled: true (the key pair is made in the runtime folder;
    the public key is zmq.curve.server-key of connection.json); list allowed clients in
    python3.bridge.zmq.curve.client-keys-dir. The Jython library speaks PLAIN (authenticated,
    not encrypted) over ZeroMQ: use Py4J over TLS from a remote gateway.
  - The dashboard: python3.http.tls: {{cert-file: ..., key-file: ...}} (HTTPS), and list the
    names operators type in python3.http.allowed-hosts.
Every call, refusal and operator action is one JSON line in audit.log next to the token
(python3.audit.file; rotated by size): who (peer, and the route/project/user marks of relayed
calls), what (op, pool, target, or the sha256 of executed code: never code or values), the
outcome and the duration.

I. A Windows gateway with a Linux sidecar
-----------------------------------------
The sidecar runs on Linux only (fork, pipes passed as file descriptors, Unix accounts, systemd:
docs/architecture.md "Porting to Windows"), and `py3sidecar install` is for a Linux gateway
host. A Windows gateway uses a sidecar on a Linux host over the network, Py4J over TLS (the
Jython library speaks only PLAIN to ZeroMQ, and refuses a CURVE front, saying to use py4j).
On the Linux host, as root:
1. The sidecar alone (no Ignition there): steps B.1 to B.3 (Python, accounts, config.yml and
   the unit).
2. A certificate whose subjectAltName names the host as the gateway dials it (a DNS name, or an
   IP address), signed by your CA or self-signed, e.g.
     mkdir -p /etc/py3sidecar/tls && cd /etc/py3sidecar/tls
     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \\
       -keyout sidecar.key -out sidecar.pem -subj /CN=linux1.plant.local \\
       -addext 'subjectAltName=DNS:linux1.plant.local,IP:10.0.0.5'
     chown {user} sidecar.key && chmod 0600 sidecar.key
3. In /etc/py3sidecar/config.yml:
     python3:
       bridge:
         py4j:
           host: 0.0.0.0        # or the address facing the gateway
           tls: {{enabled: true, cert-file: /etc/py3sidecar/tls/sidecar.pem,
                 key-file: /etc/py3sidecar/tls/sidecar.key}}
   Beyond loopback the token must have at least 32 characters (the generated one has 43):
   serve and `config --check` refuse a shorter one. Then systemctl restart py3sidecar.
4. Firewall: open the Py4J port (25334, python3.bridge.py4j.python-port) to the gateway's
   address only (e.g. ufw allow from 10.0.0.20 to any port 25334 proto tcp). ZeroMQ and HTTP
   stay on 127.0.0.1; CPython services on other hosts use ZeroMQ with CURVE (H).
5. The token: /var/lib/py3sidecar/runtime/token. It is kept across restarts (a new one only if
   the file is deleted). Copy it to the gateway like a password; never into a project.
On the Windows gateway:
6. Jars: jars/py4j*.jar, jars/msgpack-core.jar and jars/py3sidecar-gateway.jar into
   <ignition>\\lib\\core\\gateway, e.g. (unverified)
   C:\\Program Files\\Inductive Automation\\Ignition\\lib\\core\\gateway, then restart the
   gateway's Windows service.
7. Projects: import both in the gateway's web page as B.5; on 8.1 paste the events as B.6.
8. Site settings: C:\\ProgramData\\py3sidecar\\ignition-site.json (on Windows the library reads
   %ProgramData%\\py3sidecar\\ignition-site.json; the environment variable
   PY3SIDECAR_SITE_SETTINGS of the gateway's process names another file). It holds a token:
   let only Administrators and the gateway's service account read it (icacls). Everything
   by value, nothing read from the Linux host's files:
     {{"TRANSPORT": "py4j", "CONNECTION_FILE": null, "TOKEN_FILE": null,
      "PY4J_HOST": "linux1.plant.local", "PY4J_PYTHON_PORT": 25334,
      "PY4J_TLS_CERT": "C:\\\\ProgramData\\\\py3sidecar\\\\sidecar.pem",
      "TOKEN": "<the token of linux1>",
      "FAILOVER_SIDECARS": [{{"NAME": "linux2", "PY4J_HOST": "linux2.plant.local",
        "PY4J_PYTHON_PORT": 25334, "PY4J_TLS_CERT": "C:\\\\ProgramData\\\\py3sidecar\\\\ca.pem",
        "TOKEN": "<the token of linux2>"}}]}}
   PY4J_HOST must be a name or address in the certificate; PY4J_TLS_CERT is a copy of the
   sidecar's certificate (sidecar.pem) or of the CA that signed it (JSON doubles each \\).
   FAILOVER_SIDECARS is optional (a second Linux host). Save the project (or restart the
   gateway) to apply it.
9. Check from a gateway script: python3.selfTest()['report'], and
   python3.callFull('operator:add', [1, 2])['sidecar'] -> 'local' (the first entry is always
   called 'local', even on another host).
What the operator sees when the Linux host is down:
- No failover entry: the call raises python3.Unavailable (details: sent False, it never ran)
  within CONNECT_TIMEOUT_MS (1000 ms; a refused connection fails at once, a host that does not
  answer takes the whole timeout); then the client circuit breaker skips that host for
  BREAKER_OPEN_MS (Unavailable "client circuit breaker" in microseconds) and lets one probe
  call through. The health tags: Status UNREACHABLE, Reachable False, LastError the reason,
  ActiveSidecar '', Sidecars 'local=open(...)'; the timer never raises.
- With FAILOVER_SIDECARS: the calls are served by the next host; callFull()['sidecar'] and the
  ActiveSidecar tag name it, Sidecars reads 'local=open(...) linux2=closed'. Your code's errors
  and timeouts never fail over. When the first host is back, the first call past
  BREAKER_OPEN_MS from its last failed try probes it and brings traffic back (not at once: a
  remote gateway has no connection file to see the restart).
- A wrong certificate, or TLS on the sidecar but PY4J_TLS_CERT unset: python3.Unavailable
  naming PY4J_TLS_CERT. A wrong token: python3.Unauthorized.
"""
