"""The running bot: configuration, platform adapters, the web server and the CLI."""
