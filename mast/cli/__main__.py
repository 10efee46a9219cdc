from mast.cli import main

main()
