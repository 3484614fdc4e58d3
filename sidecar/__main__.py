from sidecar.cli.commands import main

main()
