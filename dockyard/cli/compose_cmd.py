"""`dockyard compose generate|up|down|logs|verify`: JupyterLab in an environment's image, and stacks of services."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
from rich.table import Table

from .. import engine, paths, specs
from ..config import BuildOptions, load_settings
from ..emit import shell
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import ComposeError
from ..frontends import compose
from ..frontends.compose_run import (
    Target,
    client_environment,
    compose_command,
    ensure_state,
    find_target,
    forget_state,
    load_state,
    project_containers,
    running_container,
    variables,
)
from ..generated import Tree
from ..images.build import build
from ..images.plan import make_plan
from ..registry import transfer
from ..specs.stacks import load_all_stacks
from .progress import RichReporter
from .shared import SubParsers, add_build_flags, add_generate_flags, build_options, console, sync_generated

DEFAULT_DIR = paths.checkout_dir(compose.DIRNAME)


def register(sub: SubParsers) -> None:
    c = sub.add_parser(
        "compose",
        help="Compose files from the specs: JupyterLab in an environment's image (lab-ENV), stacks (stacks/NAME)",
    )
    c_sub = c.add_subparsers(dest="compose_command", metavar="ACTION", required=True)

    p = c_sub.add_parser("generate", help="write compose/lab-<env>[-<variant>]/ and compose/<stack>/ from the specs")
    add_generate_flags(
        p, "--dir", DEFAULT_DIR, "where the compose folders go (default: compose/ of the dockyard checkout)"
    )
    p.set_defaults(func=cmd_generate)

    def target_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = c_sub.add_parser(name, help=help)
        p.add_argument("target", metavar="TARGET", help="a stack (e.g. pipeline) or a lab (lab-ENV[-VARIANT])")
        p.add_argument("-p", "--project-name", metavar="NAME", help="Compose project name (default: dockyard-TARGET)")
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR, metavar="DIR", help="the compose folders (./compose)")
        return p

    p = target_parser("up", "build what is missing, start the project, wait for its jobs (and the lab's health)")
    p.add_argument("--port", type=int, default=compose.LAB_PORT, help="lab: the port on 127.0.0.1 (default 8888)")
    p.add_argument("--workspace", type=Path, default=Path("."), help="lab: the folder to open (default: .)")
    p.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait, once started, for jobs and health (default 900)"
    )
    add_build_flags(p)
    p.set_defaults(func=cmd_up)

    p = target_parser("down", "stop and remove the project's containers and network")
    p.add_argument("-v", "--volumes", action="store_true", help="also remove its volumes (data!) and secrets")
    p.set_defaults(func=cmd_down)

    p = target_parser("logs", "print the project's logs")
    p.add_argument("services", nargs="*", metavar="SERVICE")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=cmd_logs)

    p = target_parser("env", 'print the stack\'s client variables (export lines): eval "$(dockyard compose env NAME)"')
    p.set_defaults(func=cmd_env)

    p = target_parser("verify", "run the stack's checks against its running services; exit 1 when one fails")
    p.set_defaults(func=cmd_verify)


def cmd_generate(args: argparse.Namespace) -> int:
    return sync_generated(
        compose.tree(specs.load_all(), load_all_stacks(), args.dir),
        check=args.check,
        complete=True,
        what="compose project(s)",
        command="dockyard compose generate",
    )


def _project(args: argparse.Namespace) -> str:
    return str(args.project_name or f"dockyard-{args.target}")


def _prepare(args: argparse.Namespace) -> tuple[Target, Path]:
    """The target and its compose file, (re)written from the specs so what runs is what the specs say."""
    target = find_target(args.target)
    tree = Tree(target.files(args.dir), args.dir, compose.owned)
    for path in tree.write(complete=False):
        console.print(f"[green]wrote[/] {escape(str(path))}", soft_wrap=True)
    return target, target.compose_file(args.dir)


def _compose(project: str, file: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Compose itself, its output straight to the terminal; env fills the file's ${DOCKYARD_...} variables."""
    cmd = [*compose_command(), "--project-name", project, "--file", str(file), *args]
    return subprocess.run(cmd, env={**os.environ, **env}, text=True, check=False)


def _build_envs(target: Target, options: BuildOptions) -> dict[str, str]:
    """Build (or find) the environment images the target runs on; returns service → content tag."""
    wanted: dict[str, tuple[specs.Spec, specs.Variant]] = {}
    if target.stack is not None:
        for name, service in target.stack.services.items():
            if service.env:
                wanted[name] = specs.resolve(service.env)
    else:
        wanted["lab"] = target.lab
    client = engine.client(timeout=3600)
    registry = load_settings().registry
    tags: dict[str, str] = {}
    done: dict[str, str] = {}
    for name, (spec, variant) in wanted.items():
        if variant.ref not in done:
            plan = make_plan(spec, variant, options)
            if not (registry.pull_first and transfer.pull_first(client, plan, registry, _say)):
                with RichReporter(console, variant.ref) as reporter:
                    result = build(client, plan, options, reporter)
                console.print(f"[green]{'built' if result.built else 'up to date'}[/] {result.tag}", soft_wrap=True)
            done[variant.ref] = plan.tag
        tags[name] = done[variant.ref]
    return tags


def _say(line: str) -> None:
    console.print(escape(line), soft_wrap=True)


def _wait_jobs(client: docker.DockerClient, target: Target, project: str, deadline: float) -> None:
    """Wait for the stack's `once` services to finish; a failed one is an error showing its last lines."""
    assert target.stack is not None
    for name, service in target.stack.services.items():
        if not service.once:
            continue
        found = project_containers(client, project, name)
        if not found:
            raise ComposeError(
                f"Job '{name}' of project '{project}' has no container", fix="see 'dockyard compose logs'"
            )
        container = found[0]
        try:
            status = container.wait(timeout=max(1.0, deadline - time.monotonic()))["StatusCode"]
        except Exception:
            raise ComposeError(
                f"Job '{name}' of project '{project}' did not finish in time",
                fix=f"see 'dockyard compose logs {target.name} {name}', or give up --timeout more seconds",
            ) from None
        if status != 0:
            tail = container.logs(tail=15).decode(errors="replace").strip().replace("\n", " | ")
            raise ComposeError(
                f"Job '{name}' of project '{project}' exited with status {status}: {tail}",
                fix=f"read 'dockyard compose logs {target.name}', fix the cause, then run 'up' again",
            )
        console.print(f"[green]job finished[/] {name}")


def _wait_healthy(client: docker.DockerClient, project: str, service: str, deadline: float) -> None:
    while True:
        found = project_containers(client, project, service)
        health = found[0].attrs.get("State", {}).get("Health", {}).get("Status") if found else None
        if health == "healthy":
            return
        if found and (found[0].status in ("exited", "restarting") or found[0].attrs.get("RestartCount")):
            tail = found[0].logs(tail=15).decode(errors="replace").strip().replace("\n", " | ")
            raise ComposeError(f"Service '{service}' of project '{project}' exited: {tail}", fix="read its logs")
        if time.monotonic() > deadline:
            raise ComposeError(
                f"Service '{service}' of project '{project}' is not healthy (health: {health})",
                fix="read 'dockyard compose logs', or give up --timeout more seconds",
            )
        time.sleep(1)
        for c in found:
            c.reload()


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    options = build_options(args)
    target, file = _prepare(args)
    project = _project(args)
    if target.stack is None and not args.workspace.is_dir():
        raise ComposeError(f"Workspace {args.workspace} is not a folder", fix="give --workspace an existing folder")
    tags = _build_envs(target, options)
    state = ensure_state(project, target)
    env = variables(target, options, tags, state, port=args.port, workspace=args.workspace)
    if _compose(project, file, env, "up", "--detach").returncode != 0:
        raise ComposeError(
            f"Compose could not start project '{project}' ({file})",
            fix=f"read the messages above; 'dockyard compose down {target.name}' removes what did start",
        )
    client = engine.client()
    deadline = time.monotonic() + args.timeout  # builds above do not count
    if target.stack is not None:
        _wait_jobs(client, target, project, deadline)
        console.print(
            f"[green]up[/] {project} in {time.monotonic() - started:.1f}s; check it with "
            f"'dockyard compose verify {target.name}'"
        )
    else:
        _wait_healthy(client, project, "lab", deadline)
        url = f"http://127.0.0.1:{args.port}/lab?token={state['secrets']['lab_token']}"
        console.print(f"[green]JupyterLab is up[/] in {time.monotonic() - started:.1f}s: {escape(url)}", soft_wrap=True)
        console.print(f"(from another machine: ssh -L {args.port}:127.0.0.1:{args.port} THIS_HOST, then open that URL)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    file = _prepare(args)[1]
    project = _project(args)
    extra = ["--volumes"] if args.volumes else []
    if _compose(project, file, {}, "down", "--remove-orphans", *extra).returncode != 0:
        raise ComposeError(f"Compose could not remove project '{project}'", fix="read the messages above")
    if args.volumes:
        forget_state(project)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    file = _prepare(args)[1]
    extra = ["--follow"] if args.follow else []
    return _compose(_project(args), file, {}, "logs", "--no-color", *extra, *args.services).returncode


def cmd_verify(args: argparse.Namespace) -> int:
    target = find_target(args.target)
    if target.stack is None or not target.stack.checks:
        raise ComposeError(f"'{args.target}' has no checks to verify", fix="add a verify: section to its stack file")
    project = _project(args)
    container = running_container(engine.client(), project, target.stack.verify_service or "", target.name)
    table = Table(title=f"verify {project}")
    for col in ("check", "value", "expected", "result"):
        table.add_column(col)
    failed = 0
    for check in target.stack.checks:
        code, (out, err) = container.exec_run(list(check.command), demux=True)
        text = (out or b"").decode(errors="replace").strip()
        try:
            value: float | None = float(text)
        except ValueError:
            value = None
        ok = code == 0 and value is not None and check.judge(value)
        failed += not ok
        shown = text if value is not None else f"exit {code}: {(err or out or b'').decode(errors='replace').strip()}"
        table.add_row(
            escape(check.name), escape(shown[:200]), check.expectation, "[green]pass[/]" if ok else "[red]FAIL[/]"
        )
    console.print(table)
    if failed:
        console.print(f"[red]{failed} of {len(target.stack.checks)} checks failed[/]")
        return 1
    console.print(f"[green]all {len(target.stack.checks)} checks passed[/]")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Plain export lines on stdout (for eval), nothing else: the password is in them, so never logged."""
    target = find_target(args.target)
    project = _project(args)
    values = client_environment(engine.client(), target, project, load_state(project))
    sys.stdout.write("".join(f"export {k}={shell.word(v)}\n" for k, v in values.items()))
    return 0
