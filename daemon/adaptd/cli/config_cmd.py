from __future__ import annotations

import json

import typer
import yaml

from adaptd.cli.common import ConfigOption, JsonOption, load
from adaptd.config import json_schema
from adaptd.security import mask_secrets

app = typer.Typer(help="Show the effective configuration or its JSON schema.", no_args_is_help=True)


@app.command("show")
def show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the effective configuration: file, then environment overrides, then defaults."""
    settings = load(config)
    # Passwords inside URLs (store.url, alerting.webhook_url) are masked by the one helper that
    # masks them in errors and logs too; tokens are never in the config, only where they are.
    data = json.loads(mask_secrets(settings.model_dump_json()))
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


@app.command("schema")
def schema(config: ConfigOption = None) -> None:
    """Print the JSON schema of the config file (for yaml-language-server and other editors)."""
    print(json.dumps(json_schema(), indent=2))
