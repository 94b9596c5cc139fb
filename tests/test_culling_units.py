"""kernel/culling.py: dockyard's timeouts on Jupyter's own culler (no engine)."""

from __future__ import annotations

import asyncio
import datetime
import logging

from dockyard.config import CullOptions
from dockyard.kernel import culling

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def test_a_kernel_holding_gpu_memory_gets_the_shorter_timeout():
    cull = CullOptions(idle_timeout=3600, gpu_idle_timeout=600)
    assert culling.timeout_for(cull, holds_gpu=True) == 600
    assert culling.timeout_for(cull, holds_gpu=False) == 3600
    assert culling.timeout_for(CullOptions(idle_timeout=0, gpu_idle_timeout=600), holds_gpu=True) == 600
    assert culling.timeout_for(CullOptions(idle_timeout=0, gpu_idle_timeout=600), holds_gpu=False) == 0
    assert culling.timeout_for(CullOptions(idle_timeout=300, gpu_idle_timeout=900), holds_gpu=True) == 300


def test_cull_in_follows_jupyters_busy_and_connected_rules():
    cull = CullOptions(idle_timeout=600)
    ten_min_ago = NOW - datetime.timedelta(seconds=500)
    kw = {"holds_gpu": False, "last_activity": ten_min_ago, "now": NOW}
    assert culling.cull_in(cull, busy=False, connections=0, **kw) == 100
    assert culling.cull_in(cull, busy=True, connections=0, **kw) is None  # busy kernels are not idle
    assert culling.cull_in(cull, busy=False, connections=1, **kw) is None  # nor open notebooks
    assert (
        culling.cull_in(CullOptions(idle_timeout=600, busy=True, connected=True), busy=True, connections=2, **kw) == 100
    )
    assert culling.cull_in(CullOptions(), busy=False, connections=0, **kw) is None  # culling off


class _Spec:
    def __init__(self, provisioner: str | None) -> None:
        self.metadata = {"kernel_provisioner": {"provisioner_name": provisioner}} if provisioner else {}


class _Kernel:
    def __init__(self, provisioner: str | None) -> None:
        self.kernel_spec = _Spec(provisioner)


class _KM:
    """The MappingKernelManager attributes culling.install touches; cull_kernel_if_idle records what it saw."""

    def __init__(self, kernels: dict, cull_idle_timeout: int = 0) -> None:
        self.kernels = kernels
        self.cull_idle_timeout = cull_idle_timeout
        self.cull_interval = 300
        self.cull_busy = False
        self.cull_connected = False
        self.seen: dict[str, int] = {}

    def get_kernel(self, kid: str):
        return self.kernels[kid]

    def __contains__(self, kid: str) -> bool:
        return kid in self.kernels

    async def start_kernel(self, **kwargs) -> str:
        kid = f"k{len(self.kernels)}"
        self.kernels[kid] = _Kernel(culling.PROVISIONER)
        return kid

    async def cull_kernel_if_idle(self, kid: str) -> None:
        self.seen[kid] = self.kernels[kid].kernel_spec.metadata["cull_idle_timeout"]


def test_install_sets_each_kernels_timeout_where_jupyters_culler_reads_it():
    km = _KM({"gpu": _Kernel(culling.PROVISIONER), "cpu": _Kernel(culling.PROVISIONER), "local": _Kernel(None)})

    async def holds_gpu(kid: str) -> bool:
        return kid == "gpu"

    cull = CullOptions(idle_timeout=3600, gpu_idle_timeout=600, busy=True, interval=30)
    assert culling.install(km, cull, holds_gpu, logging.getLogger("t"))
    for kid in km.kernels:
        asyncio.run(km.cull_kernel_if_idle(kid))
    assert km.seen == {"gpu": 600, "cpu": 3600}  # a local kernel keeps the server's setting: none
    assert km.cull_idle_timeout == 3600  # Jupyter starts its culler only above 0
    assert km.cull_interval == 30
    assert km.cull_busy is True
    assert km.cull_connected is False


def test_install_leaves_the_server_alone_when_culling_is_off_and_keeps_its_own_timeout():
    km = _KM({"local": _Kernel(None)}, cull_idle_timeout=7200)

    async def never(kid: str) -> bool:
        return False

    assert not culling.install(km, CullOptions(), never, logging.getLogger("t"))
    assert km.cull_interval == 300
    assert culling.install(km, CullOptions(idle_timeout=60), never, logging.getLogger("t"))
    asyncio.run(km.cull_kernel_if_idle("local"))
    assert km.seen == {"local": 7200}
    assert km.cull_idle_timeout == 7200


def test_the_paragraph_says_how_long_it_was_idle_what_is_lost_and_which_setting_to_raise():
    text = culling.paragraph(3725, 3600, held_gpu=False)
    assert "after 62 minutes without activity" in text
    assert "variables are gone" in text
    assert "kernels.cull.idle_timeout is 3600 s" in text
    assert "DOCKYARD_CULL_IDLE_TIMEOUT" in text
    assert "\n" not in text
    gpu = culling.paragraph(45, 30, held_gpu=True)
    assert "after 45 seconds" in gpu
    assert "while it held GPU memory" in gpu
    assert "kernels.cull.gpu_idle_timeout" in gpu
    assert "DOCKYARD_CULL_GPU_IDLE_TIMEOUT" in gpu


class _Culls(_KM):
    """Jupyter's culler as far as it matters here: an idle dockyard kernel is shut down."""

    async def cull_kernel_if_idle(self, kid: str) -> None:
        del self.kernels[kid]


def test_a_culled_notebooks_next_kernel_is_told_why_the_last_one_went(monkeypatch):
    told: list[tuple[object, str]] = []
    monkeypatch.setattr(culling.death_notice, "tell_next_cell", lambda km, text: told.append((km, text)))
    km = _Culls({})
    assert culling.install(
        km, CullOptions(idle_timeout=60), lambda kid: asyncio.sleep(0, False), logging.getLogger("t")
    )

    async def scenario() -> None:
        first = await km.start_kernel(env={"JPY_SESSION_NAME": "/w/a.ipynb"})
        other = await km.start_kernel(env={"JPY_SESSION_NAME": "/w/b.ipynb"})
        km.kernels[first].last_activity = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        await km.cull_kernel_if_idle(first)
        assert told == []  # nobody to tell yet
        await km.start_kernel(env={"JPY_SESSION_NAME": "/w/b.ipynb"})  # another notebook: not its news
        assert told == []
        again = await km.start_kernel(env={"JPY_SESSION_NAME": "/w/a.ipynb"})
        assert [k for k, _ in told] == [km.kernels[again]]
        assert "after 5 minutes without activity" in told[0][1]
        await km.start_kernel(env={"JPY_SESSION_NAME": "/w/a.ipynb"})  # told once
        assert len(told) == 1
        assert other in km

    asyncio.run(scenario())
