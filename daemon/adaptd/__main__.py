from adaptd.cli import main

main()
