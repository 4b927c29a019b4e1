from jointbus.cli import main

main()
