from tcpsift.cli.main import main

main()
