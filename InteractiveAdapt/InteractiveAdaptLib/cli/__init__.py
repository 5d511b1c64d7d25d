"""The command line (`interactive-adapt`): the only place with argparse and print."""
