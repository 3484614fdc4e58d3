def handleTimerEvent():
	py3sidecar.healthpoll.run()
