# Gateway Events > Startup: open the shared sidecar connection now, so the first python3.*
# call of a gateway script does not pay for it. The sidecar may start after the gateway: a
# failure here is only logged (the library reconnects by itself).
try:
    python3.ping()
except python3.Python3Error, e:
    system.util.getLogger('python3').info('py3sidecar not reachable at gateway start (%s); '
                                          'the first call will connect' % e)
