"""What decides which kernels a machine runs, for env.json (``cpu``, ``torch_build``, ``gpus``).

One CPU model string has covered hosts where one suite gave very different ratios (a Zen 5
"AMD EPYC", cpu family 26, whose MKL fp32 GEMM behaves unlike its predecessors'). What
selects kernels is the CPU's vendor, family / model / stepping and instruction-set flags,
the CPU capability torch dispatches to, the BLAS and oneDNN torch was built with, and the
GPUs with their driver. These are read here, once per run, in the driver process; the
machine fingerprint (``harness.results.load.machine_fingerprint``) is made from them.

Everything is best effort: a fact that cannot be read is None, never an error. GPUs are
named through NVML (pynvml), which creates no CUDA context in this process.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

#: The instruction-set flags that select kernels (MKL, oneDNN, FBGEMM, torch's dispatch), as
#: /proc/cpuinfo names them; env.json keeps those a CPU has, not its whole flag line. Add to
#: this list, never rename: a flag added later makes machines that have it differ from runs
#: recorded before (``optbench compare`` names it as a flag one run lacks).
KERNEL_FLAGS: tuple[str, ...] = (
    # x86
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
    "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "avx_vnni_int8", "avx_ne_convert", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
    # ARM (the "Features" line)
    "asimd", "asimdhp", "asimddp", "asimdfhm", "fphp", "sve", "sve2", "svebf16", "svei8mm", "bf16", "i8mm",
    "sme", "sme2",
)

#: ARM "CPU implementer" codes, for a readable vendor.
ARM_IMPLEMENTERS = {"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
                    "0x4e": "NVIDIA", "0x51": "Qualcomm", "0x61": "Apple", "0x6d": "Microsoft", "0xc0": "Ampere"}
#: ARM Ltd. "CPU part" codes of server cores (others keep their code).
ARM_PARTS = {"0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2",
             "0xd8e": "Neoverse-N3", "0xd84": "Neoverse-V3", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}


# --- the CPU ----------------------------------------------------------------------------

def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The CPU facts of a /proc/cpuinfo text (its first processor): vendor_id, family, model,
    stepping, model_name and the kernel-selecting ``flags`` it has (sorted). On ARM, where
    cpuinfo has no vendor or model name, vendor_id is the implementer code, family the
    architecture, model the part code and stepping "r<variant>p<revision>"."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough: every core of a server is alike
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    out: dict[str, Any] = {"vendor_id": fields.get("vendor_id"), "family": _int(fields.get("cpu family")),
                           "model": _int(fields.get("model")), "stepping": _int(fields.get("stepping")),
                           "model_name": fields.get("model name")}
    implementer = fields.get("cpu implementer")
    if implementer and out["vendor_id"] is None:  # ARM
        implementer = implementer.lower()
        part = (fields.get("cpu part") or "").lower() or None
        variant, revision = _int(fields.get("cpu variant")), _int(fields.get("cpu revision"))
        out.update(vendor_id=implementer, family=_int(fields.get("cpu architecture")), model=part,
                   stepping=f"r{variant}p{revision}" if variant is not None and revision is not None else None)
        if not out["model_name"] or out["model_name"].lower().startswith("armv"):
            vendor = ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer}")
            name = ARM_PARTS.get(part or "", f"part {part}") if implementer == "0x41" else f"part {part}"
            out["model_name"] = f"{vendor} {name}"
    out["flags"] = sorted(f for f in KERNEL_FLAGS if f in flags)
    return out


def _windows_cpu() -> dict[str, Any]:
    """platform.processor() on Windows: "Intel64 Family 6 Model 158 Stepping 10, GenuineIntel"."""
    m = re.search(r"Family (\d+) Model (\d+) Stepping (\d+), (\w+)", platform.processor() or "")
    if not m:
        return {}
    return {"vendor_id": m.group(4), "family": int(m.group(1)), "model": int(m.group(2)),
            "stepping": int(m.group(3))}


def _macos_cpu() -> dict[str, Any]:
    """sysctl on macOS: machdep.cpu.* on Intel, hw.optional.arm.FEAT_* on Apple silicon."""
    try:
        done = subprocess.run(["sysctl", "machdep.cpu", "hw.optional"], check=False, capture_output=True, text=True,
                              timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    values = dict(line.partition(": ")[::2] for line in done.stdout.splitlines() if ": " in line)
    words = set((values.get("machdep.cpu.features", "") + " " + values.get("machdep.cpu.leaf7_features", "")
                 ).lower().replace(".", "_").split())
    arm = {"hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.arm.FEAT_I8MM": "i8mm", "hw.optional.arm.FEAT_SME": "sme",
           "hw.optional.arm.FEAT_SME2": "sme2", "hw.optional.arm.FEAT_DotProd": "asimddp",
           "hw.optional.arm.FEAT_FHM": "asimdfhm", "hw.optional.AdvSIMD": "asimd", "hw.optional.neon": "asimd"}
    words |= {flag for key, flag in arm.items() if values.get(key, "").strip() == "1"}
    words |= {"avx"} if "avx1_0" in words else set()
    return {"vendor_id": values.get("machdep.cpu.vendor"), "family": _int(values.get("machdep.cpu.family")),
            "model": _int(values.get("machdep.cpu.model")), "stepping": _int(values.get("machdep.cpu.stepping")),
            "model_name": values.get("machdep.cpu.brand_string"),
            "flags": sorted(f for f in KERNEL_FLAGS if f in words)}


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """This machine's CPU: ``parse_cpuinfo`` of /proc/cpuinfo on Linux, sysctl on macOS,
    platform.processor() on Windows; None for what cannot be read, ``flags`` None when unknown."""
    facts: dict[str, Any] = {"vendor_id": None, "family": None, "model": None, "stepping": None,
                             "model_name": None, "flags": None}
    try:
        facts.update(parse_cpuinfo(cpuinfo.read_text(errors="replace")))
    except OSError:
        system = platform.system()
        with contextlib.suppress(Exception):  # best effort: an odd sysctl answer costs only these facts
            facts.update(_macos_cpu() if system == "Darwin" else _windows_cpu() if system == "Windows" else {})
    facts["model_name"] = facts["model_name"] or platform.processor() or None
    facts["arch"] = platform.machine() or None
    return facts


# --- torch's build --------------------------------------------------------------------------

def _search(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else None


def parse_torch_config(show: str, parallel: str = "") -> dict[str, Any]:
    """Short facts from ``torch.__config__.show()`` and ``parallel_info()``: the BLAS and LAPACK
    torch calls, the MKL, oneDNN and OpenMP versions, the ATen parallel backend and thread counts."""
    def threads(name: str) -> int | None:
        return _int(_search(rf"{re.escape(name)}\s*:\s*(\d+)", parallel))

    return {
        "blas": _search(r"BLAS_INFO=([^,\s]+)", show),
        "lapack": _search(r"LAPACK_INFO=([^,\s]+)", show),
        "mkl": _search(r"Math Kernel Library Version ([\w.]+)", show),
        "onednn": _search(r"(?:MKL-DNN|oneDNN)\s+v?(\d[\w.]*)", show),
        "openmp": _search(r"OpenMP \d+ \(a\.k\.a\. OpenMP ([\d.]+)\)", show) or _search(r"- OpenMP (\d+)", show),
        "cuda": _search(r"CUDA_VERSION=([^,\s]+)", show),
        "compiler": _search(r"^\s*- ((?:GCC|clang|MSVC|Apple clang)[^\n]*)$", show),
        "parallel_backend": _search(r"ATen parallel backend:\s*(.+)$", parallel),
        "intra_op_threads": threads("at::get_num_threads()"),
        "inter_op_threads": threads("at::get_num_interop_threads()"),
        "omp_max_threads": threads("omp_get_max_threads()"),
        "mkl_max_threads": threads("mkl_get_max_threads()"),
    }


def torch_build_facts() -> dict[str, Any]:
    """torch's CPU capability (the kernels it dispatches to) and ``parse_torch_config`` of its build."""
    import torch

    try:
        capability: str | None = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch: no such function
        capability = None
    try:
        show = torch.__config__.show()
    except Exception:  # noqa: BLE001
        show = ""
    try:
        parallel = torch.__config__.parallel_info()
    except Exception:  # noqa: BLE001
        parallel = ""
    return {"cpu_capability": capability, **parse_torch_config(show, parallel)}


# --- GPUs -----------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else None if value is None else str(value)


def nvml_gpus() -> tuple[list[dict[str, Any]], str | None]:
    """Every GPU NVML sees (by NVML index: name, uuid, memory_total_mb) and the driver version;
    ([], None) when pynvml is missing, NVML cannot start (no driver) or a query fails."""
    try:
        import pynvml
    except Exception:  # noqa: BLE001 - ImportError or a broken install: no names
        return [], None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError: no driver, no library, no GPU
        return [], None
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        out = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpu: dict[str, Any] = {"name": _text(pynvml.nvmlDeviceGetName(handle))}
            try:
                gpu["uuid"] = _text(pynvml.nvmlDeviceGetUUID(handle))
            except Exception:  # noqa: BLE001
                gpu["uuid"] = None
            try:
                gpu["memory_total_mb"] = round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20)
            except Exception:  # noqa: BLE001
                gpu["memory_total_mb"] = None
            out.append(gpu)
        return out, driver
    except Exception:  # noqa: BLE001 - a GPU lost mid-query: no names rather than half of them
        return [], None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def name_visible_gpus(count: int, machine: list[dict[str, Any]], visible: str | None,
                      order: str | None = None) -> list[dict[str, Any]]:
    """``{"index": i, ...NVML facts}`` for the ``count`` devices torch sees. NVML numbers GPUs by
    PCI bus; CUDA_VISIBLE_DEVICES names them by CUDA index (fastest first unless
    CUDA_DEVICE_ORDER=PCI_BUS_ID) or by UUID. A device that cannot be matched keeps its index alone."""
    def by_entry(entry: str) -> dict[str, Any] | None:
        if entry.isdigit():
            mixed = len({g.get("name") for g in machine}) > 1 and order != "PCI_BUS_ID"
            return machine[int(entry)] if int(entry) < len(machine) and not mixed else None
        prefix = entry.lower().removeprefix("gpu-")
        found = [g for g in machine if (g.get("uuid") or "").lower().removeprefix("gpu-").startswith(prefix)]
        return found[0] if len(found) == 1 and prefix else None

    if visible is None:
        picked: list[dict[str, Any] | None] = list(machine[:count])
    else:
        picked = [by_entry(e.strip()) for e in visible.split(",") if e.strip()]
    picked += [None] * (count - len(picked))
    return [{"index": i, **({k: v for k, v in g.items() if k != "uuid"} if g else {})}
            for i, g in enumerate(picked[:count])]


def gpu_facts() -> tuple[list[dict[str, Any]], str | None]:
    """The GPUs torch can use (``{"index", "name", "memory_total_mb"}``, names from NVML) and
    the driver version, or None without NVML. Counting through torch reads the driver's
    device count without a CUDA context; naming through torch would create one."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - a broken CUDA install counts no GPU
        count = 0
    machine, driver = nvml_gpus() if count else ([], None)
    return name_visible_gpus(count, machine, os.environ.get("CUDA_VISIBLE_DEVICES"),
                             os.environ.get("CUDA_DEVICE_ORDER")), driver
