# Gateway Events > Timer > new timer script: py3sidecar-healthpoll
# Delay 10000 ms, Fixed Delay, Dedicated thread, Enabled. Writes the health tags
# (py3sidecar.settings HEALTH_TAG_PROVIDER / HEALTH_TAG_FOLDER); never raises.
py3sidecar.healthpoll.run()
