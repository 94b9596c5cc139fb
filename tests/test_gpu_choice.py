"""Choosing GPUs without a GPU: recorded `nvidia-smi -L` / `-q` answers (tests/data/gpu/smi/, constructed in the
real format, see its README), the choice's forms, and the exact device request each engine setup is sent for the
leased devices (Docker's NVIDIA hook, CDI, Podman's arguments, Compose), the sharing variables in the container's
config. The ledger itself, with real processes on the real engine, is tests/test_gpu_leases.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import _create_container_args

from dockyard import gpu
from dockyard.config import load_settings
from dockyard.engine.gpu_info import read_info
from dockyard.errors import DockyardError
from dockyard.gpu import ledger, verdict
from dockyard.gpu.choice import (
    GpuChoice,
    cdi_names,
    compose_devices,
    parse,
    podman_args,
    requests_for,
    sharing_environment,
)
from dockyard.gpu.devices import Device, parse_list, parse_memory
from dockyard.gpu.listing import overview
from dockyard.kernel.container import create_kwargs
from dockyard.kernel.gpu_lease import KernelGpus, choice_of
from dockyard.kernel.provisioner import DockerProvisioner
from dockyard.kernel.target import Request

from .helpers import assert_one_paragraph, make_kernel_container
from .test_gpu import SETUPS, RecordedEngine, recorded_info

SMI = Path(__file__).with_name("data") / "gpu" / "smi"
SHARING = ("TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE", "PYTORCH_CUDA_ALLOC_CONF")


def inventory(setup: str) -> list[Device]:
    return parse_list((SMI / f"{setup}-L.txt").read_text(), parse_memory((SMI / f"{setup}-q.txt").read_text()))


# --- the recorded answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "count", "name"), [("1gpu", 1, "RTX 4090"), ("4gpu", 4, "A6000"), ("8gpu", 8, "H100")]
)
def test_whole_gpus_are_listed_with_uuid_and_memory(setup, count, name):
    devices = inventory(setup)
    assert [d.index for d in devices] == [str(i) for i in range(count)]
    assert len({d.uuid for d in devices}) == count
    assert all(d.uuid.startswith("GPU-") and name in d.name and not d.mig for d in devices)
    q = (SMI / f"{setup}-q.txt").read_text()
    assert all(f"GPU UUID                              : {d.uuid}" in q for d in devices)  # -L and -q agree
    assert all(d.memory_mib and d.memory_mib > 20000 for d in devices)


def test_a_gpu_in_mig_mode_is_leased_by_its_mig_devices():
    devices = inventory("mig")
    assert [d.index for d in devices] == ["0:0", "0:1", "0:2", "1"]
    assert [d.mig for d in devices] == [True, True, True, False]
    assert devices[1].name == "MIG 2g.10gb on NVIDIA A100-SXM4-40GB"
    assert devices[3].memory_mib == 40960  # the GPU's own framebuffer, not a MIG device's
    assert parse("device:0:1", "t").devices == ("0:1",)
    assert devices[1].matches("0:1")
    assert devices[1].matches(devices[1].uuid.lower())


def test_the_probe_lists_devices_and_the_cache_keeps_them(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(verdict, "_memo", {})
    rows = "580.95.05, 8.6, NVIDIA RTX A6000\n" * 4 + (SMI / "4gpu-L.txt").read_text()
    engine = RecordedEngine(recorded_info("hook-only-cdi-off"), {"--gpus": rows})
    v = gpu.assess(engine, engine.info())
    assert [d.index for d in v.devices] == ["0", "1", "2", "3"]
    assert len(v.gpus) == 4  # the query's rows still parse beside the listing
    monkeypatch.setattr(verdict, "_memo", {})
    assert gpu.assess(engine, engine.info()).devices == v.devices  # from the file cache
    old = {k: w for k, w in v.to_json().items() if k != "devices"}  # a cache written before leases
    assert verdict.Verdict.from_json(old).devices == ()


# --- the choice --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", GpuChoice("all")),
        ("", GpuChoice("all")),
        ("any-free", GpuChoice("count", count=1)),
        ("3", GpuChoice("count", count=3)),
        ("device:0,2", GpuChoice("devices", devices=("0", "2"))),
        (
            "MIG-7167ec48-d39a-af8a-1c63-91bb400d5620",
            GpuChoice("devices", devices=("MIG-7167ec48-d39a-af8a-1c63-91bb400d5620",)),
        ),
        ("shared", GpuChoice("shared")),
        ("shared:1@0.25", GpuChoice("shared", devices=("1",), fraction=0.25)),
    ],
)
def test_choices(text, expected):
    assert parse(text, "t") == expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("0,2", "mixes a count with devices"),
        ("shared@1.5", "not a number in (0, 1]"),
        ("gpu7", "'gpu7' is not a GPU"),
        ("device:1,1", "names a device twice"),
        ("shared:x\x1b[2J", "is not a GPU index"),
    ],
)
def test_bad_choices_are_one_paragraph_naming_where(text, said):
    with pytest.raises(DockyardError) as err:
        parse(text, "DOCKYARD_GPUS")
    assert_one_paragraph(str(err.value), "DOCKYARD_GPUS", said, "any-free")
    assert "\x1b" not in str(err.value)


def test_kernelspec_choice_beats_the_settings_and_is_a_provisioner_key(monkeypatch):
    monkeypatch.setenv("DOCKYARD_GPUS", "2")
    monkeypatch.setenv("DOCKYARD_GPU_WAIT", "30")
    settings = load_settings()
    assert choice_of(Request(), settings) == (GpuChoice("count", count=2), 30.0)
    assert choice_of(Request(gpus="shared", gpu_wait=0), settings) == (GpuChoice("shared"), 0.0)
    DockerProvisioner(kernel_id="k", gpus="any-free", gpu_wait=5.0)  # known keys: no "Unknown key" error
    monkeypatch.setenv("DOCKYARD_GPUS", "device:")
    with pytest.raises(DockyardError, match="DOCKYARD_GPUS"):
        load_settings()


# --- exactly these devices, per engine setup ----------------------------------------------------------------


def _sent(kc: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    args = _create_container_args({**create_kwargs(kc), "version": "1.44"})
    return args["host_config"].get("DeviceRequests", []), args["environment"]


def _leased(devices: list[Device], method: str | None, info: dict[str, Any], choice: GpuChoice) -> KernelGpus:
    """A kernel's lease state as KernelGpus.take leaves it (the ledger's part is tests/test_gpu_leases.py)."""
    holder = ledger.Holder("k", "c", "", "u", "e", "h:1:1")
    held = [ledger.Lease(d.uuid, choice.mode == "shared", "id", "n", holder) for d in devices]
    return KernelGpus(held, devices, choice, method, read_info(info).cdi_gpus, leasing=True)


@pytest.mark.parametrize("setup", sorted(s for s in SETUPS if SETUPS[s]["usable"]))
def test_the_request_names_exactly_the_leased_devices(setup, tmp_path):
    info, method = recorded_info(setup), SETUPS[setup]["method"]
    four = inventory("4gpu")
    kc = make_kernel_container(tmp_path, device_requests=requests_for(method, four))  # the verdict's "all" request
    requests, env = _sent(_leased([four[1], four[3]], method, info, GpuChoice("count", count=2)).apply(kc))
    if method == "--gpus":  # `docker run --gpus '"device=UUID,UUID"'`: dockerd's NVIDIA hook gets these only
        expected = {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": [four[1].uuid, four[3].uuid],
            "Capabilities": [["gpu"]],
        }
    else:  # CDI: by index, as `nvidia-ctk cdi generate` names them (this engine lists no such UUID)
        expected = {
            "Driver": "cdi",
            "Count": 0,
            "DeviceIDs": ["nvidia.com/gpu=1", "nvidia.com/gpu=3"],
            "Capabilities": [],
        }
    assert requests == [{**expected, "Options": {}}]
    assert env["DOCKYARD_GPU_LEASE"] == f"{four[1].uuid},{four[3].uuid}"
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # dockerd derives it from the request
    assert not any(name in env for name in SHARING)  # exclusive: the card is the kernel's own


def test_cdi_uses_a_uuid_name_only_where_the_engine_lists_it():
    info = recorded_info("cdi-discovered")
    listed = Device("0", "GPU-4f2a9c1e-0b3d-6e7f-8a9b-0c1d2e3f4a5b", "NVIDIA H100 80GB HBM3")
    other = Device("1", "GPU-00000000-0b3d-6e7f-8a9b-0c1d2e3f4a5b", "NVIDIA H100 80GB HBM3")
    assert cdi_names([listed, other], read_info(info).cdi_gpus) == [f"nvidia.com/gpu={listed.uuid}", "nvidia.com/gpu=1"]


def test_mig_devices_are_requested_by_their_own_uuid_and_cdi_name(tmp_path):
    mig = inventory("mig")[1]
    [docker_req] = requests_for("--gpus", [mig])
    assert docker_req["DeviceIDs"] == [mig.uuid]
    assert cdi_names([mig]) == ["nvidia.com/gpu=0:1"]
    assert podman_args([mig]) == ["--device", "nvidia.com/gpu=0:1"]


def test_podman_and_compose_get_the_same_devices():
    two = inventory("8gpu")[5:7]
    assert podman_args(two) == ["--device", "nvidia.com/gpu=5", "--device", "nvidia.com/gpu=6"]
    assert compose_devices(two) == [
        {"driver": "nvidia", "device_ids": [two[0].uuid, two[1].uuid], "capabilities": ["gpu"]}
    ]


def test_compose_devices_are_valid_compose(tmp_path):
    import jsonschema

    from .test_compose import _compose_spec_schema

    doc = {
        "services": {
            "lab": {
                "image": "dockyard/pytorch:cuda-0123456789ab",
                "deploy": {"resources": {"reservations": {"devices": compose_devices(inventory("4gpu")[:1])}}},
            }
        }
    }
    problems = [e.message for e in jsonschema.Draft201909Validator(_compose_spec_schema()).iter_errors(doc)]
    assert not problems


# --- sharing --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shared", {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
        (
            "shared:0@0.3",
            {
                "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
                "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.3",
                "DOCKYARD_GPU_MEM_FRACTION": "0.3",
            },
        ),
    ],
)
def test_shared_sets_the_frameworks_memory_behaviour_in_the_container_config(text, expected, tmp_path):
    info = recorded_info("runtime-registered")
    device = inventory("1gpu")
    kc = make_kernel_container(tmp_path, device_requests=requests_for("--gpus", device), environment={"A": "1"})
    requests, env = _sent(_leased(device, "--gpus", info, parse(text, "t")).apply(kc))
    assert requests[0]["DeviceIDs"] == [device[0].uuid]
    for name, value in expected.items():
        assert env[name] == value, name
    assert env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert env["A"] == "1"
    assert sharing_environment(None).keys() == set(SHARING)


def test_no_lease_leaves_the_container_as_it_was(tmp_path):
    kc = make_kernel_container(tmp_path, device_requests=requests_for("--gpus", inventory("1gpu")))
    assert KernelGpus().apply(kc) == kc  # `all`, or a CPU kernel
    leased = _leased(inventory("1gpu"), "--gpus", recorded_info("runtime-registered"), GpuChoice("count", count=1))
    no_gpu = make_kernel_container(tmp_path)  # the optional-GPU fallback removed the request
    assert leased.apply(no_gpu) == no_gpu
    assert not leased.pooled_ok
    assert KernelGpus().pooled_ok


def test_overview_lists_holders_and_their_memory():
    devices = inventory("4gpu")
    leases = [
        {
            "device": devices[2].uuid,
            "mode": "exclusive",
            "kernel_id": "k1",
            "notebook": "a.ipynb",
            "user": "ann",
            "env": "pytorch:cuda",
            "since": 1.0,
        },
        {
            "device": "GPU-gone",
            "mode": "shared",
            "kernel_id": "k2",
            "notebook": "",
            "user": "bo",
            "env": "jax:cuda",
            "since": 1.0,
        },
    ]
    rows = overview(devices, leases, {"k1": 3 << 30})
    assert [r["state"] for r in rows] == ["free", "free", "exclusive", "free", "shared"]
    assert rows[2]["holders"][0]["gpu_memory_used"] == 3 << 30
    assert rows[4]["uuid"] == "GPU-gone"
    assert rows[4]["holders"][0]["gpu_memory_used"] is None
