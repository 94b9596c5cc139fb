"""`dockyard k8s generate|build|gc`: the environments on Kubernetes (kernels, Enterprise Gateway, JupyterHub, stacks).

The generated files are in frontends/k8s/; nothing here talks to a cluster but `gc` (through kubectl).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from typing import Any

from .. import engine, paths, specs
from ..config import load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..errors import DockyardError, shown
from ..frontends import k8s
from ..frontends.k8s.launcher_build import build_launcher
from ..frontends.k8s.launcher_image import launcher_alias
from ..frontends.k8s.manifest_parts import GPU_RESOURCE, K8sOptions
from ..frontends.k8s.orphans import SELECTOR, orphans
from ..images.build import build
from ..images.plan import make_plan
from ..registry import transfer
from ..specs.stacks import load_all_stacks
from .progress import RichReporter
from .shared import SubParsers, add_build_flags, add_generate_flags, build_options, console, sync_generated

DEFAULT_DIR = paths.checkout_dir(k8s.DIRNAME)


def register(sub: SubParsers) -> None:
    c = sub.add_parser("k8s", help="Kubernetes: kernelspecs, Enterprise Gateway and JupyterHub values, stack manifests")
    c_sub = c.add_subparsers(dest="k8s_command", metavar="ACTION", required=True)

    p = c_sub.add_parser("generate", help="write k8s/ (kernelspecs, cluster objects, Helm values, stack manifests)")
    add_generate_flags(p, "--dir", DEFAULT_DIR, "where the files go (default: k8s/ of the dockyard checkout)")
    p.add_argument("--registry", default="", metavar="PREFIX", help="image name prefix, e.g. registry.example.com/team")
    p.add_argument("--namespace", default="dockyard", help="namespace of kernels and stacks (default: dockyard)")
    p.add_argument("--runtime-class", default="", metavar="NAME", help="runtime class of GPU pods, e.g. nvidia")
    p.add_argument(
        "--toleration",
        action="append",
        metavar="KEY[=VALUE]:EFFECT",
        help=f"toleration of GPU pods (repeatable; default {GPU_RESOURCE}:NoSchedule; 'none' for none)",
    )
    p.add_argument("--max-gpus", type=int, default=1, help="most GPUs a kernel may ask for with KERNEL_GPUS (1)")
    p.add_argument(
        "--kernels-dir",
        default=K8sOptions.kernels_dir,
        metavar="DIR",
        help=f"where the server has the kernelspecs (default: {K8sOptions.kernels_dir})",
    )
    p.set_defaults(func=cmd_generate)

    p = c_sub.add_parser(
        "build",
        help="build environment images and their launcher images (<image>-gp); with registry.host set, push both "
        "(the cluster pulls them: 'k8s generate --registry HOST[/PREFIX]')",
    )
    p.add_argument("refs", nargs="+", metavar="ENV[:VARIANT]")
    add_build_flags(p)
    p.set_defaults(func=cmd_build)

    p = c_sub.add_parser("gc", help="delete kernel pods whose server pod is gone or whose kernel ended (kubectl)")
    p.add_argument("--namespace", default="dockyard", help="namespace to clean (default: dockyard)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_gc)


def k8s_options(args: argparse.Namespace) -> K8sOptions:
    tolerations = args.toleration if args.toleration is not None else [f"{GPU_RESOURCE}:NoSchedule"]
    return K8sOptions(
        registry=args.registry,
        namespace=args.namespace,
        runtime_class=args.runtime_class,
        tolerations=tuple(t for t in tolerations if t != "none"),
        max_gpus=args.max_gpus,
        kernels_dir=args.kernels_dir,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    return sync_generated(
        k8s.tree(specs.load_all(), load_all_stacks(), args.dir, k8s_options(args)),
        check=args.check,
        complete=True,
        what="Kubernetes folder(s)",
        command="dockyard k8s generate",
    )


def cmd_build(args: argparse.Namespace) -> int:
    options, registry = build_options(args), load_settings().registry
    client = engine.client(timeout=3600)
    for ref in args.refs:
        spec, variant = specs.resolve(ref)
        plan = make_plan(spec, variant, options)
        if not (registry.pull_first and transfer.pull_first(client, plan, registry, _say)):
            with RichReporter(console, variant.ref) as reporter:
                build(client, plan, options, reporter)
        tag, built = build_launcher(client, plan.tag, plan.alias, options, _say)
        alias = launcher_alias(plan.alias)
        console.print(f"[green]{'built' if built else 'up to date'}[/] {escape(tag)} (and {escape(alias)})")
        if registry.host:  # the nodes pull what the generated manifests name
            transfer.push(client, plan, registry)
            transfer.push_image(
                client, client.images.get(tag), (registry.remote(tag), registry.remote(alias)), registry, _say
            )
            console.print(f"[green]pushed[/] {escape(registry.remote(plan.tag))} and {escape(registry.remote(tag))}")
    return 0


def _say(line: str) -> None:
    console.print(escape(line), soft_wrap=True)


def _kubectl(*args: str) -> str:
    if shutil.which("kubectl") is None:
        raise DockyardError("kubectl is not on PATH", fix="install kubectl and point it at the cluster (KUBECONFIG)")
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DockyardError(
            f"kubectl {' '.join(args)} failed: {shown(done.stderr.strip(), 300)}",
            fix="check the context (kubectl config current-context) and your rights in that namespace",
        )
    return done.stdout


def _kubectl_items(*args: str) -> list[dict[str, Any]]:
    """`kubectl get ... --output json`'s items."""
    items: list[dict[str, Any]] = json.loads(_kubectl(*args, "--output", "json")).get("items", [])
    return items


def cmd_gc(args: argparse.Namespace) -> int:
    ns = args.namespace
    kernels = _kubectl_items("get", "pods", "--namespace", ns, "--selector", SELECTOR)
    live = {p["metadata"]["name"] for p in _kubectl_items("get", "pods", "--namespace", ns)}
    found = orphans(kernels, live)
    for orphan in found:
        console.print(
            f"{'would delete' if args.dry_run else 'deleting'} pod {escape(orphan.name)}: {escape(orphan.reason)}"
        )
        if not args.dry_run:
            _kubectl("delete", "pod", orphan.name, "--namespace", orphan.namespace, "--wait=false")
    console.print(f"{len(found)} orphaned kernel pod(s) of {len(kernels)} in namespace {escape(ns)}")
    return 0
