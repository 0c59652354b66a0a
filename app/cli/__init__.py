"""The `arbiter` command line (typer). ``main`` builds it; each module here that defines
``register(cli, groups)`` adds its commands."""
