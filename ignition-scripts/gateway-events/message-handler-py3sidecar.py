# Gateway Events > Message > new handler named: py3sidecar
# (Threading: Shared is fine; the call's own timeout bounds it.) It lets Designer, Script
# Console and Vision client code use python3.* : those scopes send their calls here with
# system.util.sendRequest, and this handler makes the call on the gateway.
return py3sidecar.gatewayroute.handle(payload)
