from commcentre.cli import main

main()
