"""The `kafka-acls.sh` commands of docs/security.md, as argument lists."""

from __future__ import annotations

import re
import shlex

from tests.support.ops_services import REPO_ROOT

SECURITY_DOC = REPO_ROOT / "docs" / "security.md"


def acl_commands(text: str) -> list[list[str]]:
    """Every `kafka-acls.sh` command of the ```sh blocks of `text`, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    joined = "\n".join(re.sub(r"\\\n\s*", " ", b) for b in blocks)
    return [
        shlex.split(line, comments=True)
        for line in joined.splitlines()
        if line.strip().startswith("kafka-acls.sh")
    ]
