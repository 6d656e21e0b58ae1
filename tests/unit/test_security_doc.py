"""docs/security.md: its kafka-acls.sh commands are well formed and grant what each role needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.security_doc import acl_commands

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
#: Kafka's ACL operations (org.apache.kafka.common.acl.AclOperation, without ANY/UNKNOWN).
OPERATIONS = {
    "All", "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
    "DescribeConfigs", "AlterConfigs", "IdempotentWrite", "CreateTokens", "DescribeTokens",
}  # fmt: skip
RESOURCE_FLAGS = {"--topic", "--group", "--cluster", "--transactional-id"}


def grants(text: str) -> set[tuple[str, str, str, str]]:
    """(principal, operation, resource kind, resource name) of every --add command."""
    found = set()
    for argv in acl_commands(text):
        assert "--add" in argv, argv
        args = argv[1:]
        principal = args[args.index("--allow-principal") + 1]
        operations = [args[i + 1] for i, a in enumerate(args) if a == "--operation"]
        (kind,) = [a for a in args if a in RESOURCE_FLAGS]
        name = args[args.index(kind) + 1]
        found |= {(principal, op, kind, name) for op in operations}
    return found


def test_every_acl_command_is_well_formed() -> None:
    """Each command adds allow rules for a User principal with known operations on one resource."""
    commands = acl_commands(DOC.read_text())
    assert len(commands) >= 5
    for argv in commands:
        assert "--bootstrap-server" in argv and "--add" in argv, argv
        principal = argv[argv.index("--allow-principal") + 1]
        assert principal.startswith("User:"), argv
        ops = [argv[i + 1] for i, a in enumerate(argv) if a == "--operation"]
        assert ops and set(ops) <= OPERATIONS, argv
        assert len([a for a in argv if a in RESOURCE_FLAGS]) == 1, argv


def test_daemon_grants_match_the_example_config() -> None:
    """The daemon reads the example's source topic and group and writes only the dead letters."""
    config = yaml.safe_load((ROOT / "examples" / "driftmon.yaml").read_text())
    found = grants(DOC.read_text())
    daemon = {g for g in found if g[0] == "User:driftmon"}
    for topic in config["kafka"]["topics"]:
        assert ("User:driftmon", "Read", "--topic", topic) in daemon
    assert ("User:driftmon", "Read", "--group", config["kafka"]["group_id"]) in daemon
    writes = {name for _, op, _, name in daemon if op in ("Write", "All")}
    assert writes <= {"driftmon.dead-letters", "driftmon.state"}, writes
    assert not {op for _, op, _, _ in daemon} & {"Create", "Delete", "Alter", "All"}


def test_operator_writes_the_registry_only() -> None:
    """The operator's only write is the reference registry; the viewer has no Kafka grant."""
    found = grants(DOC.read_text())
    operator = {g for g in found if g[0] == "User:driftmon-operator"}
    assert ("User:driftmon-operator", "Write", "--topic", "driftmon.references") in operator
    assert {name for _, op, _, name in operator if op == "Write"} == {"driftmon.references"}
    assert {g[0] for g in found} == {"User:driftmon", "User:driftmon-operator"}


def test_acl_parser_sees_a_bad_command() -> None:
    """A command with an unknown operation is caught (the checks can fail)."""
    bad = (
        "```sh\nkafka-acls.sh --bootstrap-server b --add --allow-principal User:x \\\n"
        "  --operation Reed --topic t\n```\n"
    )
    (argv,) = acl_commands(bad)
    ops = {argv[i + 1] for i, a in enumerate(argv) if a == "--operation"}
    assert not ops <= OPERATIONS
