"""`dockyard doctor`: is this machine ready to build and run dockyard environments?"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from typing import Any

import docker

from .. import engine, gpu, specs
from ..config import BuildOptions, load_settings
from ..emit.terminal import safe as escape  # the one way a value reaches the terminal
from ..engine import capabilities, find_image
from ..errors import DockyardError
from ..frontends import devcontainer
from ..images import preflight, prune
from ..images.context import ca_certificates
from .shared import SubParsers, console

_MARK = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]", "info": "[blue]info[/]"}


@dataclass
class DoctorCheck:
    status: str
    what: str
    detail: str
    fix: str = ""


def register(sub: SubParsers) -> None:
    p = sub.add_parser("doctor", help="check the Docker engine, GPU support, disk, proxy and CA settings")
    p.set_defaults(func=cmd_doctor)


def _images_check(client: docker.DockerClient) -> DoctorCheck:
    entries = prune.survey(client)
    superseded = [e for e in entries if not e.keep]
    detail = (
        f"{len(entries)} dockyard images, {sum(e.size for e in entries) / 1e9:.2f} GB; {len(superseded)} superseded "
        f"(up to {prune.reclaimable(entries) / 1e9:.2f} GB reclaimable)"
    )
    return DoctorCheck(
        "info", "images", detail, "dockyard images prune --dry-run, then without it" if superseded else ""
    )


def checks() -> list[DoctorCheck]:
    out: list[DoctorCheck] = []
    try:
        settings = load_settings()
        out.append(DoctorCheck("pass", "config", settings.source))
    except DockyardError as exc:
        return [DoctorCheck("fail", "config", exc.problem, exc.fix or "")]
    b = settings.build
    try:
        client = engine.client(timeout=10)
    except DockyardError as exc:
        out.append(DoctorCheck("fail", "docker engine", exc.problem, exc.fix or ""))
        client = None
    if client is not None:
        info = client.info()
        version = client.version()
        caps = capabilities.detect(client)
        out.append(
            DoctorCheck(
                "pass",
                "docker engine",
                f"{engine.describe_host()}: {caps.describe} (API {version.get('ApiVersion')})",
            )
        )
        if caps.podman:
            from .doctor_podman import podman_checks  # Podman's own checks: storage, init, subuid, socket, limits

            out += [DoctorCheck(*row) for row in podman_checks(caps)]
        else:
            driver = info.get("Driver", "?")
            out.append(
                DoctorCheck(
                    "pass" if driver in ("overlay2", "overlayfs", "btrfs", "zfs") else "warn",
                    "storage driver",
                    driver,
                    "" if driver != "vfs" else "vfs copies every layer: builds are slow and big; use overlay2",
                )
            )
        out += gpu_checks(client, info)
        root = info.get("DockerRootDir", "/var/lib/docker")
        try:
            free = shutil.disk_usage(root).free / 1e9
            status = "pass" if free > 30 else ("warn" if free > 10 else "fail")
            fix = (
                ""
                if status == "pass"
                else "CUDA images need 10-20 GB each; free space, e.g. 'dockyard images prune' (superseded builds)"
            )
            out.append(DoctorCheck(status, "free disk", f"{free:.0f} GB free under {root}", fix))
        except OSError:
            out.append(DoctorCheck("info", "free disk", f"cannot read {root} from here (remote engine?)"))
        out.append(_images_check(client))
        for upstream, local in b.base_overrides.items():
            found = find_image(client, local) is not None
            out.append(
                DoctorCheck(
                    "pass" if found else "fail",
                    "base override",
                    f"{upstream} → {local}" + ("" if found else " (image missing)"),
                    "" if found else f"build or load {local}, e.g. scripts/make-base-image.sh",
                )
            )
    proxies = ", ".join(f"{k}={v}" for k, v in b.proxy.items())
    out.append(DoctorCheck("info", "proxy", proxies or "no proxy variables set"))
    try:
        n = len(ca_certificates(b))
        if n:
            out.append(
                DoctorCheck(
                    "pass",
                    "CA certificates",
                    f"{n} certificate(s) from {', '.join(map(str, b.ca_certs))}; images install those their base "
                    "does not already trust",
                )
            )
        else:
            out.append(
                DoctorCheck(
                    "info",
                    "CA certificates",
                    "none added to images",
                    "behind a TLS-intercepting proxy add its CA: --ca-cert, DOCKYARD_CA_CERTS or build.ca_certs",
                )
            )
    except DockyardError as exc:
        out.append(DoctorCheck("fail", "CA certificates", exc.problem, exc.fix or ""))
    if b.wheelhouse:
        n = len(list(b.wheelhouse.glob("*.whl")))
        out.append(
            DoctorCheck(
                "pass" if n else "warn",
                "wheelhouse",
                f"{b.wheelhouse}: {n} wheel(s)",
                "" if n else "the directory has no .whl files",
            )
        )
    out += index_checks(b, client)
    return out


def index_checks(b: BuildOptions, client: docker.DockerClient | None) -> list[DoctorCheck]:
    """Every package index some build would use, asked at once with the images' trust (images/preflight.py)."""
    try:
        all_specs = specs.load_all()
    except DockyardError as exc:
        return [DoctorCheck("fail", "package index", exc.problem, exc.fix or "")]
    targets: dict[tuple[str, str], preflight.Index] = {}  # (base image, url): the trust differs by base
    users: dict[str, list[str]] = {}
    for s in all_specs:
        for v in s.variants.values():
            for index in preflight.indexes(s, v, b):
                targets.setdefault((b.base_for(v.base), index.url), index)
                users.setdefault(index.url, []).append(v.ref)
    out = []
    results: list[preflight.Probe] = []
    for base in sorted({base for base, _ in targets}):
        roots, source = preflight.image_roots(client, base)
        out.append(DoctorCheck("info", "image trust", f"indexes for {base} are asked trusting {source} + the CA files"))
        try:
            results += preflight.probe([i for (b2, _), i in targets.items() if b2 == base], b, roots)
        except DockyardError as exc:  # the CA files themselves are broken: reported above
            return [DoctorCheck("fail", "package index", exc.problem, exc.fix or "")]
    for r in results:
        refs = users[r.index.url]
        used_by = ", ".join(refs[:4]) + (f" and {len(refs) - 4} more" if len(refs) > 4 else "")
        if r.problem is None:
            out.append(DoctorCheck("pass", "package index", f"{r.index.url} answers (for {used_by})"))
            continue
        detail = f"{r.index.url} ({r.index.origin}, for {used_by}): {r.problem}"
        out.append(DoctorCheck("fail", "package index", detail, preflight.fixes([r])))
    if b.ignore_spec_indexes:
        out.append(DoctorCheck("info", "package index", "the specs' own indexes are skipped (ignore_spec_indexes)"))
    return out


def gpu_checks(client: Any, info: dict[str, Any]) -> list[DoctorCheck]:
    """The engine's GPU verdict (probed afresh), each CUDA variant's needs against the GPUs, dev container parity."""
    verdict = gpu.assess(client, info, fresh=True)
    out = [DoctorCheck("info", "GPU engine", verdict.engine)]
    if not verdict.usable:
        out.append(DoctorCheck("info", "GPU", f"none: {verdict.reason}; CUDA variants run on the CPU", verdict.fix))
    else:
        out.append(DoctorCheck("pass", "GPU", verdict.reason))
        try:
            variants = [v for s in specs.load_all() for v in s.variants.values()]
        except DockyardError as exc:
            variants = []
            out.append(DoctorCheck("fail", "GPU needs", exc.problem, exc.fix or ""))
        for v in variants:
            if v.cuda is None:
                continue
            older = [o.ref for o in variants if o.env == v.env and o.cuda and o.cuda.major < v.cuda.major]
            problems = gpu.check(v.cuda, verdict.gpus, v.ref, older)
            if problems:
                out += [DoctorCheck("warn", "GPU needs", f"{v.ref}: {p}", f) for p, f in problems]
            elif verdict.gpus:
                out.append(DoctorCheck("pass", "GPU needs", f"{v.ref}: {v.cuda.describe()} met"))
            else:
                out.append(DoctorCheck("info", "GPU needs", f"{v.ref}: {v.cuda.describe()}; driver and card unknown"))
    advice = devcontainer.gpu_advice(verdict, info)
    if advice is None:
        out.append(
            DoctorCheck("pass", "devcontainer GPU", "the Dev Containers default (gpuAvailability: detect) matches")
        )
    else:
        out.append(DoctorCheck("warn", "devcontainer GPU", *advice))
    return out


def cmd_doctor(args: argparse.Namespace) -> int:
    results = checks()
    for c in results:
        line = f"{_MARK[c.status]}  {c.what:<16} {escape(c.detail)}"
        if c.fix:
            line += f"\n      [dim]fix: {escape(c.fix)}[/]"
        console.print(line, soft_wrap=True)
    return 1 if any(c.status == "fail" for c in results) else 0
