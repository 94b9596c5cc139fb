"""Kubernetes: the same environment images as kernels on a cluster (gateway_provisioners' KubernetesProvisioner or
Enterprise Gateway), as JupyterHub profiles, and the stacks as manifests; generated into k8s/.

    k8s/launcher/                 the one launcher wrapper and pod template every kernelspec names
    k8s/kernels/<kernel>-k8s/     kernelspecs for gateway_provisioners (kernel.json: argv, the pod's values)
    k8s/cluster/                  namespace, service accounts + namespace-scoped Role, image pre-pull DaemonSets
    k8s/enterprise-gateway/       Helm values, the gateway image's Dockerfile, its kernelspecs
    k8s/jupyterhub/               singleuser.profileList values, the single-user image's Dockerfile
    k8s/images/                   the launcher image's Dockerfile (`dockyard k8s build` builds it)
    k8s/<stack>/                  a stack's manifests and its verify script

Rooms: common (options, labels, hardening) · podtemplate · kernelspecs · launcher_image · cluster · gateway ·
jupyterhub · pipeline · orphans (what `dockyard k8s gc` removes). No I/O but reading the stack's own files.
"""

from __future__ import annotations

from pathlib import Path

from ...emit import jupyter
from ...generated import Tree, marked
from ...specs import Spec
from ...specs.stacks import Stack
from . import cluster, gateway, jupyterhub, kernelspecs, launcher_image, pipeline
from .manifest_parts import MARKER, K8sOptions, dump, header

DIRNAME = "k8s"


def render_all(specs: list[Spec], stacks: list[Stack], options: K8sOptions) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    variants = [(s, v) for s in specs for v in s.variants.values()]
    for spec, variant in variants:
        for rel, data in kernelspecs.files(spec, variant, options).items():
            out[f"kernels/{rel}"] = data
        folder = kernelspecs.k8s_kernel_name(spec, variant)
        eg_json = gateway.kernel_json(spec, variant, options)
        out[f"enterprise-gateway/kernels/{folder}/kernel.json"] = jupyter.dumps(eg_json).encode()
    for name, data in kernelspecs.launcher_files().items():
        out[f"launcher/{name}"] = data
    src = "envs/*.yaml"
    out["cluster/namespace.yaml"] = dump(header(src), cluster.namespace(options))
    out["cluster/rbac.yaml"] = dump(header(src), *cluster.rbac(options))
    out["cluster/prepull.yaml"] = dump(header(src), *cluster.prepull(specs, options))
    out["enterprise-gateway/values.yaml"] = dump(header(src), gateway.values(specs, options))
    out["enterprise-gateway/Dockerfile"] = gateway.dockerfile(options).encode()
    out["jupyterhub/profiles.yaml"] = dump(header(src), jupyterhub.values(specs, options))
    out["jupyterhub/Dockerfile"] = jupyterhub.dockerfile().encode()
    out["images/launcher.Dockerfile"] = launcher_image.dockerfile().encode()
    for stack in stacks:
        source = f"stacks/{stack.name}/{stack.path.name}"
        for name, objects in pipeline.manifests(stack, options).items():
            out[f"{stack.name}/{name}"] = dump(header(source), *objects)
        if stack.checks:
            out[f"{stack.name}/verify.sh"] = pipeline.verify_script(stack, options, source).encode()
    return dict(sorted(out.items()))


def owned(folder: Path) -> list[Path]:
    """Files dockyard wrote under folder: its marker within the first lines (hand-written files are never touched)."""
    return marked(sorted(p for p in folder.rglob("*") if p.is_file()), MARKER, at_start=False)


def tree(specs: list[Spec], stacks: list[Stack], out_dir: Path, options: K8sOptions) -> Tree:
    return Tree(render_all(specs, stacks, options), out_dir, owned)
