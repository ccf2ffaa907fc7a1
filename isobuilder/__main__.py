from isobuilder.cli import run

run()
