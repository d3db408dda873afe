from lossdx.cli import run

run()
